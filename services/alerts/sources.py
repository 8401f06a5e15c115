"""Where the figures come from: the metrics workers' JSON API and ingest's /metrics.

Every worker in ``EGOV_METRICS_URLS`` is asked; each answers for the partitions it
owns, so answers are merged. A worker that does not answer makes its units *unknown*
(absent), which the lifecycle treats as "no change", never as recovery.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from services.alerts.model import Activity, Figure

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Snapshot:
    """One read of every worker: figures, activity and which workers failed."""

    figures: list[Figure] = field(default_factory=list)
    activity: list[Activity] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_figures(body: bytes) -> list[Figure]:
    """The items of one /v1/kpis answer; an item without a target (a code the worker
    cannot place in today's hierarchy) has nothing to be compared with and is left out."""
    items = orjson.loads(body).get("items", [])
    return [_figure(i) for i in items if i.get("target") is not None]


def _figure(i: dict[str, Any]) -> Figure:
    # Positional and without per-field defaults where the API always answers (this runs
    # for every (unit, KPI, window) every cycle: 70,000 times per window at 10,000 units).
    return Figure(
        i["kpi"],
        i["unit"],
        i.get("window") or "day",
        i["numerator"] or 0,
        i["denominator"] or 0,
        i["target"],
        i.get("min_volume") or 0,
        i.get("unit_name") or "",
        i.get("unit_name_en") or "",
        i.get("kpi_name_vi") or "",
        i.get("kpi_name_en") or "",
        i.get("level") or "",
        i.get("province") or "",
    )


def parse_activity(body: bytes) -> list[Activity]:
    items = orjson.loads(body).get("items", [])
    return [
        Activity(i["unit"], i["family"], datetime.fromisoformat(i["last_event_time"]))
        for i in items
        if i.get("last_event_time")
    ]


def merge_figures(answers: Sequence[Sequence[Figure]]) -> list[Figure]:
    """One figure per (kpi, unit, window); during a rebalance the fuller one wins."""
    best: dict[tuple[str, str, str], Figure] = {}
    for answer in answers:
        for fig in answer:
            key = (fig.kpi, fig.unit, fig.window)
            if key not in best or fig.denominator > best[key].denominator:
                best[key] = fig
    return list(best.values())


class MetricsSource:
    """Reads /v1/kpis (one request per window) and /v1/activity from every worker, all at once.

    One request per window keeps each call on a worker short (the worker builds the
    answer in its event loop, about a second per window at 10,000 units) and lets this
    side parse one window while the worker builds the next.
    """

    def __init__(self, client: httpx.AsyncClient, urls: Sequence[str]) -> None:
        self._client = client
        self._urls = list(urls)

    async def read(self, windows: Sequence[str], activity: bool = True) -> Snapshot:
        results = await asyncio.gather(
            *(self._one(url, windows, activity) for url in self._urls), return_exceptions=True
        )
        snap = Snapshot()
        answers: list[list[Figure]] = []
        for url, result in zip(self._urls, results, strict=True):
            if isinstance(result, BaseException):
                snap.errors.append(f"{url}: {result!r}")
                continue
            figures, acts = result
            answers.append(figures)
            snap.activity.extend(acts)
        snap.figures = answers[0] if len(answers) == 1 else merge_figures(answers)
        return snap

    async def _one(
        self, url: str, windows: Sequence[str], activity: bool
    ) -> tuple[list[Figure], list[Activity]]:
        # A worker answers for all of its windows or is counted as not answering.
        async def acts() -> list[Activity]:
            return await self._activity(url) if activity else []

        per_window, answered = await asyncio.gather(
            asyncio.gather(*(self._kpis(url, w) for w in windows)), acts()
        )
        return [fig for part in per_window for fig in part], answered

    async def _kpis(self, url: str, window: str) -> list[Figure]:
        response = await self._client.get(f"{url}/v1/kpis", params={"window": window})
        response.raise_for_status()
        return parse_figures(response.content)

    async def _activity(self, url: str) -> list[Activity]:
        response = await self._client.get(f"{url}/v1/activity")
        response.raise_for_status()
        return parse_activity(response.content)


INGEST_COUNTERS = ("egov_ingest_key_events", "egov_ingest_events")


def parse_ingest_counters(text: str) -> dict[str, dict[str, float]]:
    """key_id -> outcome -> events, from ingest's Prometheus exposition.

    Prefers a per-key counter (``key_id`` label on egov_ingest_key_events_total or
    egov_ingest_events_total); without one, all publishers count as key ``all``.
    """
    per_key: dict[str, dict[str, float]] = {}
    overall: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in INGEST_COUNTERS:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            outcome = sample.labels.get("outcome", "")
            key_id = sample.labels.get("key_id")
            if key_id:
                bucket = per_key.setdefault(key_id, {})
                bucket[outcome] = bucket.get(outcome, 0.0) + sample.value
            elif family.name == "egov_ingest_events":
                overall[outcome] = overall.get(outcome, 0.0) + sample.value
    if per_key:
        return per_key
    return {"all": overall} if overall else {}


class IngestSource:
    """Scrapes ingest's /metrics; None when ingest does not answer."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url

    async def read(self) -> dict[str, dict[str, float]] | None:
        try:
            response = await self._client.get(f"{self._url}/metrics")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("ingest metrics unavailable: %r", exc)
            return None
        return parse_ingest_counters(response.text)
