"""Where ingest's counters come from: its Prometheus /metrics.

The figures of the metrics workers are read by :mod:`services.common.figures_client`,
shared with the wall page.
"""

from __future__ import annotations

import logging

import httpx
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)


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
