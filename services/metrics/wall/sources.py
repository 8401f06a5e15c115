"""Adapter: reads the metrics workers and the alerts service over HTTP into a Snapshot.

Every request has a short timeout; a source that fails is recorded in the snapshot
(shown on the page), and never stops the others from being read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from services.metrics.wall.model import (
    Activity,
    Alert,
    Figure,
    SourceFormatError,
    activity_from_json,
    alert_from_json,
    figure_from_json,
)
from services.metrics.wall.snapshot import (
    Snapshot,
    SourceState,
    fingerprint,
    merge_activity,
    merge_figures,
)

log = logging.getLogger(__name__)

WINDOWS = ("day", "month")
"""Calendar windows the wall shows: today and this month (Asia/Ho_Chi_Minh)."""


class SourceError(Exception):
    """A source did not answer usefully; the message says how, for the page."""


def _now() -> datetime:
    return datetime.now(UTC)


class Sources:
    """The metrics workers and the alerts service, read together."""

    def __init__(
        self,
        metrics_urls: Sequence[str],
        alerts_url: str,
        timeout_s: float,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.metrics_urls = list(metrics_urls)
        self.alerts_url = alerts_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._clock = clock
        self._last_ok: dict[str, datetime] = {}
        # A worker that stops answering keeps its last figures on the page, marked stale:
        # old figures flagged as old beat a province vanishing from the wall.
        self._last_answer: dict[str, tuple[list[Figure], list[Activity]]] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, url: str, params: Any = None) -> Any:
        try:
            response = await self._client.get(url, params=params)
        except httpx.TimeoutException:
            raise SourceError("timeout") from None
        except httpx.TransportError as exc:
            raise SourceError(type(exc).__name__) from None
        if response.status_code != 200:
            raise SourceError(f"HTTP {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise SourceError("not JSON") from None

    async def _worker(self, base: str) -> tuple[list[Figure], list[Activity]]:
        answers = await asyncio.gather(
            *(self._get(f"{base}/v1/kpis", {"window": w}) for w in WINDOWS),
            self._get(f"{base}/v1/activity"),
        )
        try:
            figures = [figure_from_json(i) for answer in answers[:-1] for i in answer["items"]]
            activity = [activity_from_json(i) for i in answers[-1]["items"]]
        except (KeyError, TypeError, SourceFormatError) as exc:
            raise SourceError(f"unexpected JSON: {exc}") from None
        return figures, [a for a in activity if a is not None]

    async def _alerts(self) -> list[Alert]:
        body = await self._get(f"{self.alerts_url}/v1/alerts")
        items = body if isinstance(body, list) else body.get("items", body.get("alerts"))
        if not isinstance(items, list):
            raise SourceError("unexpected JSON: no alert list")
        try:
            return [alert_from_json(i) for i in items]
        except (AttributeError, TypeError) as exc:
            raise SourceError(f"unexpected JSON: {exc}") from None

    def _state(self, kind: str, url: str, outcome: object) -> SourceState:
        now = self._clock()
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, SourceError):
                log.warning("wall source %s failed", url, exc_info=outcome)
            return SourceState(
                kind, url, False, str(outcome) or type(outcome).__name__, self._last_ok.get(url)
            )
        self._last_ok[url] = now
        return SourceState(kind, url, True, None, now)

    async def read(self) -> Snapshot:
        """One reading of every source, concurrently."""
        taken_at = self._clock()
        alerts_task = asyncio.ensure_future(self._alerts() if self.alerts_url else _no_alerts())
        worker_outcomes = await asyncio.gather(
            *(self._worker(url) for url in self.metrics_urls), return_exceptions=True
        )
        alert_outcome: list[Alert] | BaseException
        try:
            alert_outcome = await alerts_task
        except Exception as exc:
            alert_outcome = exc
        states = [
            self._state("metrics", url, o)
            for url, o in zip(self.metrics_urls, worker_outcomes, strict=True)
        ]
        if self.alerts_url:
            states.append(self._state("alerts", self.alerts_url, alert_outcome))
        for url, outcome in zip(self.metrics_urls, worker_outcomes, strict=True):
            if not isinstance(outcome, BaseException):
                self._last_answer[url] = outcome
        answered = list(self._last_answer.values())
        ages = [self._last_ok.get(url) for url in self.metrics_urls]
        data_time = None if None in ages else min(a for a in ages if a is not None)
        figures = merge_figures(a[0] for a in answered)
        activity = merge_activity(a[1] for a in answered)
        alerts = None if isinstance(alert_outcome, BaseException) else tuple(alert_outcome)
        return Snapshot(
            taken_at=taken_at,
            figures=figures,
            activity=activity,
            alerts=alerts,
            sources=tuple(states),
            data_time=data_time,
            fingerprint=fingerprint(figures, activity, alerts, tuple(states)),
        )

    async def history(self, unit: str, kpi: str, days: int) -> list[dict[str, Any]]:
        """Daily figures of one unit and KPI from the first worker that answers.

        Every worker reads the same PostgreSQL tables, so any one will do.
        """
        errors = []
        for base in self.metrics_urls:
            try:
                body = await self._get(
                    f"{base}/v1/kpis/history", {"unit": unit, "kpi": kpi, "days": days}
                )
                return list(body["items"])
            except (SourceError, KeyError, TypeError) as exc:
                errors.append(f"{base}: {exc}")
        raise SourceError("; ".join(errors))


async def _no_alerts() -> list[Alert]:
    return []
