"""Sends validated records to Kafka and reports success only once the broker has them all."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from services.common import summaries
from services.common.headers import BACKFILL_HEADER as BACKFILL_HEADER
from services.common.headers import accepted_header, publisher_header
from services.common.kafka import make_producer
from services.common.settings import CommonSettings, KafkaTlsError
from services.common.signing import RecordSigner
from services.ingest.validation import Record

log = logging.getLogger(__name__)
_partitioner = DefaultPartitioner()
_OWN_BATCH_FROM = 50  # records; measured in docs/ingest.md
BATCH_CONTENT_TYPE = b"application/cloudevents-batch+json"
_KEPT_WHEN_PACKED = frozenset({BACKFILL_HEADER[0]})
"""Headers that describe the delivery rather than one event: a packed record keeps them
when every event of the run carries them (``ce_type``/``ce_dataschema`` describe one event
and are dropped)."""
_PACK_MAX_BYTES = 512 * 1024
"""Largest packed value: well under the producer's batch size (1 MiB) and Kafka's
default message.max.bytes, so a packed record always fits."""


@functools.lru_cache(maxsize=4096)
def _partition_of(key: bytes, partitions: tuple[int, ...]) -> int:
    """The partition aiokafka's send() would choose for this key (keys are few: provinces)."""
    chosen: int = _partitioner(key, list(partitions), list(partitions))
    return chosen


class PublishError(Exception):
    """The broker did not acknowledge every record: the outcome is unknown or failed."""


