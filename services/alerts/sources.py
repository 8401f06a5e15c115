"""Where ingest's counters (its Prometheus /metrics) and the units' daily history come from.

The figures of the metrics workers are read by :mod:`services.common.figures_client`,
shared with the wall page. The daily history is the metrics workers' table
``kpi_daily`` (migration 0004) in the database both services share: one query per
refresh for every unit, where /v1/kpis/history would take one request per unit and KPI.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.alerts.cadence import HistoryRow
from services.alerts.conditions import IngestScrape
from services.common.db import Connection

log = logging.getLogger(__name__)


INGEST_COUNTERS = ("egov_ingest_key_events", "egov_ingest_events")


def parse_ingest_counters(text: str) -> IngestScrape:
    """key_id -> outcome -> events, and when each counter began, from ingest's
    Prometheus exposition.

    Prefers a per-key counter (``key_id`` label on egov_ingest_key_events_total or
    egov_ingest_events_total); without one, all publishers count as key ``all``. A
    counter's start is its ``_created`` sample (prometheus-client writes one per labelled
    counter; ingest never removes one, so the earliest of those summed moves only when
    ingest restarts).
    """
    per_key: dict[str, dict[str, float]] = {}
    overall: dict[str, float] = {}
    key_starts: dict[str, dict[str, float]] = {}
    overall_starts: dict[str, float] = {}
    created = {f"{name}_created" for name in INGEST_COUNTERS}
    for family in text_string_to_metric_families(text):
        if family.name not in INGEST_COUNTERS and family.name not in created:
            continue
        started = family.name in created
        for sample in family.samples:
            if not started and not sample.name.endswith("_total"):
                continue
            outcome = sample.labels.get("outcome", "")
            key_id = sample.labels.get("key_id")
            if key_id:
                if started:
                    _earliest(key_starts.setdefault(key_id, {}), outcome, sample.value)
                else:
                    bucket = per_key.setdefault(key_id, {})
                    bucket[outcome] = bucket.get(outcome, 0.0) + sample.value
            elif family.name.startswith("egov_ingest_events"):
                if started:
                    _earliest(overall_starts, outcome, sample.value)
                else:
                    overall[outcome] = overall.get(outcome, 0.0) + sample.value
    if per_key:
        return IngestScrape(per_key, key_starts)
    if overall:
        return IngestScrape({"all": overall}, {"all": overall_starts})
    return IngestScrape({})


def _earliest(starts: dict[str, float], outcome: str, at: float) -> None:
    starts[outcome] = min(starts.get(outcome, at), at)


class IngestSource:
    """Scrapes ingest's /metrics; None when ingest does not answer."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self._client = client
        self._url = url

    async def read(self) -> IngestScrape | None:
        try:
            response = await self._client.get(f"{self._url}/metrics")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("ingest metrics unavailable: %r", exc)
            return None
        return parse_ingest_counters(response.text)


async def ingest_keys(conn: Connection) -> list[tuple[str, str, list[str]]]:
    """Every ingest key as (key id, name, unit scope), revoked ones too: a revoked key's
    open rejection alert still resolves, under its name and province."""
    rows = await conn.fetch("SELECT key_id, name, units FROM ingest_api_keys")
    return [(r["key_id"], r["name"], list(r["units"])) for r in rows]


async def daily_history(
    conn: Connection, families: Mapping[str, str], first: date, today: date
) -> list[HistoryRow]:
    """(unit, family, events, first day with an event) from the metrics' daily figures.

    A day's events of a family are the largest denominator among the family's KPIs that
    day (each KPI counts a subset of the family's events: a lower bound, and exact for
    the active days); days ``first`` .. yesterday, partitions summed.
    """
    kpis = sorted(families)
    rows = await conn.fetch(
        """
        SELECT unit, family, sum(events)::bigint AS events, min(day) AS first_day
        FROM (
            SELECT d.unit, f.family, d.day, max(d.n) AS events
            FROM (SELECT unit, kpi, day, sum(denominator) AS n FROM kpi_daily
                  WHERE day >= $3 AND day < $4 GROUP BY unit, kpi, day) AS d
            JOIN unnest($1::text[], $2::text[]) AS f(kpi, family) ON f.kpi = d.kpi
            WHERE d.n > 0
            GROUP BY d.unit, f.family, d.day
        ) AS per_day
        GROUP BY unit, family
        """,
        kpis,
        [families[k] for k in kpis],
        first,
        today,
    )
    return [(r["unit"], r["family"], int(r["events"]), r["first_day"]) for r in rows]
