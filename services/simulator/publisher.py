"""Posts batches of CloudEvents to the ingest service, retrying what may be retried.

A batch is serialised once and re-sent byte for byte, so a retry carries the same
event ids and the pipeline counts each event once. 503, 429, other 5xx, timeouts and
connection errors are retried (honouring ``Retry-After``); any other 4xx is a refusal:
logged with its problem details, counted, never retried.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx
import orjson
from pydantic import SecretStr

from services.simulator.stats import SimulatorStats

log = logging.getLogger(__name__)

BATCH_MEDIA_TYPE: Final = "application/cloudevents-batch+json"
RETRYABLE: Final = frozenset({429, 500, 502, 503, 504})
DEFAULT_TIMEOUT: Final = httpx.Timeout(10.0, connect=3.0)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class _Retry:
    delay_s: float | None  # what Retry-After asked for; None: back off exponentially


class Publisher:
    """Sends batches through one ``httpx.AsyncClient``; counts outcomes into ``stats``.

    ``sleep`` is injectable so tests can see the delays without waiting them out.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        ingest_url: str,
        stats: SimulatorStats,
        *,
        api_key: SecretStr | None = None,
        max_attempts: int = 5,
        backoff_s: float = 0.5,
        max_delay_s: float = 30.0,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._url = ingest_url.rstrip("/") + "/v1/events"
        self._stats = stats
        self._headers = {"Content-Type": BATCH_MEDIA_TYPE, "Accept": "application/json"}
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key.get_secret_value()}"
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._max_attempts = max_attempts
        self._timeout = timeout
        self._backoff_s = backoff_s
        self._max_delay_s = max_delay_s
        self._sleep = sleep

    async def publish(self, events: Sequence[dict[str, Any]]) -> bool:
        """Deliver one batch; True when the ingest service accepted it."""
        if not events:
            return True
        body = orjson.dumps(list(events))
        self._stats.batches += 1
        for attempt in range(1, self._max_attempts + 1):
            outcome = await self._attempt(body, len(events))
            if not isinstance(outcome, _Retry):
                return outcome
            if attempt < self._max_attempts:
                self._stats.retries += 1
                delay = outcome.delay_s
                await self._sleep(self._backoff(attempt) if delay is None else delay)
        log.error("gave up on a batch of %d events after %d attempts", len(events), attempt)
        self._stats.failed += len(events)
        return False

    async def _attempt(self, body: bytes, count: int) -> bool | _Retry:
        """Whether the batch was accepted, once settled; else how long to wait."""
        try:
            response = await self._client.post(
                self._url, content=body, headers=self._headers, timeout=self._timeout
            )
        except httpx.TimeoutException as exc:
            # The outcome is unknown: resend, the ids make it safe.
            log.warning("ingest timed out (%s); will retry", type(exc).__name__)
            return _Retry(None)
        except httpx.TransportError as exc:
            log.warning("ingest unreachable (%s); will retry", exc)
            return _Retry(None)
        if response.is_success:
            self._stats.accepted += count
            return True
        if response.status_code in RETRYABLE:
            delay = retry_after(response.headers.get("Retry-After"), datetime.now(UTC))
            log.warning("ingest answered %d; retry after %s s", response.status_code, delay)
            return _Retry(None if delay is None else min(delay, self._max_delay_s))
        self._refused(response, count)
        return False

    def _refused(self, response: httpx.Response, count: int) -> None:
        self._stats.refusals += 1
        self._stats.refused += count
        log.error(
            "ingest refused a batch of %d events: %d %s",
            count,
            response.status_code,
            describe_problem(response),
        )

    def _backoff(self, attempt: int) -> float:
        return float(min(self._backoff_s * 2 ** (attempt - 1), self._max_delay_s))


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


def describe_problem(response: httpx.Response) -> str:
    """The title, detail and first few errors of an RFC 9457 body, or the raw text."""
    try:
        problem = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:500]
    if not isinstance(problem, dict):
        return response.text[:500]
    parts = [str(problem.get("title", "")), str(problem.get("detail", ""))]
    errors = problem.get("errors")
    if isinstance(errors, list):
        parts.extend(
            f"[{e.get('index')}] {e.get('pointer')}: {e.get('reason')}"
            for e in errors[:5]
            if isinstance(e, dict)
        )
    return " | ".join(p for p in parts if p)