class KafkaPublisher:
    """An aiokafka producer with acks=all, wrapped in an explicit per-request timeout.

    Every record it sends holds events that were validated against the contract: with a
    ``signer`` it says so in a signed header (services/common/signing.py), and the metrics
    workers skip validating them again.
    """

    def __init__(
        self, settings: CommonSettings, timeout_s: float, signer: RecordSigner | None = None
    ) -> None:
        self._settings = settings
        self._timeout_s = timeout_s
        self._signer = signer
        self._producer: AIOKafkaProducer | None = None
        self._topics: dict[str, str] = {}  # family -> topic; settings build a dict per call
        self._renewing = asyncio.Lock()
        self._started = False  # between start() and stop(): a failed sender is renewed

    async def start(self) -> None:
        # linger_ms=0: a request waits for its acknowledgement, so lingering only adds
        # latency (5 ms per single-event request capped 16 connections at ~1,400 req/s).
        # Records still batch: while one produce request is in flight to the broker,
        # aiokafka gathers what arrives into the next (measured in docs/ingest.md).
        producer = make_producer(self._settings, linger_ms=0)
        try:
            await asyncio.wait_for(producer.start(), self._settings.kafka_request_timeout_s)
        except BaseException:
            await producer.stop()  # its connections and sender task, opened before failing
            raise
        self._producer = producer
        self._started = True

    async def stop(self) -> None:
        self._started = False
        async with self._renewing:  # a renewal in flight ends first, then its producer too
            self._started = False  # start() inside that renewal set it again
            if self._producer is not None:
                await self._producer.stop()
                self._producer = None

    def sender_failed(self) -> bool:
        """Whether the producer's background sender has stopped. aiokafka fails what it
        held then, but sends nothing more: every later request would wait out its timeout
        (a 503 each) while the broker answers /readyz. Read from aiokafka's internals
        (``_sender.sender_task``, aiokafka pinned in pyproject.toml)."""
        sender = getattr(self._producer, "_sender", None)
        task = getattr(sender, "sender_task", None)
        return isinstance(task, asyncio.Task) and task.done()

    async def _renew(self) -> None:
        """A new producer in place of one whose sender has stopped, or of one a renewal
        could not start (the broker away then): once, whoever asks meanwhile."""
        async with self._renewing:
            if not self._started:
                return  # stopping: no new producer after stop()
            old = self._producer
            if old is not None and not self.sender_failed():
                return  # renewed by another request meanwhile
            if old is not None:
                self._producer = None
                task = old._sender.sender_task
                cause = task.exception() if task is not None and not task.cancelled() else None
                log.error("the Kafka producer's sender stopped (%r): starting a new one", cause)
                with contextlib.suppress(Exception):
                    await old.stop()
            await self.start()

    async def publish(self, records: Sequence[Record], accepted: datetime | None = None) -> None:
        """Send every record and wait for every acknowledgement, or raise PublishError.

        ``accepted``: when their events were judged (the time their horizon was checked
        at; now by default), sent in the header ``egov_accepted_ms`` of every record."""
        try:
            # send() itself can wait (metadata, a full buffer): the timeout covers it too.
            # asyncio.timeout rather than wait_for: no extra task per request.
            async with asyncio.timeout(self._timeout_s):
                if self._started and (self._producer is None or self.sender_failed()):
                    try:
                        await self._renew()
                    except KafkaTlsError as exc:
                        # The CA or certificate files changed under a running ingest (a
                        # rotation half done): a 503 naming the setting, not a 500.
                        log.error("cannot renew the Kafka producer: %s", exc)
                        raise PublishError(f"the Kafka producer cannot start ({exc})") from exc
                producer = self._producer
                if producer is None:
                    raise PublishError("the Kafka producer is not connected")
                stamp = accepted_header(accepted or datetime.now(UTC))
                packed = published_by(pack(records))
                out = signed(packed, self._signer, stamp, self._topic)
                try:
                    await self._send_all(producer, out)
                except (KafkaError, TimeoutError, PublishError):
                    raise
                except Exception as exc:
                    # What stopped the producer's sender fails the batches it held, with
                    # whatever it was: the outcome is unknown, as for a broker error.
                    log.exception("the Kafka producer failed %d records", len(records))
                    raise PublishError(f"the producer failed ({exc!r})") from exc
        except (KafkaError, TimeoutError) as exc:
            log.warning("publish of %d records failed: %r", len(records), exc)
            raise PublishError(f"the broker did not acknowledge the events ({exc!r})") from exc

    async def _send_all(self, producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
        if len(records) < _OWN_BATCH_FROM:
            await self._send_each(producer, records)
        else:
            await self._send_batches(producer, records)

    async def _send_each(self, producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
        # Small requests share the producer's open batches: aiokafka keeps one batch in
        # flight per partition, so one batch per tiny request would queue them one by one.
        futures = [
            await producer.send(
                self._topic(r.topic_family),
                r.value,
                key=r.key,
                headers=r.headers,
            )
            for r in records
        ]
        if len(futures) == 1:
            await futures[0]  # gather() of one future costs a wrapper future and a callback
        else:
            await asyncio.gather(*futures)

    async def _send_batches(self, producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
        # One batch per partition instead of one send() per record: the same bytes and
        # the same partition as send() would choose (aiokafka's default murmur2
        # partitioner, as Kafka's Java client), at a fraction of the per-record cost.
        batches: dict[tuple[str, int], BatchBuilder] = {}
        futures: list[asyncio.Future[object]] = []
        partitions: dict[str, tuple[int, ...]] = {}
        for record in records:
            topic = self._topic(record.topic_family)
            if topic not in partitions:
                partitions[topic] = tuple(sorted(await producer.partitions_for(topic)))
            slot = (topic, _partition_of(record.key, partitions[topic]))
            batch = batches.get(slot)
            if batch is not None and _append(batch, record):
                continue
            if batch is not None:  # full: send it and start the next one
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=slot[1]))
            batch = batches[slot] = producer.create_batch()
            if not _append(batch, record):
                raise PublishError("an event is larger than the producer's batch size")
        for (topic, partition), batch in batches.items():
            batch.close()  # a closed batch is ready at once; an open one waits for linger
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*futures)

    def _topic(self, family: str) -> str:
        topic = self._topics.get(family)
        if topic is None:
            topic = self._topics[family] = self._settings.topic_for_family(family)
        return topic

    async def ping(self) -> bool:
        """Whether the broker answers a metadata request right now, and the producer can
        send (its sender has not stopped; the next publish starts a new one)."""
        producer = self._producer
        if producer is None or self.sender_failed():
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), 3)
        except (KafkaError, TimeoutError):
            return False
        return True


