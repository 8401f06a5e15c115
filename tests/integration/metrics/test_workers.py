"""Two workers on the real broker: one SIGKILLed mid-stream and restarted; counts exact."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import (
    WorkerProcess,
    communes_by_province,
    mixed_messages,
    publish,
    workers,
)

pytestmark = pytest.mark.integration
KPI = "document_electronic"


def exported(procs: list[WorkerProcess]) -> dict[str, list[tuple[str, float]]]:
    """Today's denominator per unit, as each live worker exports it (worker name per copy)."""
    seen: dict[str, list[tuple[str, float]]] = {}
    for proc in procs:
        for labels, value in proc.samples("egov_kpi_denominator"):
            if labels["kpi"] == KPI and labels["window"] == "day":
                seen.setdefault(labels["unit"], []).append((proc.name, value))
    return seen


def processed(proc: WorkerProcess) -> float:
    try:
        return sum(v for _, v in proc.samples("egov_events_processed_total"))
    except httpx.TransportError:
        return 0.0


async def stored(database_url: str) -> tuple[int, dict[str, int]]:
    """The keys and the figures of one snapshot: read apart, a flush committing between
    the two reads gave figures complete and keys one flush short (CI, 2026-12-05)."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            keys = await conn.fetchval("SELECT count(*) FROM metrics_seen_events")
            rows = await conn.fetch(
                "SELECT unit, sum(denominator)::bigint d FROM kpi_daily WHERE kpi = $1"
                " GROUP BY unit",
                KPI,
            )
    finally:
        await conn.close()
    return keys, {r["unit"]: r["d"] for r in rows}


def test_sigkill_mid_stream_then_restart_counts_every_event_once(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    pairs = communes_by_province(12)
    asyncio.run(ensure_topics(common_settings))
    first, expected = mixed_messages(0, 10_000, pairs)
    second, more = mixed_messages(10_000, 10_000, pairs)
    expected.update(more)
    assert sum(expected.values()) == 20_000
    with workers(common_settings, database_url, tmp_path, 2) as (a, b):
        asyncio.run(publish(common_settings, first))
        deadline = time.monotonic() + 60
        while processed(a) == 0:
            assert time.monotonic() < deadline, a.tail()
            time.sleep(0.05)
        a.kill()  # mid-stream: its last batch may be counted or not, never half
        asyncio.run(publish(common_settings, second))
        a.start()
        deadline = time.monotonic() + 90
        while True:
            keys, by_unit = asyncio.run(stored(database_url))
            provinces = {p: by_unit.get(p, 0) for p in expected}
            figures = exported([a, b])
            if (
                provinces == dict(expected)
                and all(len(figures.get(p, [])) == 1 for p in expected)
                and {p: figures[p][0][1] for p in expected} == dict(expected)
            ):
                break
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"did not converge: stored {provinces}, exported {figures}, "
                    f"expected {dict(expected)}\n{a.tail()}\n{b.tail()}"
                )
            time.sleep(0.5)
        assert keys == 20_000
        # Both workers took part after the restart, and no series is exported twice.
        owners = Counter(copies[0][0] for copies in figures.values())
        assert set(owners) == {"w0", "w1"}, owners
        communes = {c for c, _ in pairs}
        assert all(len(figures[c]) == 1 for c in communes)
        duplicates = sum(v for _, v in a.samples("egov_events_duplicate_total")) + sum(
            v for _, v in b.samples("egov_events_duplicate_total")
        )
        assert duplicates > 0
