"""A real worker's read endpoints: bounded parameters refused with problem+json, /v1/kpis
from the published snapshot, history across the reform from PostgreSQL (issues 15, 16)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.metrics.periods import ALL_WINDOWS, local_day
from tests.integration.metrics.harness import WorkerProcess, workers

pytestmark = pytest.mark.integration
KPI = "document_signing"


async def store_figures(settings: CommonSettings, database_url: str) -> None:
    rows = [
        ("16342", date(2025, 3, 2), 29, 30),  # Xã Thăng Long (2024 era)
        ("16351", date(2025, 3, 2), 7, 10),  # Xã Thăng Bình (2024 era)
        ("16342", date(2025, 9, 1), 9, 9),  # Xã Thăng Bình (today's 16342)
        ("01843", local_day(datetime.now(UTC)), 3, 4),
    ]
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO kpi_daily (topic, partition, unit, kpi, day, numerator, denominator)"
            " VALUES ($1, 0, $2, $3, $4, $5, $6)",
            [(settings.topic_documents, unit, KPI, day, n, d) for unit, day, n, d in rows],
        )
    finally:
        await conn.close()


def kpis_once_loaded(url: str) -> dict[str, Any]:
    """/v1/kpis once the worker has claimed its partitions and published them."""
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(url + "/v1/kpis", params={"unit": "01843", "kpi": KPI}, timeout=10)
        assert answer.status_code in (200, 503), answer.text
        if answer.status_code == 200 and answer.json()["items"]:
            return dict(answer.json())
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.3)


def builds(worker: WorkerProcess) -> float:
    [(_, value)] = worker.samples("egov_metrics_snapshot_builds_total")
    return value


async def request_burst(url: str, count: int) -> list[int]:
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(
            *(client.get(url + "/v1/kpis", params={"window": "day"}) for _ in range(count))
        )
    return [a.status_code for a in answers]


def test_read_endpoints_are_bounded_and_answer_from_the_snapshot(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    asyncio.run(store_figures(common_settings, database_url))
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        body = kpis_once_loaded(worker.url)
        builds_before = builds(worker)
        burst = asyncio.run(request_burst(worker.url, 100))
        builds_after = builds(worker)
        huge = [
            httpx.get(
                worker.url + "/v1/kpis/history",
                params={"unit": "16342", "kpi": KPI, "days": days},
                timeout=10,
            )
            for days in ("10" * 20, "100000")
        ]
        year = httpx.get(
            worker.url + "/v1/kpis/history",
            params={"unit": "16342", "kpi": KPI, "year": "2025"},
            timeout=10,
        )
        alive = httpx.get(worker.url + "/healthz", timeout=10)
    # 100 requests answered, and at most one publication's builds meanwhile (a 5-minute
    # bucket may roll): the items were not built per request.
    assert burst == [200] * 100
    assert builds_after - builds_before <= len(ALL_WINDOWS)
    [item] = body["items"]
    assert (item["numerator"], item["denominator"]) == (3, 4)
    assert 0 <= body["snapshot_age_s"] < 30
    for refused in huge:
        assert refused.status_code == 400, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        problem = refused.json()
        assert problem["parameter"] == "days" and problem["limit"] == "1..800"
        assert problem["status"] == 400 and "days" in problem["detail"]
    assert alive.status_code == 200  # refused, not broken
    assert year.status_code == 200, year.text
    answer = year.json()
    assert answer["restated"] is True and answer["restated_from"] == ["16342", "16351", "16360"]
    assert [
        (i["day"], i["numerator"], i["denominator"], i["restated"]) for i in answer["items"]
    ] == [
        ("2025-03-02", 36, 40, True),
        ("2025-09-01", 9, 9, False),
    ]
    assert [(y["year"], y["numerator"], y["denominator"]) for y in answer["years"]] == [
        (2025, 45, 49)
    ]