def pack(records: Sequence[Record]) -> Sequence[Record]:
    """One record per (topic family, key, publisher) of a request: its events as one array.

    The metrics workers pay ~100 µs per Kafka message and a few µs per event, so a
    request's events of one province travel as one message (a structured batch,
    ``content-type: application/cloudevents-batch+json``, schemas/CONTRACT.md) of at
    most ``_PACK_MAX_BYTES``. A group of one event stays a single-event message, exactly
    what an integrator publishing straight to Kafka sends.
    """
    if len(records) < 2:
        return records
    # The publisher too: a record's events share one dedup identity (its header).
    groups: dict[tuple[str, bytes, str], list[Record]] = {}
    for record in records:
        groups.setdefault((record.topic_family, record.key, record.publisher), []).append(record)
    if len(groups) == len(records):
        return records
    packed: list[Record] = []
    for group in groups.values():
        run: list[Record] = []
        size = 2
        for record in group:
            if run and size + len(record.value) + 1 > _PACK_MAX_BYTES:
                packed.append(_packed(run))
                run, size = [], 2
            run.append(record)
            size += len(record.value) + 1
        packed.append(_packed(run))
    return packed


def published_by(records: Sequence[Record]) -> Sequence[Record]:
    """``records``, each with the header ``egov_publisher`` naming its events' publisher
    (none when ``UNBOUND``: backfill, events before the dedup cut-over): added after
    packing (one per record sent, not per event) and before signing, so the signature
    covers it."""
    headers: dict[str, tuple[str, bytes]] = {}
    out = []
    for r in records:
        if not r.publisher:
            out.append(r)
            continue
        header = headers.get(r.publisher)
        if header is None:
            header = headers[r.publisher] = publisher_header(r.publisher)
        out.append(dataclasses.replace(r, headers=[*r.headers, header]))
    return out


def default_topic(family: str) -> str:
    """The topic of an event family under CommonSettings' default topic names."""
    return f"egov.{family}"


def signed(
    records: Sequence[Record],
    signer: RecordSigner | None,
    stamp: tuple[str, bytes] | None = None,
    topic_of: Callable[[str], str] = default_topic,
) -> Sequence[Record]:
    """``records`` with the signature header added (unchanged without a signer or
    ``stamp``), and a packed record with its signed summary when its events were
    summarised; ``stamp``: one more header for every record (the acceptance time).
    The signatures cover the topic each record goes to (``topic_of`` its family), its
    key and every ``egov_`` header: add them all before signing."""
    if signer is None and stamp is None:
        return records
    extra = [] if stamp is None else [stamp]
    out = []
    for r in records:
        if signer is None:
            out.append(dataclasses.replace(r, headers=[*r.headers, *extra]))
            continue
        topic, key = topic_of(r.topic_family), r.key
        summary = None
        if len(r.entries) > 1 and signer.summarizes:
            summary = summaries.encode_entries(r.entries)
        headers = signer.signed_headers(
            r.value, topic=topic, key=key, headers=[*r.headers, *extra], summary=summary
        )
        out.append(dataclasses.replace(r, headers=headers))
    return out


def _packed(run: list[Record]) -> Record:
    if len(run) == 1:
        return run[0]
    kept = [
        header
        for header in run[0].headers
        if header[0] in _KEPT_WHEN_PACKED and all(header in r.headers for r in run)
    ]
    # Summary entries only when every event has one (all were validated the same way).
    entries = tuple(e for r in run for e in r.entries)
    return dataclasses.replace(
        run[0],
        value=b"[" + b",".join(r.value for r in run) + b"]",
        headers=[("content-type", BATCH_CONTENT_TYPE), *kept],
        entries=entries if len(entries) == len(run) else (),
    )


def _append(batch: BatchBuilder, record: Record) -> bool:
    added = batch.append(key=record.key, value=record.value, timestamp=None, headers=record.headers)
    return added is not None
