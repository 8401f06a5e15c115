"""A NUL byte in a dossier id: visibly refused, and it never stops the counting.
PostgreSQL's text cannot hold NUL (U+0000): until 2026-12-04 the contract let such an id
through and the ledger's flush failed on it after every restart, the records around it
never counted. The dossier schemas now refuse control characters in `dossier_id`
(schemas/CONTRACT.md §3, Corrections). Records straight to Kafka, one real worker."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_workers import stored
from tests.unit.metrics.helpers import contract

pytestmark = pytest.mark.integration

UNIT = "01843"


def received(event_id: str, dossier: str, valid: bool = True) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": event_id,
        "source": "urn:test:motcua",
        "type": "vn.egov.dossier.received",
        "time": (datetime.now(UTC) - timedelta(minutes=5)).isoformat(),
        "unit": UNIT,
        "data": {
            "dossier_id": dossier,
            "procedure_code": "1.001612",
            "service_level": "full",
            "channel": "online",
        },
    }
    assert (contract().validate(event) == []) is valid, event
    return event


async def produce(settings: CommonSettings, events: list[dict[str, Any]]) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        for event in events:
            await (await producer.send(settings.topic_dossiers, orjson.dumps(event), key=b"19"))
    finally:
        await producer.stop()


async def seen_keys(database_url: str) -> int:
    return (await stored(database_url))[0]


def test_a_nul_in_a_dossier_id_stops_nothing(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(common_settings))
    events = [received("r1", "H1"), received("r2", "H\x002", valid=False), received("r3", "H3")]
    with workers(common_settings, database_url, tmp_path, 1) as (worker,):
        assert worker.proc is not None
        pid = worker.proc.pid
        asyncio.run(produce(common_settings, events))
        deadline = time.monotonic() + 30
        while asyncio.run(seen_keys(database_url)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)
        keys = asyncio.run(seen_keys(database_url))
        found = asyncio.run(dead_letters(common_settings, 1))
        alive = worker.proc.poll() is None and worker.proc.pid == pid
        tail = worker.tail()
    # r1 and r3 counted, r2 dead-lettered with its reason, the worker never restarted.
    assert keys == 2, (keys, found, tail)
    assert len(found) == 1, found
    value, headers = found[0]
    assert orjson.loads(value)["id"] == "r2"
    assert headers["dlq_reason"] == b"schema-violation"
    assert b"dossier_id" in headers["dlq_detail"], headers
    assert alive, tail
