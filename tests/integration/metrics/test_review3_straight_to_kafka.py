"""Review of 2469b9f/9a8bc21 on a real worker and broker: records published straight to
Kafka (no headers, as integrators do), each kind of bad record between two valid single
events. Every bad record is dead-lettered once with the reason the replaced path
(``decode_record`` then ``_add``, kept in tests/unit/metrics/test_review3_single_records.py)
gives, every valid event counts once, and the worker never restarts."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from services.metrics.pipeline import Record
from tests.integration.metrics.harness import document, workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_workers import stored
from tests.unit.metrics.helpers import catalogue, contract, decoder
from tests.unit.metrics.test_review3_single_records import ReferencePreparer

pytestmark = pytest.mark.integration

UNIT, PROVINCE = "01843", "19"


def poison(now: datetime) -> dict[str, bytes | None]:
    """Bad records of every kind, dated around ``now``, with ids of their own."""

    def ok(name: str, at: datetime | None = None, unit: str = UNIT) -> dict[str, Any]:
        return document(f"{name}-{uuid.uuid4().hex[:6]}", unit, at or now - timedelta(hours=1))

    def without(name: str) -> bytes:
        return orjson.dumps({k: v for k, v in ok(name).items() if k != name})

    return {
        "tombstone": None,
        "empty": b"",
        "not json": b"{not json",
        "non-utf-8": b'{"id": "\xff\xfe"}',
        "lone surrogate": b'{"id": "\\ud800"}',
        "json string": b'"hello"',
        "json number": b"17",
        "json null": b"null",
        "empty array": b"[]",
        "array of nulls": b"[null, null]",
        "huge float": b"1e400",
        "event with huge int": orjson.dumps(ok("a") | {"id": 2**64 - 1}),
        "NUL in unit": orjson.dumps(ok("b") | {"unit": "01843\x00"}),
        "NUL in id": orjson.dumps(ok("c") | {"id": "x\x00y"}),
        "unknown type": orjson.dumps(ok("d") | {"type": "vn.egov.document.received"}),
        "missing id": without("id"),
        "missing time": without("time"),
        "missing unit": without("unit"),
        "missing data": without("data"),
        "unit a number": orjson.dumps(ok("e") | {"unit": 1843}),
        "time a number": orjson.dumps(ok("f") | {"time": 1700000000}),
        "time without offset": orjson.dumps(ok("g") | {"time": "2026-11-23T02:00:00"}),
        "time 1999": orjson.dumps(ok("h") | {"time": "1999-12-31T23:59:59Z"}),
        "time far ahead": orjson.dumps(ok("i", now + timedelta(days=400))),
        "time ahead": orjson.dumps(ok("j", now + timedelta(seconds=900))),
        "time too late": orjson.dumps(ok("k", now - timedelta(days=30))),
        "unknown unit": orjson.dumps(ok("l", unit="99999")),
        "old hierarchy unit": orjson.dumps(ok("m", unit="06")),
        "extra attribute": orjson.dumps(ok("n") | {"x_unknown": 1}),
        "deep nesting": b'{"data":' + b"[" * 600 + b"]" * 600 + b"}",
        "batch with one bad": orjson.dumps([ok("o"), ok("p") | {"unit": 1}, ok("q")]),
    }


async def produce(settings: CommonSettings, values: list[bytes | None]) -> list[int]:
    producer = make_producer(settings)
    await producer.start()
    try:
        offsets = []
        for value in values:  # no headers: straight to Kafka
            future = await producer.send(settings.topic_documents, value, key=PROVINCE.encode())
            offsets.append((await future).offset)
        return offsets
    finally:
        await producer.stop()


def test_every_bad_record_straight_to_kafka_is_dead_lettered_as_before(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    now = datetime.now(UTC)
    values: list[bytes | None] = []
    for name, value in poison(now).items():
        values += [orjson.dumps(document(f"before-{name}", UNIT)), value]
    values.append(orjson.dumps(document("last", UNIT)))
    # What the replaced path decides of the same records (positions for offsets).
    reference = ReferencePreparer(
        decoder(), contract(), catalogue(), timedelta(days=common_settings.counting_grace_days)
    ).prepare([Record("t", 0, i, None, v, (), now.timestamp()) for i, v in enumerate(values)], now)
    expected_dead = sorted(
        (d.offset, dict(d.headers).get("dlq_batch_index"), d.reason) for d in reference.dead_letters
    )
    events = {e.digest: e for b in reference.batches.values() for e in b.event_views()}
    expected_counted = len(events)
    by_unit = {u: sum(u in e.units for e in events.values()) for u in (UNIT, PROVINCE)}
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        assert worker.proc is not None
        pid = worker.proc.pid
        offsets = asyncio.run(produce(common_settings, values))
        position = {offset: i for i, offset in enumerate(offsets)}
        deadline = time.monotonic() + 60
        while asyncio.run(stored(database_url))[0] < expected_counted:
            assert time.monotonic() < deadline, worker.tail()
            time.sleep(0.2)
        time.sleep(2)  # anything counted twice or dead-lettered again would show by now
        counted = asyncio.run(stored(database_url))
        found = asyncio.run(dead_letters(common_settings, len(expected_dead)))
        assert worker.proc.poll() is None and worker.proc.pid == pid, worker.tail()
    dead = sorted(
        (
            position[int(h["dlq_source"].decode().rsplit("@", 1)[1])],
            h.get("dlq_batch_index"),
            h["dlq_reason"].decode(),
        )
        for _, h in found
    )
    assert dead == expected_dead
    assert (counted[0], {u: counted[1].get(u) for u in by_unit}) == (expected_counted, by_unit)
