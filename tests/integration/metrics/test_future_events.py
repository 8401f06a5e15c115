"""Events dated in the future: refused beyond the clock skew, never blanking today's figures."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from services.common.tally import TallyEvent, dedup_digest
from services.metrics import store
from services.metrics.periods import Periods, local_day
from services.metrics.tally import PartitionBatch
from tests.integration.metrics.harness import document, workers
from tests.integration.metrics.test_dead_letters import dead_letters, produce
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"
KPI = "document_electronic"
YEAR_2030 = datetime(2030, 1, 1, tzinfo=UTC)


def test_future_events_are_dead_lettered_and_today_keeps_its_figures(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    now = datetime.now(UTC)
    soon = now + timedelta(seconds=60)  # within the 300 s skew: counted
    future = document("2030-single", UNIT, YEAR_2030)
    element = document("2030-element", UNIT, YEAR_2030)
    records = [
        (orjson.dumps(document("a", UNIT, now)), []),
        (orjson.dumps(document("soon", UNIT, soon)), []),
        (orjson.dumps(future), [("traceparent", b"00-future-01")]),
        (orjson.dumps([document("b", UNIT, now), element]), []),
    ]
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(produce(common_settings, records))
        found = asyncio.run(dead_letters(common_settings, 2))
        deadline = time.monotonic() + 30
        while asyncio.run(stored(database_url))[0] < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        counted = asyncio.run(stored(database_url))
        scraped_at = datetime.now(UTC)
        day = {
            labels["unit"]: value
            for labels, value in worker.samples("egov_kpi_denominator")
            if labels["kpi"] == KPI and labels["window"] == "day"
        }
        dead: Counter[str] = Counter()  # summed over the province label
        for labels, value in worker.samples("egov_events_dead_lettered_total"):
            dead[labels["reason"]] += value
        last_event = [v for _, v in worker.samples("egov_unit_last_event_timestamp_seconds")]
    assert sorted(h["dlq_reason"] for _, h in found) == [b"time-in-future"] * 2
    by_index = {h.get("dlq_batch_index"): (v, h) for v, h in found}
    value, headers = by_index[None]
    assert orjson.loads(value) == future and headers["traceparent"] == b"00-future-01"
    assert b"300 s ahead" in headers["dlq_detail"]
    assert orjson.loads(by_index[b"1"][0]) == element
    assert dead == {"time-in-future": 2}
    # a, soon and b counted once each; today's exported figure holds those dated today.
    assert counted == (3, {UNIT: 3, PROVINCE: 3})
    today = local_day(scraped_at)
    expected = sum(local_day(t) == today for t in (now, soon, now))
    assert day[UNIT] == day[PROVINCE] == expected
    assert last_event and max(last_event) <= scraped_at.timestamp() + 300


def contribution(event_id: str, at: datetime) -> TallyEvent:
    return TallyEvent(
        digest=dedup_digest("urn:test", event_id),
        type="vn.egov.document.issued",
        family="documents",
        epoch=at.timestamp(),
        day=local_day(at),
        units=(UNIT, PROVINCE),
        counts=(("document_signing", 1, 1),),
        crosswalked=False,
    )


async def test_a_stored_2030_row_does_not_survive_a_restart_as_today(database_url: str) -> None:
    """A row written before future events were refused: reloading caps day and activity."""
    now = datetime(2026, 11, 22, 16, 58, tzinfo=UTC)  # 23:58 local
    tp = ("egov.documents", 0)
    conn = await asyncpg.connect(database_url)
    try:
        claims = await store.claim(conn, "g", "w1", [tp])
        events = [contribution(f"e{i}", now) for i in range(9)]
        events += [contribution("tomorrow", now + timedelta(minutes=4))]
        events += [contribution("2030", YEAR_2030)]
        batch = PartitionBatch(tp, 11)
        for e in events:
            batch.builder(False, {e.type: e.family}).add_event(e)
        await store.flush(conn, "g", claims, [batch], Periods.at(now))
        loaded = (await store.load_figures(conn, [tp], Periods.at(now)))[tp]
    finally:
        await conn.close()
    tally = loaded.tallies[(UNIT, "document_signing")]
    for window in ("day", "month", "year"):
        assert tally.calendar(window, Periods.at(now)) == (9, 9), window
    assert tally.total == (11, 11)  # nothing stored is forgotten
    assert tally.calendar("day", Periods.at(now + timedelta(minutes=5))) == (1, 1)
    assert loaded.activity[(UNIT, "documents")] == now.timestamp()
