"""What the PostgreSQL fault tests (tests/faults/test_postgres_outage.py, review 70) run
and read back: a metrics worker's environment and events, the rows written (read
directly, not through a proxy), the figures a worker exports and the dead letters."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import asyncpg
import httpx

from services.common.settings import CommonSettings
from tests.faults.conftest import samples, until
from tests.integration.metrics.harness import mixed_messages
from tests.integration.processes import read_topic, service_env

KPI = "document_electronic"


def metrics_env(
    settings: CommonSettings, database_url: str, app_id: str, port: int, data_dir: Path
) -> dict[str, str]:
    """An `egov-pulse metrics` process of a consumer group of its own (``app_id``-...).

    Its counting says it is stalled after 2 s with nothing committed (production: 60 s),
    as the tests' silence floors are seconds (production: working hours)."""
    return service_env(settings, database_url) | {
        "EGOV_METRICS_APP_ID": f"{app_id}-{uuid.uuid4().hex[:8]}",
        "EGOV_METRICS_WEB_PORT": str(port),
        "EGOV_METRICS_DATA_DIR": str(data_dir),
        "EGOV_METRICS_STALL_AFTER_S": "2",
    }


def two_rounds(
    first: int, second: int, pairs: list[tuple[str, str]]
) -> tuple[list[tuple[bytes, bytes]], list[tuple[bytes, bytes]], Counter[str]]:
    """``mixed_messages`` of ``first`` events, then of ``second`` more; the distinct
    events per province of both."""
    before, want = mixed_messages(0, first, pairs)
    after, more = mixed_messages(first, second, pairs)
    want.update(more)
    return before, after, want


async def fetch(database_url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """The rows of ``query``, on a connection of its own."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def seen_keys(database_url: str) -> int:
    """The dedup keys in PostgreSQL (without reading ``kpi_daily``, which may be locked)."""
    (keys,) = await fetch(database_url, "SELECT count(*) FROM metrics_seen_events")
    n: int = keys[0]
    return n


async def stored(database_url: str) -> tuple[int, dict[str, int]]:
    """(dedup keys, denominator per unit of ``KPI``) in PostgreSQL, read directly."""
    keys = await seen_keys(database_url)
    rows = await fetch(
        database_url,
        "SELECT unit, sum(denominator)::bigint d FROM kpi_daily WHERE kpi = $1 GROUP BY unit",
        KPI,
    )
    return keys, {r["unit"]: r["d"] for r in rows}


async def keys_are(database_url: str, n: int) -> bool:
    return await seen_keys(database_url) == n


async def transitions(database_url: str) -> list[tuple[str, str]]:
    """(unit, state) of every alert transition written, in order."""
    rows = await fetch(
        database_url,
        "SELECT a.unit, t.to_state FROM alert_transitions t JOIN alerts a ON a.id = "
        "t.alert_id ORDER BY t.seq",
    )
    return [(r["unit"], r["to_state"]) for r in rows]


async def equals(reading: object, want: object) -> bool:
    return bool(await reading == want)  # type: ignore[misc]


async def ready(client: httpx.AsyncClient, url: str) -> bool:
    try:
        return (await client.get(url + "/readyz", timeout=5)).status_code == 200
    except httpx.TransportError:
        return False


async def logged(log: Path, text: str) -> bool:
    return text in await asyncio.to_thread(log.read_text, errors="replace")


async def dead_letter_count(settings: CommonSettings) -> int:
    return len(await read_topic(settings, settings.topic_dead_letter, timeout_ms=1500))


async def wait_exported(
    client: httpx.AsyncClient, url: str, want: Mapping[str, int], within_s: float
) -> None:
    """Until the worker at ``url`` exports ``KPI``'s denominator of each unit of ``want``
    once (one series), at its count."""
    exported: dict[str, list[float]] = {}

    async def exported_right() -> bool:
        exported.clear()
        for labels, value in await samples(client, url, "egov_kpi_denominator_total"):
            if labels.get("kpi") == KPI:
                exported.setdefault(labels["unit"], []).append(value)
        return all(exported.get(p) == [n] for p, n in want.items())

    await until(exported_right, within_s, lambda: f"{exported} != {dict(want)}")
