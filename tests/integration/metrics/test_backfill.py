"""`egov-pulse backfill` into a real worker: history counted in its day, exactly once.

The real command publishes a file of events 200 days old (far beyond the counting grace
of 14 days) to the real broker; a real worker counts them in kpi_daily and /v1/kpis/history.
Running the file again, and again after pruning the dedup keys, changes nothing; a live
event beyond the grace is still dead-lettered as too late.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from services.common.broker import free_port
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.ingest.keystore import create_key
from services.metrics import store
from services.metrics.periods import VN_TZ, Periods, local_day
from tests.integration.metrics.harness import (
    WorkerProcess,
    communes_by_province,
    document,
    publish,
    workers,
)
from tests.integration.processes import running_service, service_env

pytestmark = pytest.mark.integration
KPI = "document_electronic"  # every document enters the denominator; electronic ones the numerator
UNIT, PROVINCE = "01843", "19"  # Phường Bắc Kạn -> Thái Nguyên (the 2025 hierarchy)
OLD, OTHER = 40, 3  # backfilled events at UNIT, and at a commune of another province

Daily = list[tuple[str, str, str, int, int]]


def run_backfill(path: Path, env: dict[str, str], *whose: str) -> subprocess.CompletedProcess[str]:
    """``egov-pulse backfill PATH`` as an operator runs it; unbound unless ``whose`` says
    ``--publisher NAME``."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", "backfill", str(path), *(whose or ["--unbound"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def total(worker: WorkerProcess, name: str) -> float:
    return sum(value for _, value in worker.samples(name))


def wait_for(what: str, condition: Callable[[], bool], worker: WorkerProcess) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"{what}\n{worker.tail()}"
        time.sleep(0.2)


async def daily(database_url: str) -> Daily:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT unit, kpi, day, sum(numerator)::bigint n, sum(denominator)::bigint d "
            "FROM kpi_daily GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
        )
    finally:
        await conn.close()
    return [(r["unit"], r["kpi"], r["day"].isoformat(), r["n"], r["d"]) for r in rows]


async def keys(database_url: str) -> tuple[int, int]:
    """(all dedup keys, backfilled ones)."""
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) a, count(*) FILTER (WHERE backfill) b FROM metrics_seen_events"
        )
    finally:
        await conn.close()
    return row["a"], row["b"]


async def prune(database_url: str, grace: timedelta) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        # No backlog margin: the test's live events are days old, not weeks.
        backlog = timedelta(0)
        pruned, _ = await store.prune(conn, Periods.at(datetime.now(UTC)), grace, backlog=backlog)
    finally:
        await conn.close()
    return pruned


