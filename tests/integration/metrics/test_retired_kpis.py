"""A stored figure whose KPI the catalogue lost: a real worker serves it as retired, with
/v1/kpis answering 200 and /metrics complete (issue 14)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.metrics.periods import local_day
from tests.integration.metrics.harness import workers

pytestmark = pytest.mark.integration
RETIRED = "document_signing_2019"  # not in data/kpis.json: removed or renamed since


async def store_retired_figure(settings: CommonSettings, database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        for unit in ("01843", "19"):
            await conn.execute(
                "INSERT INTO kpi_daily (topic, partition, unit, kpi, day, numerator, denominator)"
                " VALUES ($1, 0, $2, $3, $4, 3, 4)",
                settings.topic_documents,
                unit,
                RETIRED,
                local_day(datetime.now(UTC)),
            )
    finally:
        await conn.close()


def test_a_worker_serves_figures_of_a_retired_kpi(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    asyncio.run(store_retired_figure(common_settings, database_url))
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        deadline = time.monotonic() + 30
        while True:
            answer = httpx.get(worker.url + "/v1/kpis", params={"window": "day"}, timeout=10)
            assert answer.status_code == 200, answer.text
            items = [i for i in answer.json()["items"] if i["kpi"] == RETIRED]
            if items or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        scrape = httpx.get(worker.url + "/metrics", timeout=10)
    assert {(i["unit"], i["numerator"], i["denominator"]) for i in items} == {
        ("01843", 3, 4),
        ("19", 3, 4),
    }
    assert all(i["retired"] is True and i["target"] is None for i in items)
    assert scrape.status_code == 200
    families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
    retired = [s.labels for s in families["egov_kpi_retired_info"].samples]
    assert retired == [{"kpi": RETIRED}]
    ratios = {
        (s.labels["unit"], s.labels["kpi"]): s.value
        for s in families["egov_kpi_ratio"].samples
        if s.labels["window"] == "day"
    }
    assert ratios == {("01843", RETIRED): 0.75, ("19", RETIRED): 0.75}
    # The scrape is whole: the worker's own counters, written after the KPI series, are there.
    assert "egov_events_processed" in families and "egov_unit_info" in families
