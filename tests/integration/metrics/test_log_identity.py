"""A stored position is resumed from only if it belongs to the broker's log as it is now.

- tansu forgets its log when it restarts: events published after the restart land at
  offsets the worker already stored, and must all be counted (they were all skipped
  before services/metrics/logcheck.py);
- Apache Kafka's retention deletes records while the worker is down: the rest is
  counted, and a metric and a log line say how many offsets were lost.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from services.common.broker import EmbeddedBroker, free_port
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import (
    WorkerProcess,
    communes_by_province,
    mixed_messages,
    publish,
    workers,
)
from tests.integration.metrics.test_workers import stored

pytestmark = pytest.mark.integration


async def counted(database_url: str, want: Counter[str], within_s: float = 60) -> dict[str, int]:
    """The stored denominators per province once they equal ``want`` (or at the deadline)."""
    got: dict[str, int] = {}
    for _ in range(int(within_s / 0.5)):
        _, per_unit = await stored(database_url)
        got = {p: per_unit.get(p, 0) for p in want}
        if got == dict(want):
            break
        await asyncio.sleep(0.5)
    return got


def resets(worker: WorkerProcess, reason: str) -> float:
    return sum(
        v for labels, v in worker.samples("egov_metrics_log_resets_total")
        if labels["reason"] == reason
    )  # fmt: skip


@pytest.mark.broker("tansu", "restarts a memory-only broker, which forgets its log")
async def test_broker_that_forgot_its_log_counts_what_it_holds_now(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    pairs = communes_by_province(3)
    port = free_port()
    broker = EmbeddedBroker(port=port)
    broker.start()
    settings = common_settings.model_copy(
        update={"kafka_bootstrap_servers": broker.bootstrap_servers, "topic_partitions": 1}
    )
    try:
        await ensure_topics(settings)
        before, want = mixed_messages(0, 300, pairs)
        await publish(settings, before)
        with workers(settings, database_url, tmp_path, 1) as (worker,):
            assert await counted(database_url, want) == dict(want), worker.tail()
            worker.stop()  # as `make up` does: the workers stop before the broker
            broker.stop()  # its log is gone with it
            broker = EmbeddedBroker(port=port)
            broker.start()
            await ensure_topics(settings)
            # More records than before: the stored position now points inside the new log.
            after, more = mixed_messages(300, 900, pairs)
            await publish(settings, after)
            worker.start()
            want += more
            assert await counted(database_url, want) == dict(want), worker.tail()
            assert resets(worker, "replaced") >= 1, worker.tail()
            assert "is not in the broker's log" in worker.tail()
    finally:
        broker.stop()


@pytest.mark.broker("kafka", "deletes records as retention does (DeleteRecords)")
async def test_records_deleted_before_counting_are_reported_and_the_rest_counted(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    pairs = communes_by_province(3)
    settings = common_settings.model_copy(update={"topic_partitions": 1})
    await ensure_topics(settings)
    first, want = mixed_messages(0, 200, pairs)
    await publish(settings, first)
    with workers(settings, database_url, tmp_path, 1) as (worker,):
        assert await counted(database_url, want) == dict(want), worker.tail()
        worker.stop()
        end = len(first)
        lost_messages, _ = mixed_messages(200, 100, pairs)
        kept_messages, kept = mixed_messages(300, 200, pairs)
        await publish(settings, lost_messages + kept_messages)
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            tp = TopicPartition(settings.topic_documents, 0)
            await admin.delete_records({tp: RecordsToDelete(end + len(lost_messages))})
        finally:
            await admin.close()
        worker.start()
        want += kept
        assert await counted(database_url, want) == dict(want), worker.tail()
        lost = sum(v for _, v in worker.samples("egov_metrics_offsets_lost_total"))
        assert lost == len(lost_messages), worker.tail()
        assert resets(worker, "deleted") == 1, worker.tail()
        assert f"the broker deleted {len(lost_messages)} offsets" in worker.tail()
