"""Adapter: reads the metrics workers and the alerts service over HTTP into a Snapshot.

Every request has a short timeout; a source that fails is recorded in the snapshot
(shown on the page), and never stops the others from being read.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from services.common.figures import AnswerFormatError, Figure, merge_activity, parse_figures
from services.common.figures_client import FetchError, FiguresClient, WorkerAnswer, fetch
from services.common.units import UnitRegistry
from services.wall.directory import shipped_registry
from services.wall.history import FormerUnit, History, former_unit
from services.wall.model import Alert, alert_from_json
from services.wall.snapshot import Snapshot, SourceState, fingerprint, merge_figures

log = logging.getLogger(__name__)

WINDOWS = ("day", "month")
"""Calendar windows the wall shows: today and this month (Asia/Ho_Chi_Minh)."""


def _now() -> datetime:
    return datetime.now(UTC)


class Sources:
    """The metrics workers and the alerts service, read together.

    ``registry`` names the former units a unit's history leaves out (the wall's
    composition root passes ``EGOV_UNITS_DIR``'s; by default the data shipped with the
    repository, read when first needed).
    """

    def __init__(
        self,
        metrics_urls: Sequence[str],
        alerts_url: str,
        timeout_s: float,
        clock: Callable[[], datetime] = _now,
        registry: UnitRegistry | None = None,
    ) -> None:
        self.alerts_url = alerts_url.rstrip("/")
        self._timeout_s = timeout_s
        self._client = httpx.AsyncClient(timeout=timeout_s)
        self._figures = FiguresClient(self._client, metrics_urls, timeout_s)
        self.metrics_urls = self._figures.urls
        self._clock = clock
        self._registry = registry
        self._last_ok: dict[str, datetime] = {}
        # A worker that stops answering keeps its last figures on the page, marked stale:
        # old figures flagged as old beat a province vanishing from the wall.
        self._last_answer: dict[str, WorkerAnswer] = {}

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _get(self, url: str, params: Mapping[str, Any] | None = None) -> Any:
        body = await fetch(self._client, url, self._timeout_s, params)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            raise FetchError("not JSON") from None

    async def _alerts(self) -> tuple[Alert, ...]:
        body = await self._get(f"{self.alerts_url}/v1/alerts")
        items = body if isinstance(body, list) else body.get("items", body.get("alerts"))
        if not isinstance(items, list):
            raise FetchError("unexpected JSON: no alert list")
        try:
            return tuple(alert_from_json(i) for i in items)
        except (AttributeError, TypeError) as exc:
            raise FetchError(f"unexpected JSON: {exc}") from None

    async def _read_alerts(self) -> tuple[tuple[Alert, ...] | None, str | None]:
        """The open alerts, or ``None`` and why not (no error: no alerts source at all)."""
        if not self.alerts_url:
            return None, None
        try:
            return await self._alerts(), None
        except FetchError as exc:
            return None, str(exc)
        except Exception as exc:
            log.warning("wall source %s failed", self.alerts_url, exc_info=exc)
            return None, str(exc) or type(exc).__name__

    def _state(self, kind: str, url: str, error: str | None) -> SourceState:
        if error is not None:
            return SourceState(kind, url, False, error, self._last_ok.get(url))
        now = self._clock()
        self._last_ok[url] = now
        return SourceState(kind, url, True, None, now)

    async def read(self) -> Snapshot:
        """One reading of every source, concurrently."""
        taken_at = self._clock()
        reading, (alerts, alerts_error) = await asyncio.gather(
            self._figures.read(WINDOWS), self._read_alerts()
        )
        states = [self._state("metrics", u, reading.errors.get(u)) for u in self.metrics_urls]
        if self.alerts_url:
            states.append(self._state("alerts", self.alerts_url, alerts_error))
        self._last_answer.update(reading.answers)
        answered = list(self._last_answer.values())
        ages = [self._last_ok.get(url) for url in self.metrics_urls]
        data_time = None if None in ages else min(a for a in ages if a is not None)
        figures = merge_figures(a.figures for a in answered)
        activity = tuple(merge_activity(a.activity for a in answered))
        return Snapshot(
            taken_at=taken_at,
            figures=figures,
            activity=activity,
            alerts=alerts,
            alerts_configured=bool(self.alerts_url),
            sources=tuple(states),
            data_time=data_time,
            fingerprint=fingerprint(
                figures, activity, alerts, tuple(states), bool(self.alerts_url)
            ),
        )

    async def province_figures(self, window: str, province: str) -> list[Figure]:
        """Every worker's figures of one province and window, merged, read now.

        For a file: :class:`FetchError` naming each worker that did not answer, rather
        than figures with that worker's units missing.
        """

        async def one(base: str) -> list[Figure]:
            params = {"window": window, "province": province}
            body = await fetch(self._client, f"{base}/v1/kpis", self._timeout_s, params)
            try:
                return parse_figures(body)
            except AnswerFormatError as exc:
                raise FetchError(f"unexpected JSON: {exc}") from None

        outcomes = await asyncio.gather(
            *(one(base) for base in self.metrics_urls), return_exceptions=True
        )
        answers: list[list[Figure]] = []
        failed: list[str] = []
        for base, outcome in zip(self.metrics_urls, outcomes, strict=True):
            if isinstance(outcome, list):
                answers.append(outcome)
            elif isinstance(outcome, Exception):
                failed.append(f"{base}: {outcome}")
            else:
                raise outcome  # cancelled or interrupted: not a worker's fault
        if failed:
            raise FetchError("; ".join(failed))
        return list(merge_figures(answers))

    async def history(self, unit: str, kpi: str, days: int) -> History:
        """Daily figures of one unit and KPI from the first worker that answers, with the
        former units its restated days leave out, named.

        Every worker reads the same PostgreSQL tables, so any one will do.
        """
        errors = []
        for base in self.metrics_urls:
            try:
                body = await self._get(
                    f"{base}/v1/kpis/history", {"unit": unit, "kpi": kpi, "days": days}
                )
                return History.from_json(body, self._former_unit)
            except (FetchError, KeyError, TypeError) as exc:
                errors.append(f"{base}: {exc}")
        raise FetchError("; ".join(errors))

    def _former_unit(self, code: str) -> FormerUnit:
        if self._registry is None:
            self._registry = shipped_registry()
        return former_unit(self._registry, code)
