"""Trust boundaries at ingest, on the real stack: ingest (in-process, signing and
summarising as in production), the real broker and PostgreSQL, and a real metrics worker
whose counting is asserted.

- One publisher cannot silence another: key A publishing key B's (source, id) first
  does not stop B's events from being counted.
- A key is bound to its sources: a batch with a foreign source is a 403 naming it and
  the key's prefixes, nothing of it is produced, and the key's own events, resent
  without it, are all counted.
- The dedup cut-over of migration 0013: an event counted before the upgrade, sent again
  after it, counts once; an event dated after the cut-over carries its publisher.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.common.db import migrate
from services.common.settings import CommonSettings
from services.common.summaries import dedup_digest
from services.ingest.keystore import create_key, find_cutover, rotate_key
from services.ingest.settings import IngestSettings
from tests.integration.ingest.harness import (
    ALL_TYPES,
    HAM_RONG,
    THANH_HOA,
    Ingest,
    event,
    ids,
    ingest_settings,
    running_ingest,
    topic_events,
)
from tests.integration.metrics.harness import WorkerProcess, workers

pytestmark = pytest.mark.integration

PORTAL = "https://dichvucong.thanhhoa.gov.vn/"
TDOFFICE = "https://tdoffice.thanhhoa.gov.vn/"
KPI = "document_electronic"  # every unclassified document is in its denominator
SIGNING_KEY = secrets.token_hex(32)


def document(event_id: str, source: str, at: datetime | None = None) -> dict[str, Any]:
    data = {"document_id": event_id, "electronic": True, "signed": True}
    made = event(HAM_RONG, source=source, data=data, at=at)
    made["id"] = event_id
    return made


def settings_for(common: CommonSettings, database_url: str, **overrides: Any) -> IngestSettings:
    return ingest_settings(common, database_url, record_signing_key=SIGNING_KEY, **overrides)


async def add_key(ingest: Ingest, name: str, sources: list[str]) -> str:
    """A key of Thanh Hóa for every type, bound to ``sources``; usable as ``key=name``."""
    conn = await asyncpg.connect(ingest.settings.database_url.get_secret_value())
    try:
        made = await create_key(conn, name, [THANH_HOA], ALL_TYPES, sources=sources)
    finally:
        await conn.close()
    ingest.keys[name] = made.token
    return made.token


async def counted(database_url: str) -> int:
    """Documents of Hàm Rồng counted in the daily figures, all partitions together."""
    conn = await asyncpg.connect(database_url)
    try:
        found = await conn.fetchval(
            "SELECT coalesce(sum(denominator), 0) FROM kpi_daily WHERE unit = $1 AND kpi = $2",
            HAM_RONG,
            KPI,
        )
    finally:
        await conn.close()
    return int(found)


async def stored_digests(database_url: str) -> set[bytes]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT digest FROM metrics_seen_events")
    finally:
        await conn.close()
    return {bytes(r["digest"]) for r in rows}


async def until_counted(database_url: str, expected: int, worker: WorkerProcess) -> None:
    """Wait (30 s at most) until the worker has counted ``expected`` documents."""
    deadline = time.monotonic() + 30
    found = await counted(database_url)
    while found != expected:
        assert found < expected, f"counted {found}, more than the {expected} published"
        assert time.monotonic() < deadline, f"counted {found} of {expected}\n{worker.tail()}"
        await asyncio.sleep(0.2)
        found = await counted(database_url)


def one_worker(common: CommonSettings, database_url: str, tmp_path: Path) -> Callable[[], Any]:
    return lambda: workers(common, database_url, tmp_path, 1, EGOV_RECORD_SIGNING_KEY=SIGNING_KEY)


async def test_key_a_publishing_key_bs_ids_first_does_not_stop_bs_events_counting(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """Both systems may publish under the shared portal's source (their keys overlap), so
    source binding alone does not separate them: dedup per publisher must. Receipt ids
    are printed and sequential, so A can publish B's next ones first."""
    settings = settings_for(common_settings, database_url)
    async with running_ingest(settings) as ingest:
        await add_key(ingest, "portal-a", [PORTAL])
        await add_key(ingest, "portal-b", [PORTAL])
        receipts = [f"HS-{n:04d}" for n in range(1, 6)]
        forged = [document(r, PORTAL + "motcua") for r in receipts]
        assert (await ingest.post(forged, key="portal-a")).status_code == 202
        with one_worker(common_settings, database_url, tmp_path)() as (worker,):
            await until_counted(database_url, 5, worker)  # A's, counted first
            real = [document(r, PORTAL + "motcua") for r in receipts]
            real_single = document("HS-0006", PORTAL + "motcua")
            assert (await ingest.post(real, key="portal-b")).status_code == 202
            assert (await ingest.post(real_single, key="portal-b")).status_code == 202
            await until_counted(database_url, 5 + 6, worker)  # B's too: none suppressed
    digests = await stored_digests(database_url)
    for r in [*receipts, "HS-0006"]:
        assert dedup_digest(PORTAL + "motcua", r, "portal-b") in digests
    for r in receipts:
        assert dedup_digest(PORTAL + "motcua", r, "portal-a") in digests


