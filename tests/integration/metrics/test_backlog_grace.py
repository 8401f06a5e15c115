"""A backlog waits longer than the grace in the broker yet counts, because it was accepted
in time; what was already beyond the grace when accepted is dead-lettered (issue 14).

The worker's clock is real, so the events are dated before it by more than the grace, and
their records say (header ``egov_accepted_ms``, or the Kafka timestamp of a record
published straight to Kafka) that they were accepted within it: exactly what a worker sees
when it reads a backlog that waited in the broker for weeks.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from services.common.headers import accepted_header
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import document, workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration
UNIT, PROVINCE = "01843", "19"


def test_a_backlog_accepted_in_time_counts_after_waiting_beyond_the_grace(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    grace = timedelta(days=common_settings.counting_grace_days)
    now = datetime.now(UTC)
    happened = now - grace - timedelta(days=3)  # beyond the grace of the worker's clock
    on_time = happened + timedelta(hours=2)  # when ingest accepted them
    too_late_when_accepted = happened + grace + timedelta(hours=1)
    records = [
        # (event id, headers, Kafka timestamp)
        ("by-header", [accepted_header(on_time)], None),
        ("by-kafka-timestamp", [], on_time),
        ("late-by-header", [accepted_header(too_late_when_accepted)], None),
        ("late-by-kafka-timestamp", [], too_late_when_accepted),
    ]
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        asyncio.run(produce(common_settings, records, happened))
        found = asyncio.run(dead_letters(common_settings, 2))
        deadline = time.monotonic() + 30
        while asyncio.run(stored(database_url))[0] < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        counted = asyncio.run(stored(database_url))
        too_late = sum(v for _, v in worker.samples("egov_events_too_late_total"))
    # Both accepted in time are counted, once each, for the unit and its province...
    assert counted == (2, {UNIT: 2, PROVINCE: 2})
    # ...and both accepted beyond the grace are dead-lettered as too late, saying when.
    assert sorted(orjson.loads(value)["id"] for value, _ in found) == [
        "late-by-header",
        "late-by-kafka-timestamp",
    ]
    for _, headers in found:
        assert headers["dlq_reason"] == b"too-late"
        assert b"grace period of the time its record was accepted" in headers["dlq_detail"]
    assert too_late == 2


async def produce(
    settings: CommonSettings,
    records: list[tuple[str, list[tuple[str, bytes]], datetime | None]],
    happened: datetime,
) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for event_id, headers, timestamp in records:
            value = orjson.dumps(document(event_id, UNIT, happened))
            ts = None if timestamp is None else int(timestamp.timestamp() * 1000)
            await (
                await producer.send(
                    settings.topic_documents,
                    value,
                    key=PROVINCE.encode(),
                    headers=headers,
                    timestamp_ms=ts,
                )
            )
    finally:
        await producer.stop()
