"""Review 43 (fixed 2026-12-05): ingest seen from a hostile or buggy publisher, on the
real stack (ingest in-process, signing and summarising as in production, the real broker
and PostgreSQL, and a real metrics worker whose counting is asserted)."""

from __future__ import annotations

import asyncio
import secrets
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.common.settings import CommonSettings
from services.common.units import VN_TZ
from services.ingest.keystore import create_key
from tests.integration.ingest.harness import (
    ALL_TYPES,
    HAC_THANH,
    HAM_RONG,
    Ingest,
    event,
    ingest_settings,
    running_ingest,
)
from tests.integration.metrics.harness import WorkerProcess, workers

pytestmark = pytest.mark.integration

SIGNING_KEY = secrets.token_hex(32)
PORTAL = "https://dichvucong.thanhhoa.gov.vn/"
RESOLVED_V2 = "https://schemas.egov-pulse.vn/vn.egov.dossier.resolved/v2.json"
IN_TIME = ["dossier_on_time:early", "dossier_on_time:on_time"]


def receipt(unit: str, dossier_id: str, at: datetime, due: str) -> dict[str, Any]:
    data = {
        "dossier_id": dossier_id,
        "procedure_code": "1.001612",
        "service_level": "full",
        "channel": "online",
        "due_at": due,
    }
    made = event(unit, "vn.egov.dossier.received", at=at, source=PORTAL + "motcua", data=data)
    made.pop("dataschema", None)
    return made


def outcome(unit: str, dossier_id: str, at: datetime, result: str) -> dict[str, Any]:
    data = {"dossier_id": dossier_id, "outcome": result}
    return event(
        unit,
        "vn.egov.dossier.resolved",
        at=at,
        source=PORTAL + "motcua",
        data=data,
        dataschema=RESOLVED_V2,
    )


async def add_key(ingest: Ingest, name: str, unit: str) -> None:
    """A key of one commune for every type, bound to the province's portal."""
    conn = await asyncpg.connect(ingest.settings.database_url.get_secret_value())
    try:
        made = await create_key(conn, name, [unit], ALL_TYPES, sources=[PORTAL])
    finally:
        await conn.close()
    ingest.keys[name] = made.token


async def figure(database_url: str, unit: str, kpi: str | list[str]) -> int:
    kpis = [kpi] if isinstance(kpi, str) else kpi
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchval(
            "SELECT coalesce(sum(denominator), 0) FROM kpi_daily"
            " WHERE unit = $1 AND kpi = ANY($2::text[])",
            unit,
            kpis,
        )
    finally:
        await conn.close()
    return int(found)


async def until(
    database_url: str, unit: str, kpi: str | list[str], least: int, worker: WorkerProcess
) -> None:
    deadline = time.monotonic() + 40
    while (found := await figure(database_url, unit, kpi)) < least:
        assert time.monotonic() < deadline, f"{unit} {kpi}: {found} < {least}\n{worker.tail()}"
        await asyncio.sleep(0.2)


async def test_one_publishers_dossier_ids_do_not_change_another_publishers_on_time_figures(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """Hạc Thành's portal publishes three dossiers, each received with an appointment
    in two days and approved today: three resolved in time (early) for Hạc Thành. Hàm
    Rồng's key (another commune; ingest holds it to its scope: every event it sends is
    for Hàm Rồng) published two of those printed, sequential receipt ids first: a withdrawal of one,
    a receipt of the other. Its events are its own (dedup per publisher); they must not
    decide Hạc Thành's dossiers."""
    settings = ingest_settings(common_settings, database_url, record_signing_key=SIGNING_KEY)
    now = datetime.now(UTC)
    due = (now.astimezone(VN_TZ) + timedelta(days=2)).date().isoformat()
    received_at, withdrawn_at, approved_at = (now - timedelta(hours=h) for h in (3, 2, 1))
    ids = ["H38.HT-0001", "H38.HT-0002", "H38.HT-0003"]
    async with running_ingest(settings) as ingest:
        await add_key(ingest, "portal-ham-rong", HAM_RONG)
        await add_key(ingest, "portal-hac-thanh", HAC_THANH)
        hostile = [
            outcome(HAM_RONG, ids[0], withdrawn_at, "withdrawn"),
            receipt(HAM_RONG, ids[1], received_at - timedelta(minutes=5), due),
        ]
        assert (await ingest.post(hostile, key="portal-ham-rong")).status_code == 202
        own = [receipt(HAC_THANH, d, received_at, due) for d in ids]
        own += [outcome(HAC_THANH, d, approved_at, "approved") for d in ids]
        assert (await ingest.post(own, key="portal-hac-thanh")).status_code == 202
        with workers(
            common_settings, database_url, tmp_path, 1, EGOV_RECORD_SIGNING_KEY=SIGNING_KEY
        ) as (worker,):
            # Every receipt of Hạc Thành counted (per publisher, so all three): the
            # worker has read the request, whose approvals follow in the same record.
            await until(database_url, HAC_THANH, "dossier_online", 3, worker)
            await until(database_url, HAC_THANH, IN_TIME, 1, worker)
            await asyncio.sleep(2)
            on_time = await figure(database_url, HAC_THANH, IN_TIME)
            taken = await figure(database_url, HAM_RONG, IN_TIME)
    assert (on_time, taken) == (3, 0), (
        f"Hạc Thành's three dossiers resolved in time: {on_time} counted for it, "
        f"{taken} for Hàm Rồng"
    )
