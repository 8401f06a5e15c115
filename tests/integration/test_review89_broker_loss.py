"""Review 89: records the broker drops or hides, and whether anyone is told.

A stored position is checked against the broker's log only when partitions are assigned
(services/metrics/logcheck.py, docs/metrics.md "Positions belong to their log"). Between
assignments the consumer runs with ``consumer_auto_offset_reset="earliest"`` and nothing
compares its position with the log again; and at assignment a partition stored at 0 is
never checked. Defects, each a test below (Apache Kafka, whose retention and topic
deletion are the broker's own), fixed on 2026-12-06 by the watch on the running
consumer (services/metrics/logwatch.py) and the log-start check of a position of 0:

1. A worker that keeps its partition while it is behind (frozen, blocked on PostgreSQL,
   lagging through a backlog: it still heartbeats) and whose position retention deletes:
   the next fetch is out of range and aiokafka resets the partition to the log's start
   in silence (services/metrics/app.py:135 ``consumer_auto_offset_reset="earliest"``;
   logcheck.py:158 ``resume_at`` runs only at assignment, from worker.py:141). The deleted
   offsets are never counted, ``egov_metrics_offsets_lost_total`` stays 0, EgovOffsetsLost
   never fires; the only trace is aiokafka's INFO line "Fetch offset N is out of range
   for partition ..., resetting offset", which names no count (so does 2's).
2. A partition whose stored position is 0 (claimed before its first record, or with no
   row at all) and whose first records retention deleted while the workers were down:
   ``judge`` returns offset 0 without looking at the log's start
   (services/metrics/logcheck.py:104 ``if stored.next_offset <= 0``, and
   logcheck.py:160 ``to_check`` leaves such partitions out), the seek to 0 is out of
   range and the consumer jumps to the start in silence: the same loss the worker
   reports for a partition stored at 1.
3. A topic deleted and created again while a worker keeps its partition: its fetch
   position, from the old log, is simply used in the new one once the new log has grown
   past it; the new log's records before that position are skipped, never counted, and
   no ``egov_metrics_log_resets_total{reason="replaced"}`` or warning says so (the same
   cause as 1: the fingerprint of the record before the position, stored with every flush
   (logcheck.py:54 ``mark_last_records``), is read back only at assignment).

The worker is frozen with SIGSTOP for a few seconds, less than its consumer-group session
(set to 30 s here), which is what a blocked or lagging worker looks like to the broker:
it keeps its partitions. Deletion is Kafka's DeleteRecords, as retention deletes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import Counter
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete
from aiokafka.errors import KafkaError

from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import (
    WorkerProcess,
    communes_by_province,
    mixed_messages,
    publish,
    workers,
)
from tests.integration.metrics.test_log_identity import counted, resets

pytestmark = pytest.mark.integration

SESSION = {"EGOV_METRICS_SESSION_TIMEOUT_S": "30"}
"""Long enough that a worker frozen for a few seconds keeps its partitions."""


def lost_offsets(worker: WorkerProcess) -> float:
    return sum(v for _, v in worker.samples("egov_metrics_offsets_lost_total"))


async def delete_before(settings: CommonSettings, offset: int) -> None:
    """Delete the records of the documents topic's partition 0 below ``offset``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        tp = TopicPartition(settings.topic_documents, 0)
        await admin.delete_records({tp: RecordsToDelete(offset)})
    finally:
        await admin.close()


async def log_bounds(settings: CommonSettings) -> tuple[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic_documents, 0)
        start = (await consumer.beginning_offsets([tp]))[tp]
        end = (await consumer.end_offsets([tp]))[tp]
    finally:
        await consumer.stop()
    return start, end


async def recreate_documents_topic(settings: CommonSettings) -> None:
    """Delete the documents topic and create it again (empty, 1 partition)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.delete_topics([settings.topic_documents])
        deadline = time.monotonic() + 20
        while settings.topic_documents in set(await admin.list_topics()):
            assert time.monotonic() < deadline, "the topic was not deleted"
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
    deadline = time.monotonic() + 20
    while True:
        await ensure_topics(settings, [settings.topic_documents])
        try:
            if await log_bounds(settings) == (0, 0):
                return
        except KafkaError:
            pass  # not served yet
        assert time.monotonic() < deadline, "the topic was not created again"
        await asyncio.sleep(0.3)


async def claimed_at(database_url: str, topic: str) -> int | None:
    """The stored position of ``topic``'s partition 0 (None: no row yet)."""
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval(
            'SELECT next_offset FROM consumer_offsets WHERE topic = $1 AND "partition" = 0',
            topic,
        )
    finally:
        await conn.close()


