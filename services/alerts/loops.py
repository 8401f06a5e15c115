"""The alerts service's background loops; each outlives any error of one round.

The loops know nothing of alerts: :mod:`services.alerts.service` hands them its steps
(evaluate, flush, deliver, learn) as callables. A step that raises is logged and tried
again; only cancellation (the service closing) ends a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from services.alerts.journal import UNAVAILABLE
from services.common.db import outage_cause

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[object]]


async def evaluate(
    step: Step,
    interval_s: float,
    next_due: Callable[[], datetime | None],
    clock: Callable[[], datetime],
) -> None:
    """Run ``step`` every interval, and at the moment a pending alert becomes due."""
    while True:
        started = time.monotonic()
        try:
            await step()
        except Exception:
            log.exception("evaluation failed")
        wait = interval_s - (time.monotonic() - started)
        due = next_due()
        if due is not None:
            # Evaluate again the moment a pending alert may fire rather than up to an
            # interval later (a hair after, so the elapsed time is not a hair short).
            # A due time already past (its unit unknown last cycle) waits the interval.
            until = (due - clock()).total_seconds() + 0.01
            if until > 0:
                wait = min(wait, until)
        await asyncio.sleep(max(0.0, wait))


async def write(flush: Step, wake: asyncio.Event, backlog: Callable[[], int]) -> None:
    """Flush when woken (or every 5 s); back off while PostgreSQL is away, up to 30 s."""
    delay = 0.5
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), 5)
        wake.clear()
        try:
            await flush()
            delay = 0.5
        except UNAVAILABLE as exc:
            log.warning("%s: %d transitions kept; retry in %.1f s",
                        outage_cause(exc), backlog(), delay)  # fmt: skip
        except Exception:
            # Anything else (a full connection pool, a bad value) must not end this
            # loop: the journal would only grow and nothing more would be notified.
            log.exception("writing %d transitions failed; retry in %.1f s", backlog(), delay)
        else:
            continue
        await asyncio.sleep(delay)
        delay = min(delay * 2, 30.0)
        wake.set()


async def every(step: Step, period_s: float, what: str, *, first_wait: bool = False) -> None:
    """Run ``step`` every ``period_s`` (after one period when ``first_wait``)."""
    if first_wait:
        await asyncio.sleep(period_s)
    while True:
        try:
            await step()
        except UNAVAILABLE as exc:
            log.warning("%s: %s", what, outage_cause(exc))
        except Exception:
            log.exception("%s round failed", what)
        await asyncio.sleep(period_s)
