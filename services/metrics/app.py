"""The Faust App object, and nothing else: agents and views register on it elsewhere.

The app's consumer resumes each assigned partition where PostgreSQL says its counted
figures end (not at Kafka's committed offset): the figures and the position live in
the same database transaction, so they cannot disagree after a crash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from faust.transport.drivers import aiokafka as aiokafka_driver
from faust.types import TP

from services.common.kafka import faust_credentials
from services.metrics import unpacking
from services.metrics.fetched import FetchedBatchConsumer, FetchedHandler
from services.metrics.logwatch import LogWatch
from services.metrics.settings import MetricsSettings

TopicPartition = tuple[str, int]
Positions = Callable[[Sequence[TopicPartition]], Awaitable[dict[TopicPartition, int]]]
"""Assigned partitions -> the next offset to read from each."""


class _ConsumerThread(aiokafka_driver.AIOKafkaConsumerThread):
    """Faust's consumer thread, with the fetch wait from the settings, reading committed
    records only."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        # Faust passes fetch_max_wait_ms=1500 literally; aiokafka reads it at start().
        wait_ms: int | None = getattr(self.app, "fetch_max_wait_ms", None)
        if wait_ms is not None:
            consumer._fetch_max_wait_ms = wait_ms
        # Faust reads committed records only under processing_guarantee="exactly_once",
        # which also makes its producer transactional (tansu has no transactions). A
        # publisher writing straight to Kafka in transactions must not have the events of
        # an aborted one counted, nor an open one's before it commits (review 62). A
        # broker without transactions (tansu) has nothing uncommitted: the same records.
        consumer._isolation_level = "read_committed"
        return consumer


class ResumingConsumer(FetchedBatchConsumer):
    """Seeks every assigned partition to the position its owner stored with the figures,
    and hands the counting code whole fetches (services/metrics/fetched.py).

    Seeking in ``on_partitions_assigned`` does not stick: Faust's recovery calls
    ``perform_seek`` afterwards, which seeks back to Kafka's committed offsets. So the
    seek happens here, after Faust's own.

    A position that leaves the broker's log while the partition is read (retention
    deleting what was not fetched yet, a log replaced and shorter) makes the fetch fail
    out of range, and the consumer resets to the earliest offset
    (``consumer_auto_offset_reset``). That jump is not silent: the next fetch starts
    elsewhere than the counting expects, and the app's ``log_watch`` reports and judges
    it (services/metrics/logwatch.py), as the stored positions are judged at assignment.
    """

    def _new_consumer_thread(self) -> aiokafka_driver.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        await super().perform_seek()
        await seek_to_stored(self)


async def seek_to_stored(consumer: Any) -> None:
    """Seek ``consumer``'s assigned event partitions to their stored positions.

    In the consumer's own thread (``seek_wait``), not with ``Consumer.seek``: that calls
    aiokafka's seek from the event loop's thread, which deletes the fetcher's buffered
    records while the consumer thread may be handing them out (a KeyError in aiokafka's
    ``fetched_records`` crashed a worker under the fault suite's rebalances, 2026-12-04;
    faust-streaming's own seek to the committed offsets goes through its thread too).
    """
    positions: Positions | None = getattr(consumer.app, "positions", None)
    ours: frozenset[str] = getattr(consumer.app, "event_topics", frozenset())
    assigned = [tp for tp in consumer.assignment() if tp.topic in ours]
    if positions is None or not assigned:
        return
    wanted = await positions([(tp.topic, tp.partition) for tp in assigned])
    await consumer.seek_wait({TP(t, p): offset for (t, p), offset in wanted.items()})
    watch: LogWatch | None = getattr(consumer.app, "log_watch", None)
    if watch is not None:
        watch.sought(wanted)


class _Transport(aiokafka_driver.Transport):
    Consumer = ResumingConsumer


class MetricsApp(faust.App):
    """A Faust app whose consumer resumes from the positions stored in PostgreSQL."""

    positions: Positions | None = None
    event_topics: frozenset[str] = frozenset()
    fetch_max_wait_ms: int | None = None
    """None: Faust's 1,500 ms (see ``MetricsSettings.metrics_fetch_max_wait_ms``)."""
    fetched_handler: FetchedHandler | None = None
    """Counts the records of ``event_topics`` a fetch at a time (None: Faust's agents)."""
    log_watch: LogWatch | None = None
    """Checks the fetches of ``event_topics`` against the broker's log (None: no checks)."""

    def _new_transport(self) -> Any:
        return _Transport(self.conf.broker_consumer, self)


def create_app(settings: MetricsSettings) -> MetricsApp:
    """A Faust app configured for at-least-once delivery on any Kafka-protocol broker.

    No ``exactly_once`` and no idempotent producer unless configured: the embedded
    broker has neither. Counting is made exact downstream instead (dedup keys and
    positions in PostgreSQL).
    """
    session = settings.metrics_session_timeout_s
    app = MetricsApp(
        settings.metrics_app_id,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap_servers.split(",")],
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.metrics_data_dir),
        web_enabled=True,
        web_host=settings.metrics_web_host,
        web_port=settings.metrics_web_port,
        web_bind=settings.metrics_web_host,
        # Table contents must never be served over HTTP (and there are no tables).
        web_tables_enabled=False,
        producer_acks=-1,
        producer_enable_idempotence=settings.kafka_idempotence,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        # Faust's defaults (60 s session) wait a minute and a half before a dead worker's
        # partitions move; tansu also holds a first JoinGroup for half the session.
        broker_session_timeout=session,
        broker_heartbeat_interval=max(session / 6, 0.5),
        broker_rebalance_timeout=10.0,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=settings.metrics_stream_buffer,
        consumer_max_fetch_size=settings.metrics_fetch_bytes,
        consumer_metadata_max_age_ms=int(settings.metrics_metadata_max_age_s * 1000),
    )
    app.event_topics = frozenset(settings.event_topics)
    app.fetch_max_wait_ms = settings.metrics_fetch_max_wait_ms
    unpacking.require_codecs()
    unpacking.install()
    return app