async def frozen(worker: WorkerProcess) -> None:
    """SIGSTOP the worker, then let its fetch in flight be answered empty (its wait is
    100 ms): the records published next stay in the broker, not in its socket."""
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGSTOP)
    await asyncio.sleep(1.5)


def thawed(worker: WorkerProcess) -> None:
    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGCONT)


@pytest.mark.broker("kafka", "retention (DeleteRecords) deletes records under a running consumer")
async def test_records_deleted_under_a_running_worker_are_reported(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    pairs = communes_by_province(3)
    settings = common_settings.model_copy(update={"topic_partitions": 1})
    await ensure_topics(settings)
    first, want = mixed_messages(0, 200, pairs)
    await publish(settings, first)
    with workers(settings, database_url, tmp_path, 1, **SESSION) as (worker,):
        assert await counted(database_url, want) == dict(want), worker.tail()
        await frozen(worker)  # behind from now on, still owning the partition
        try:
            lost_messages, _ = mixed_messages(200, 100, pairs)
            kept_messages, kept = mixed_messages(300, 200, pairs)
            await publish(settings, lost_messages + kept_messages)
            await delete_before(settings, len(first) + len(lost_messages))
        finally:
            thawed(worker)
        want += kept
        # The rest is counted today too: only the signal is missing.
        assert await counted(database_url, want) == dict(want), worker.tail()
        await asyncio.sleep(1)  # a scrape after the flush
        assert lost_offsets(worker) == len(lost_messages), worker.tail()
        assert f"the broker deleted {len(lost_messages)} offsets" in worker.tail()


@pytest.mark.broker("kafka", "deletes records as retention does (DeleteRecords)")
async def test_records_deleted_before_a_partition_was_first_counted_are_reported(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    pairs = communes_by_province(3)
    settings = common_settings.model_copy(update={"topic_partitions": 1})
    await ensure_topics(settings)
    with workers(settings, database_url, tmp_path, 1) as (worker,):
        # The worker claims the empty partition (its row stores next_offset 0), and stops.
        deadline = time.monotonic() + 30
        while await claimed_at(database_url, settings.topic_documents) != 0:
            assert time.monotonic() < deadline, worker.tail()
            await asyncio.sleep(0.5)
        worker.stop()
        lost_messages, _ = mixed_messages(0, 100, pairs)
        kept_messages, want = mixed_messages(100, 200, pairs)
        await publish(settings, lost_messages + kept_messages)
        await delete_before(settings, len(lost_messages))
        worker.start()
        assert await counted(database_url, want) == dict(want), worker.tail()
        await asyncio.sleep(1)
        assert lost_offsets(worker) == len(lost_messages), worker.tail()
        assert resets(worker, "deleted") == 1, worker.tail()


@pytest.mark.broker("kafka", "deletes and re-creates a topic under a running consumer")
async def test_topic_recreated_under_a_running_worker_counts_the_new_log(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    pairs = communes_by_province(3)
    settings = common_settings.model_copy(update={"topic_partitions": 1})
    await ensure_topics(settings)
    first, want = mixed_messages(0, 200, pairs)
    await publish(settings, first)
    with workers(settings, database_url, tmp_path, 1, **SESSION) as (worker,):
        assert await counted(database_url, want) == dict(want), worker.tail()
        await frozen(worker)
        try:
            await recreate_documents_topic(settings)
            # More records than the old log held: the old position is inside the new log.
            after, more = mixed_messages(200, 500, pairs)
            assert len(after) > len(first)
            await publish(settings, after)
        finally:
            thawed(worker)
        want += more
        got = await counted(database_url, want, within_s=30)
        missing = Counter(want) - Counter(got)
        assert got == dict(want), f"{sum(missing.values())} events never counted\n{worker.tail()}"
        assert resets(worker, "replaced") >= 1, worker.tail()
        assert "is not in the broker's log" in worker.tail()
