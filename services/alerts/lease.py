"""The single active alerts service per database: who holds the lock, and standing by.

Two alerts services on one database each judged, wrote and delivered the same alerts:
two resolutions of one alert, phantom incidents, every notification posted once per
process (review 90). The service that holds the advisory lock ``ALERTS_LOCK_KEY`` is the
active one; any other waits as a standby and takes over when the lock is released.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from services.common.db import DATABASE_UNAVAILABLE, outage_cause
from services.common.pglease import AdvisoryLease, Holder

log = logging.getLogger(__name__)

ALERTS_LOCK_KEY = 0x65676F76_616C7274
"""The advisory lock of the active alerts service ("egovalrt"): pg_locks shows it as
classid 1701277558, objid 1634472564, objsubid 1. Documented in docs/alerts.md; never
change it, or the old and new versions of a deploy would not exclude each other."""

APPLICATION = "egov-pulse alerts"


def alerts_lease(dsn: str) -> AdvisoryLease:
    return AdvisoryLease(dsn, ALERTS_LOCK_KEY, APPLICATION)


async def stand_by(
    lease: AdvisoryLease, retry_s: float, standing: Callable[[], object] | None = None
) -> bool:
    """Return once ``lease`` is held, whether another held it first; until then try every
    ``retry_s`` (PostgreSQL away: backing off up to that too). ``standing`` is called
    when another service is first found holding it.

    One line says so when another service is found holding it, and again only when the
    holder changes: a standby for a whole deploy logs once, not every few seconds.
    """
    last: Holder | None = None
    delay = min(0.5, retry_s)
    while True:
        try:
            holder = await lease.try_acquire()
        except DATABASE_UNAVAILABLE as exc:
            log.warning("alerts lock not taken: %s; retrying in %.1f s",
                        outage_cause(exc), delay)  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, retry_s)
            continue
        if holder is None:
            if last is not None:
                log.warning("took over the alerts lock: this alerts service is now active")
            return last is not None
        if last is None and standing is not None:
            standing()
        if holder != last:
            log.warning("standby: another alerts service holds the lock on this database "
                        "(%s); not evaluating, writing or delivering; retrying every %g s",
                        holder, retry_s)  # fmt: skip
            last = holder
        delay = min(0.5, retry_s)
        await asyncio.sleep(retry_s)