async def dead_letters(settings: CommonSettings) -> list[tuple[bytes, dict[str, bytes]]]:
    """Everything on the dead-letter topic up to its current end."""
    consumer = AIOKafkaConsumer(
        settings.topic_dead_letter,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    found: list[tuple[bytes, dict[str, bytes]]] = []
    try:
        tps = list(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found += [(m.value or b"", dict(m.headers)) for m in messages]
    finally:
        await consumer.stop()
    return found


def history(worker: WorkerProcess, unit: str) -> list[dict[str, Any]]:
    response = httpx.get(
        worker.url + "/v1/kpis/history", params={"unit": unit, "kpi": KPI, "days": 210}, timeout=10
    )
    assert response.status_code == 200, response.text
    # The fields this test checks (items also carry rate_bp and restated).
    fields = ("day", "numerator", "denominator", "ratio")
    return [{k: item[k] for k in fields} for item in response.json()["items"]]


def test_backfilled_history_counts_in_its_day_exactly_once(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    now = datetime.now(UTC)
    # 10:00 in Vietnam 200 days ago, plus a minute per event: all on one local day.
    old_day = local_day(now) - timedelta(days=200)
    old_at = datetime(old_day.year, old_day.month, old_day.day, 10, tzinfo=VN_TZ)
    (other_unit, other_province), *_ = [p for p in communes_by_province(5) if p[1] != PROVINCE]
    old = [document(f"old-{i}", UNIT, old_at + timedelta(minutes=i)) for i in range(OLD)]
    old += [document(f"other-{i}", other_unit, old_at) for i in range(OTHER)]
    # Live events 4 days old (within the grace): one of them is in the backfill file too.
    live_only, live_and_backfilled = (document(n, UNIT, now - timedelta(days=4)) for n in "LB")
    grace = timedelta(days=common_settings.counting_grace_days)
    too_late = document("late", UNIT, now - grace - timedelta(days=3))
    lines = [orjson.dumps(e).decode() for e in old[:10]]
    lines += [
        "{not json",
        orjson.dumps(document("bad-unit", "99999", old_at)).decode(),
        orjson.dumps(document("future", UNIT, datetime(2099, 1, 1, tzinfo=UTC))).decode(),
    ]
    lines += [orjson.dumps(e).decode() for e in [*old[10:], live_and_backfilled]]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    env = service_env(common_settings, database_url)

    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        live = [live_only, live_and_backfilled, too_late]
        asyncio.run(publish(common_settings, [(PROVINCE.encode(), orjson.dumps(e)) for e in live]))
        wait_for(
            "the live events were not handled",
            lambda: (
                total(worker, "egov_events_processed_total") == 2
                and total(worker, "egov_events_too_late_total") == 1
            ),
            worker,
        )

        first = run_backfill(path, env)
        assert first.returncode == 1, first.stdout + first.stderr
        assert "line 11: /: not valid JSON" in first.stdout
        assert "line 12: /unit:" in first.stdout
        assert "line 13: /time:" in first.stdout and "future" in first.stdout
        assert f"published {OLD + OTHER + 1} events; refused 3 lines" in first.stdout
        wait_for(
            "the backfill was not counted",
            lambda: (
                total(worker, "egov_events_processed_total") == 2 + OLD + OTHER
                and total(worker, "egov_events_duplicate_total") == 1
            ),
            worker,
        )
        counted = asyncio.run(daily(database_url))
        day = old_day.isoformat()
        assert (UNIT, KPI, day, OLD, OLD) in counted
        assert (PROVINCE, KPI, day, OLD, OLD) in counted
        assert (other_unit, KPI, day, OTHER, OTHER) in counted
        assert (other_province, KPI, day, OTHER, OTHER) in counted
        assert {"day": day, "numerator": OLD, "denominator": OLD, "ratio": 1.0} in history(
            worker, PROVINCE
        )
        assert total(worker, "egov_events_backfilled_total") == OLD + OTHER
        # The exported all-time totals hold the history too (the day window does not).
        totals = {
            labels["unit"]: value
            for labels, value in worker.samples("egov_kpi_denominator_total")
            if labels["kpi"] == KPI
        }
        assert totals[UNIT] == totals[PROVINCE] == OLD + 2
        assert asyncio.run(keys(database_url)) == (OLD + OTHER + 2, OLD + OTHER + 1)

        def rerun_changes_nothing(duplicates: int) -> None:
            again = run_backfill(path, env)
            assert f"published {OLD + OTHER + 1} events" in again.stdout, again.stderr
            wait_for(
                "the re-run was not read",
                lambda: total(worker, "egov_events_duplicate_total") == duplicates,
                worker,
            )
            assert asyncio.run(daily(database_url)) == counted
            assert total(worker, "egov_events_processed_total") == 2 + OLD + OTHER
            assert total(worker, "egov_events_backfilled_total") == OLD + OTHER

        rerun_changes_nothing(duplicates=1 + (OLD + OTHER + 1))
        # Live keys go once older than the grace (1 day here, to reach the live ones);
        # backfilled keys stay, including the live event the backfill delivered again.
        assert asyncio.run(prune(database_url, timedelta(days=1))) == 1
        assert asyncio.run(keys(database_url)) == (OLD + OTHER + 1, OLD + OTHER + 1)
        rerun_changes_nothing(duplicates=1 + 2 * (OLD + OTHER + 1))
        too_late_total = total(worker, "egov_events_too_late_total")

    found = asyncio.run(dead_letters(common_settings))
    assert [(orjson.loads(v), h["dlq_reason"]) for v, h in found] == [(too_late, b"too-late")]
    assert too_late_total == 1


def test_a_backfill_bound_to_its_publisher_counts_what_it_sent_live_once(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """An office's export that overlaps what its system already sent live through ingest:
    with ``--publisher`` its events carry the live identity (publisher, source, id), so the
    overlap counts once; a publisher name no key ever had is refused before anything is
    sent (it would bind the events to nobody's live identity and count them twice)."""
    asyncio.run(ensure_topics(common_settings))
    token = asyncio.run(_key(database_url, "thai-nguyen-office"))
    now = datetime.now(UTC)
    live = [document(f"live-{i}", UNIT, now - timedelta(days=4)) for i in range(5)]
    old = [document(f"old-{i}", UNIT, now - timedelta(days=60)) for i in range(3)]
    path = tmp_path / "export.jsonl"
    path.write_text("".join(orjson.dumps(e).decode() + "\n" for e in [*old, *live]))
    env = service_env(common_settings, database_url)
    port = free_port()
    with (
        workers(common_settings, database_url, tmp_path, 1) as (worker,),
        running_service(
            ["ingest"], env | {"EGOV_INGEST_PORT": str(port)}, port, tmp_path / "ingest.log"
        ) as ingest,
    ):
        posted = httpx.post(
            ingest + "/v1/events",
            content=orjson.dumps(live),
            headers={
                "content-type": "application/cloudevents-batch+json",
                "authorization": f"Bearer {token}",
            },
        )
        assert posted.status_code == 202, posted.text
        wait_for(
            "the live events were not counted",
            lambda: total(worker, "egov_events_processed_total") == len(live),
            worker,
        )

        typo = run_backfill(path, env, "--publisher", "thai-nguyen-ofice")
        assert typo.returncode == 2, typo.stdout + typo.stderr
        assert "no API key was ever named 'thai-nguyen-ofice'" in typo.stderr
        assert "published" not in typo.stdout  # refused before a line was read

        bound = run_backfill(path, env, "--publisher", "thai-nguyen-office")
        assert bound.returncode == 0, bound.stdout + bound.stderr
        assert f"published {len(old) + len(live)} events; refused 0 lines" in bound.stdout
        wait_for(
            "the backfill was not counted",
            lambda: total(worker, "egov_events_duplicate_total") == len(live),
            worker,
        )
        assert total(worker, "egov_events_processed_total") == len(live) + len(old)
        assert total(worker, "egov_events_backfilled_total") == len(old)
        totals = {
            labels["unit"]: value
            for labels, value in worker.samples("egov_kpi_denominator_total")
            if labels["kpi"] == KPI
        }
        assert totals[UNIT] == totals[PROVINCE] == len(live) + len(old)


def test_a_backfill_says_whose_events_it_publishes(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "export.jsonl"
    path.write_text(orjson.dumps(document("x", UNIT)).decode() + "\n")
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "backfill", str(path)],
        env=service_env(common_settings, database_url),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "one of the arguments --publisher --unbound is required" in done.stderr


async def _key(database_url: str, name: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        key = await create_key(
            conn, name, [PROVINCE], ["vn.egov.document.issued"], sources=["urn:"]
        )
    finally:
        await conn.close()
    return key.token