async def test_a_foreign_source_is_403_and_none_of_the_keys_own_events_is_lost(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """The refused batch is refused whole (as every 403: nothing of it is produced); the
    problem names the foreign source and the key's prefixes, so the publisher resends its
    own events without it, and every one of them is counted once."""
    settings = settings_for(common_settings, database_url)
    async with running_ingest(settings) as ingest:
        await add_key(ingest, "tdoffice-38", [TDOFFICE])
        before = document("vb-0", TDOFFICE + "nongcong")
        assert (await ingest.post(before, key="tdoffice-38")).status_code == 202
        own = [document("vb-1", TDOFFICE + "nongcong"), document("vb-2", TDOFFICE + "hamrong")]
        foreign = document("hs-9", PORTAL + "motcua")
        refused = await ingest.post([own[0], foreign, own[1]], key="tdoffice-38")
        assert refused.status_code == 403
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["type"].endswith("/out-of-scope")
        assert [(e["index"], e["pointer"], e["code"]) for e in problem["errors"]] == [
            (1, "/source", "source-out-of-scope")
        ]
        assert PORTAL + "motcua" in problem["errors"][0]["reason"]
        assert f"its sources: {TDOFFICE}" in problem["errors"][0]["reason"]
        assert ids(await topic_events(settings)) == ids([before])  # nothing of the batch
        assert (await ingest.post(own, key="tdoffice-38")).status_code == 202
        assert ids(await topic_events(settings)) == ids([before, *own])
        with one_worker(common_settings, database_url, tmp_path)() as (worker,):
            await until_counted(database_url, 3, worker)


async def test_a_rotated_key_still_deduplicates_against_its_old_events(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """The publisher is the key's name, not its id: after `keys create --rotate`, a retry
    of an event the old key sent counts once."""
    settings = settings_for(common_settings, database_url, key_cache_ttl_s=0.01)
    async with running_ingest(settings) as ingest:
        await add_key(ingest, "tdoffice-38", [TDOFFICE])
        sent = [document(f"vb-{n}", TDOFFICE + "nongcong") for n in range(3)]
        assert (await ingest.post(sent, key="tdoffice-38")).status_code == 202
        conn = await asyncpg.connect(database_url)
        try:
            rotated = await rotate_key(
                conn, "tdoffice-38", [THANH_HOA], ALL_TYPES, sources=[TDOFFICE]
            )
        finally:
            await conn.close()
        old_token, ingest.keys["tdoffice-38"] = ingest.keys["tdoffice-38"], rotated.token
        assert rotated.key_id not in old_token
        new = document("vb-new", TDOFFICE + "nongcong")
        assert (await ingest.post([*sent, new], key="tdoffice-38")).status_code == 202
        with one_worker(common_settings, database_url, tmp_path)() as (worker,):
            await until_counted(database_url, 4, worker)
            last = document("vb-last", TDOFFICE + "nongcong")  # read after the retries
            assert (await ingest.post(last, key="tdoffice-38")).status_code == 202
            await until_counted(database_url, 5, worker)


async def upgrade_from_before_0013(database_url: str, counted_before: list[bytes]) -> None:
    """The database as an upgrade finds it (0013 not applied, dedup keys stored under the
    old identity), then migrated as `egov-pulse migrate` does."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await find_cutover(conn) is None  # a new database: nothing to cut over
        await conn.execute("DELETE FROM schema_migrations WHERE version LIKE '0013%'")
        await conn.execute("DROP TABLE ingest_dedup_cutover")
        await conn.execute(
            "INSERT INTO metrics_seen_events (digest, event_day) SELECT d, current_date"
            " FROM unnest($1::bytea[]) AS d",
            counted_before,
        )
        await migrate(conn)
        cutover = await find_cutover(conn)
        assert cutover is not None and cutover > datetime.now(UTC)
        # The migration ran an hour ago, as far as this test is concerned.
        await conn.execute(
            "UPDATE ingest_dedup_cutover SET unbound_before = now() - interval '1 hour'"
        )
    finally:
        await conn.close()


async def test_an_event_counted_before_the_upgrade_counts_once_after_it(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """Stored dedup keys are one-way digests of (source, id) and cannot gain a publisher:
    an event dated before the cut-over keeps that identity, so a retry of it after the
    upgrade is a duplicate; an event dated after it carries its publisher."""
    source = TDOFFICE + "nongcong"
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    await upgrade_from_before_0013(database_url, [dedup_digest(source, "vb-old")])
    settings = settings_for(common_settings, database_url)
    async with running_ingest(settings) as ingest:
        await add_key(ingest, "tdoffice-38", [TDOFFICE])
        retried = document("vb-old", source, two_hours_ago)  # counted before the upgrade
        fresh = [document(f"vb-{uuid.uuid4().hex[:6]}", source) for _ in range(3)]
        assert (await ingest.post([retried, *fresh], key="tdoffice-38")).status_code == 202
        with one_worker(common_settings, database_url, tmp_path)() as (worker,):
            await until_counted(database_url, 3, worker)
            # One more, after the others in the same partition: once it is counted, the
            # retry was read too and was a duplicate (counted once in all, before).
            last = document("vb-last", source)
            assert (await ingest.post(last, key="tdoffice-38")).status_code == 202
            await until_counted(database_url, 4, worker)
    digests = await stored_digests(database_url)
    assert dedup_digest(source, "vb-old") in digests
    assert dedup_digest(source, "vb-old", "tdoffice-38") not in digests
    assert {dedup_digest(source, e["id"], "tdoffice-38") for e in fresh} <= digests
