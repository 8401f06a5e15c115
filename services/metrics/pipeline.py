"""What a worker does with each batch of records, apart from Faust so that it is easy to test.

``prepare`` (pure) turns records into per-partition tally batches and dead letters;
``PartitionState.flush`` counts them in PostgreSQL in one transaction and only then
updates the exported figures. ``PartitionState.assign`` claims partitions, loads their
figures and says where to resume reading; ``revoke`` forgets them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import orjson
from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from services.common.contract import EARLIEST_EVENT_EPOCH, Contract
from services.common.db import DATABASE_UNAVAILABLE, Connection, expire_if_read_only
from services.common.dossierfacts import DOSSIER_TYPES, FACT_TYPES, fact_of
from services.common.headers import BACKFILL_HEADER as BACKFILL_HEADER
from services.common.headers import PUBLISHER_HEADER, accepted_at, publisher_of
from services.common.kpis import KpiCatalogue
from services.common.signing import RecordSigner, SummaryCheck
from services.common.summaries import VERSION, SummaryReader
from services.common.tally import UNBOUND, Deltas, TallyBatch, event_digest, group_key
from services.metrics import dossierstore, sanity, store
from services.metrics.decoding import (
    REFORM_EPOCH,
    RecordDecoder,
    Rejected,
    element_bytes,
    violations_text,
)
from services.metrics.dlqprovince import DeadLetterProvinces
from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures, PartitionFigures, TopicPartition
from services.metrics.logcheck import Stored
from services.metrics.periods import Periods
from services.metrics.rekeying import Forward, Moves, partition_of
from services.metrics.stallwatch import StallWatch
from services.metrics.store import Claim, FlushResult
from services.metrics.tally import Mark, PartitionBatch
from services.metrics.unpacking import UNDECODABLE

log = logging.getLogger(__name__)
T = TypeVar("T")

# A database that is down, restarting, overloaded, read-only after a failover, or that
# chose this transaction as a deadlock or serialization victim: block and retry, never
# dead-letter and never skip (services/common/db.py ``DATABASE_UNAVAILABLE``, shared
# with the alerts service). Anything else escaping a step crashes the worker
# (services/metrics/agents.py).
INFRASTRUCTURE_ERRORS: tuple[type[BaseException], ...] = DATABASE_UNAVAILABLE

NOT_THE_RECORDS_FAULT: tuple[type[BaseException], ...] = (
    *INFRASTRUCTURE_ERRORS,
    KafkaError,
    MemoryError,  # the process's state, not the record's: a restart may fare better
)
"""What escapes preparing a record without being that record's fault: it propagates (the
worker blocks, or crashes and resumes from its stored offsets). Any other exception while
decoding or preparing one record is that record's fault: it is dead-lettered as
``unprocessable``, with the exception named, and the records around it count."""

DEAD_LETTER_MAX_BYTES = 1_000_000
"""Largest dead letter sent as it is: Faust's producer refuses a record above its
``producer_max_request_size`` (1,000,000 bytes by default; services/metrics/app.py keeps
it). A larger record is dead-lettered as a reference (``reference_of``)."""

_KEY_KEPT_BYTES = 1024
"""A reference keeps the record's key up to this size (a province code is 2 bytes)."""

_PUBLISHER_UNSIGNED = Rejected(
    "publisher-unsigned",
    f"it names a publisher ({PUBLISHER_HEADER}, which only ingest and backfill set) "
    "without their MAC under this worker's keys: its events are never counted as that "
    "publisher's, nor under another identity",
)
"""With a signing key, a record whose ``egov_publisher`` no MAC of ingest covers
(schemas/CONTRACT.md §5): written straight to Kafka, it could claim any system's name."""


@dataclass(slots=True)
class Record:
    """A Kafka record as the pipeline needs it. Treat it as immutable: one is built per
    message, and a frozen dataclass costs a microsecond more to construct."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: float | None = None
    """Broker/producer timestamp in epoch seconds (ingest time for records from ingest)."""
    publisher_vouched: bool = False
    """Made in this process from a record this worker counted (services/metrics/
    refusals.py: an element of a batch, a canary): its ``egov_publisher`` was believed
    then, under the MACs it no longer carries. Never true of a record read from Kafka."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record (or one element of a batch record) for the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    reason: str
    topic: str
    partition: int = -1
    offset: int = -1
    detail: str = ""

    @property
    def size(self) -> int:
        """Bytes it takes in a produce request, at most (aiokafka's own estimate)."""
        size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(
            self.key, self.value, list(self.headers)
        )
        return size


@dataclass(slots=True)
class Prepared:
    """One step's records, decoded: what to count per partition, and what to dead-letter."""

    batches: dict[TopicPartition, PartitionBatch] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    too_late: list[str] = field(default_factory=list)
    """Event types of events beyond the grace period (they are dead-lettered too)."""
    ingest_times: list[float] = field(default_factory=list)
    """Broker timestamps of the records (ingest time, for records from ingest)."""
    paths: dict[str, int] = field(default_factory=dict)
    """Records by how they were decoded (exposition.RECORD_PATHS)."""
    forwards: list[Forward] = field(default_factory=list)
    """Events keyed by something else than their province, to publish again keyed by it
    before the offsets move on (services/metrics/rekeying.py)."""
    pieces: list[tuple[Sequence[Record], datetime]] = field(default_factory=list)
    """The records decoded into it, and the clock each piece was decoded at: kept until
    the flush commits, to find a record PostgreSQL refuses (services/metrics/refusals.py)."""


_Decoded = tuple[Record, tuple[Any, bool], float]
"""A record, its value parsed (``RecordDecoder.elements``: an event, or a batch's list),
and before when its events are beyond the grace."""

_Mark = tuple[Mark, int, int, int]
"""How much a step had prepared before one record (its partition batch's mark, dead letters,
too-late events, forwards): what to take back if it raises. A tuple: one is made per record."""


def _mark(out: Prepared, batch: PartitionBatch) -> _Mark:
    return (batch.mark(), len(out.dead_letters), len(out.too_late), len(out.forwards))


def _take_back(mark: _Mark, out: Prepared, batch: PartitionBatch) -> None:
    batch.take_back(mark[0])
    del out.dead_letters[mark[1] :]
    del out.too_late[mark[2] :]
    del out.forwards[mark[3] :]


def dead_letter(record: Record, rejected: Rejected) -> DeadLetter:
    """The original bytes, the original headers, and headers saying why and from where;
    a reference instead when that is too large to send (``reference_of``)."""
    headers = [*record.headers]
    headers += [
        ("dlq_reason", rejected.reason.encode()),
        ("dlq_detail", rejected.detail[:2000].encode()),
        ("dlq_source", f"{record.topic}[{record.partition}]@{record.offset}".encode()),
    ]
    value = record.value
    if rejected.index is not None:
        headers.append(("dlq_batch_index", str(rejected.index).encode()))
        # An element that cannot be re-serialised keeps the whole record's bytes.
        value = rejected.raw if rejected.raw is not None else record.value
    dead = DeadLetter(
        record.key,
        value,
        headers,
        rejected.reason,
        record.topic,
        record.partition,
        record.offset,
        rejected.detail,
    )
    return reference_of(dead) if dead.size > DEAD_LETTER_MAX_BYTES else dead


def reference_of(dead: DeadLetter, why: str | None = None) -> DeadLetter:
    """A small dead letter that points at ``dead``'s record instead of carrying it: where
    it is (topic, partition, offset; the event topic keeps it for its retention), its size
    and why it was not counted; ``why`` it is not carried (default: its size). Header
    ``dlq_reference: 1`` tells it from a copy."""
    size = dead.size
    source = f"{dead.topic}[{dead.partition}]@{dead.offset}"
    detail = dead.detail[:2000]
    index = next((v for k, v in dead.headers if k == "dlq_batch_index"), None)
    body = {
        "reference": True,
        "topic": dead.topic,
        "partition": dead.partition,
        "offset": dead.offset,
        "size": size,
        "reason": dead.reason,
        "detail": detail,
        "batch_index": None if index is None else int(index),
        "why": why or f"{size} bytes with its headers: more than a dead letter may carry",
    }
    headers = [
        ("dlq_reason", dead.reason.encode()),
        ("dlq_detail", detail.encode()),
        ("dlq_source", source.encode()),
        ("dlq_reference", b"1"),
        ("dlq_size", str(size).encode()),
    ]
    if index is not None:
        headers.append(("dlq_batch_index", index))
    # Whose events they are: `dead-letters replay` publishes them again under that
    # identity, or a publisher's own resend would count them twice (review 84).
    headers += [(k, v) for k, v in dead.headers if k == PUBLISHER_HEADER][-1:]
    key = dead.key if dead.key is None or len(dead.key) <= _KEY_KEPT_BYTES else None
    return DeadLetter(
        key,
        orjson.dumps(body),
        headers,
        dead.reason,
        dead.topic,
        dead.partition,
        dead.offset,
        dead.detail,
    )


UNDECODABLE_BATCH = "undecodable-batch"
"""Dead-letter reason of the rest of a record batch the consumer could not unpack."""
UNREAD = "the batch could not be unpacked: its records stay on the event topic, unread"


def _undecodable(record: Record) -> str | None:
    """The detail of a stand-in for an unpackable batch's rest, else None."""
    for name, value in record.headers:
        if name == UNDECODABLE:
            return value.decode(errors="replace")
    return None


KEY_TEXTS_KEPT = 4096
"""Keys kept decoded (``Preparer._key_texts``); a publisher keying by event id starts it
again when full, rather than growing it for ever."""


def _key_text(keys: dict[bytes | None, str], key: bytes | None) -> str:
    """``key`` as the province code it should be ("" for none), remembered in ``keys``."""
    if len(keys) >= KEY_TEXTS_KEPT:
        keys.clear()
    text = keys[key] = "" if key is None else key.decode(errors="replace")
    return text


def unprocessable(exc: BaseException) -> Rejected:
    """The dead-letter reason of a record whose decoding raised ``exc`` (the record's fault)."""
    return Rejected("unprocessable", f"{type(exc).__name__} while decoding: {exc}"[:2000])


class Preparer:
    """Decodes records into tally batches (services/common/tally.py); live events beyond
    the grace become dead letters (backfilled ones count in their day, however old).

    "Beyond the grace" is judged as ingest judged it: against when the record was accepted
    (header ``egov_accepted_ms``; for a record published straight to Kafka, its Kafka
    timestamp), not against ``now``, the worker's clock as it reads the record: a backlog
    waiting in the broker loses nothing that was on time when it was accepted.
    """

    def __init__(
        self,
        decoder: RecordDecoder,
        contract: Contract,
        catalogue: KpiCatalogue,
        grace: timedelta,
        clock_skew: timedelta = timedelta(seconds=300),
        signer: RecordSigner | None = None,
    ) -> None:
        self._decoder = decoder
        self._contract = contract
        self._catalogue = catalogue
        self._grace = grace
        self._clock_skew = clock_skew
        self._signer = signer
        self._families = {t: contract.family(t) for t in contract.event_types}
        self._summaries = SummaryReader()
        self._provinces = DeadLetterProvinces(decoder)
        self._key_texts: dict[bytes | None, str] = {}
        self.partition_counts: Mapping[str, int] = {}
        """The event topics' partition counts as the consumer last saw them (the worker
        sets them each step; unknown, a record's partition is not checked)."""
        """Records' keys as text, to compare with their events' provinces: a few dozen
        (the provinces, and what a publisher keys by), read once each."""
        self._bounds = sanity.SummaryBounds(
            {kpi.id: kpi.event_type for kpi in catalogue.kpis},
            frozenset(self._families),
            decoder.knows_unit,
        )

    def province_of(self, dead: DeadLetter, now: datetime) -> str:
        """The province whose figures miss ``dead`` ("" unknown): services/metrics/
        dlqprovince.py."""
        return self._provinces.of(dead.key, dead.value, now)

    def prepare(
        self, records: Iterable[Record], now: datetime, out: Prepared | None = None
    ) -> Prepared:
        """Decode ``records`` (in offset order per partition), adding to ``out`` if given.

        Whatever a record holds, it is counted or dead-lettered: an exception while
        preparing it (``NOT_THE_RECORDS_FAULT`` aside) takes back what it had added and
        dead-letters the whole record as ``unprocessable``.
        """
        if out is None:
            out = Prepared()
        grace_s = self._grace.total_seconds()
        now_s = now.timestamp()
        records = records if isinstance(records, Sequence) else list(records)
        i, n = 0, len(records)
        while i < n:
            record = records[i]
            tp = (record.topic, record.partition)
            batch = out.batches.get(tp)
            if batch is None:
                batch = out.batches[tp] = PartitionBatch(tp, record.offset + 1)
            end = i + 1
            if not record.headers:  # straight to Kafka: the run of such records after it
                topic, partition = tp
                while (
                    end < n
                    and not records[end].headers
                    and records[end].partition == partition
                    and records[end].topic == topic
                ):
                    end += 1
            if end - i > 1:
                self._prepare_plain(out, batch, records[i:end], now_s, grace_s)
            else:
                self._prepare_one(out, batch, record, now_s, grace_s)
            i = end
        return out

    def _prepare_one(
        self, out: Prepared, batch: PartitionBatch, record: Record, now_s: float, grace_s: float
    ) -> None:
        """``prepare`` of one record: counted, or dead-lettered whole if it raises."""
        batch.next_offset = max(batch.next_offset, record.offset + 1)
        if record.value is None and (undecodable := _undecodable(record)) is not None:
            # The rest of a batch the consumer could not unpack (services/metrics/
            # unpacking.py): its dead letter says which offsets, and its offset (the
            # batch's last) moves the position past them.
            log.warning("%s is dead-lettered", undecodable)
            dead = dead_letter(record, Rejected(UNDECODABLE_BATCH, undecodable))
            out.dead_letters.append(reference_of(dead, UNREAD))
            return
        if record.timestamp is not None:
            out.ingest_times.append(record.timestamp)
        too_late_before = self._accepted(record, now_s) - grace_s
        mark = _mark(out, batch)
        try:
            self._prepare_record(out, batch, record, now_s, too_late_before)
        except NOT_THE_RECORDS_FAULT:
            raise
        except Exception as exc:
            _take_back(mark, out, batch)
            log.warning(
                "%s[%d]@%d is dead-lettered: %r",
                record.topic,
                record.partition,
                record.offset,
                exc,
                exc_info=True,
            )
            out.dead_letters.append(dead_letter(record, unprocessable(exc)))

    def _prepare_plain(
        self,
        out: Prepared,
        batch: PartitionBatch,
        run: Sequence[Record],
        now_s: float,
        grace_s: float,
    ) -> None:
        """``prepare`` of consecutive records of one partition published straight to Kafka
        (no headers: an integrator's events, typically one per message), validated in one
        loop as if they were one record's events: the per-record set-up is paid once per
        run, not per event (singles spent ~4.5 µs an event in it, of ~12 in ``prepare``).

        Should the run raise, what it added is taken back and its records go one by one
        (``_prepare_one``): the record at fault alone is dead-lettered, as before."""
        mark = _mark(out, batch)
        try:
            decoded: list[_Decoded] = []
            for record in run:
                elements = self._decoder.elements(record.value)
                if isinstance(elements, Rejected):
                    # Dead letters stay in offset order: what came before it goes first.
                    self._prepare_events(out, batch, decoded, now_s, False, UNBOUND, True)
                    decoded = []
                    out.dead_letters.append(dead_letter(record, elements))
                else:
                    accepted = self._accepted(record, now_s)
                    decoded.append((record, elements, accepted - grace_s))
            self._prepare_events(out, batch, decoded, now_s, False, UNBOUND, True)
        except NOT_THE_RECORDS_FAULT:
            raise
        except Exception:  # the record at fault is found, and logged, one by one
            _take_back(mark, out, batch)
            for record in run:
                self._prepare_one(out, batch, record, now_s, grace_s)
            return
        batch.next_offset = max(batch.next_offset, run[-1].offset + 1)
        out.ingest_times += [r.timestamp for r in run if r.timestamp is not None]
        out.paths["validated"] = out.paths.get("validated", 0) + len(run)

    def _vouched_now(self, headers: Sequence[tuple[str, bytes]], now_s: float) -> float:
        """The instant a record ingest signed is judged "future" from.

        Ingest judged its events' times against its own clock when it answered 202, and
        says when (``egov_accepted_ms``, under the MAC): a worker whose clock lags
        ingest's judges from that instant too, so it does not refuse what ingest
        accepted. The header is rounded down to the millisecond, so up to 999 µs are
        added back (an event at ingest's exact skew counts; one a millisecond beyond it
        is still refused). Ingest's clock is believed at most one skew ahead of this
        worker's: an ingest whose clock is further ahead has its far-future events
        dead-lettered as time-in-future, visibly, not counted into days to come."""
        accepted = accepted_at(headers)
        if accepted is None:
            return now_s
        skew = self._clock_skew.total_seconds()
        return max(now_s, min(accepted + 0.000999, now_s + skew))

    @staticmethod
    def _accepted(record: Record, now_s: float) -> float:
        """When ``record`` was accepted: ingest's header, else its Kafka timestamp (the
        producer's or the broker's clock), else, with neither, now."""
        accepted = accepted_at(record.headers) if record.headers else None
        if accepted is not None:
            return accepted
        return record.timestamp if record.timestamp is not None else now_s

    def _prepare_record(
        self,
        out: Prepared,
        batch: PartitionBatch,
        record: Record,
        now_s: float,
        too_late_before: float,
    ) -> None:
        if not record.headers:  # straight to Kafka: no summary, signature, publisher, flag
            self._prepare_validated(out, batch, record, now_s, too_late_before, False, UNBOUND)
            return
        backfill = BACKFILL_HEADER in record.headers
        # Its events' dedup identity: (publisher, source, id); ValueError dead-letters it.
        # With a signer, a publisher is believed only under ingest's MAC (checked below).
        publisher = publisher_of(record.headers)
        signer = self._signer
        if signer is not None:
            # Summarised by ingest under this contract, catalogue and registry: counted
            # as groups when every event is in bounds, else read event by event. A summary
            # forged, unsigned or nonsense is never counted: the record is dead-lettered.
            topic, key = record.topic, record.key
            vouched_now = self._vouched_now(record.headers, now_s)
            check, summary, version = signer.check_summary(
                record.value, record.headers, topic=topic, key=key
            )
            if check in (SummaryCheck.FORGED, SummaryCheck.UNSIGNED):
                detail = "its summary's MAC does not verify for this key and fingerprint"
                if check is SummaryCheck.UNSIGNED:
                    detail = "it claims a summary without a MAC"
                out.dead_letters.append(dead_letter(record, Rejected(check.value, detail)))
                return
            if summary is None:
                # Validated by ingest under this contract: the schema check is not repeated.
                signed = signer.verifies(record.value, record.headers, topic=topic, key=key)
            else:
                counted = self._prepare_summary(
                    batch,
                    summary,
                    VERSION if version is None else version,
                    len(record.value or b""),
                    vouched_now,
                    too_late_before,
                    backfill,
                    publisher,
                )
                if isinstance(counted, Rejected):
                    out.dead_letters.append(dead_letter(record, counted))
                    return
                if counted:
                    out.paths["summary"] = out.paths.get("summary", 0) + 1
                    return
                signed = True  # its events need a look one by one; ingest validated them
            if signed:
                self._prepare_signed(
                    out, batch, record, vouched_now, too_late_before, backfill, publisher
                )
                out.paths["signed"] = out.paths.get("signed", 0) + 1
                return
            from_ingest = (bool(publisher) or vouched_now > now_s) and signer.ingested(
                record.value, record.headers, topic=topic, key=key
            )
            if publisher and not (from_ingest or record.publisher_vouched):
                # A publisher is ingest's to name: believed from anyone who can write the
                # topic, it would let them spend another system's ids (review 86).
                out.dead_letters.append(dead_letter(record, _PUBLISHER_UNSIGNED))
                return
            if from_ingest and vouched_now > now_s:
                # Signed under another contract (a rolling upgrade): validated in full
                # here, but it came from ingest, whose acceptance time stands as for a
                # record signed under ours (a lagging worker counts what ingest accepted).
                now_s = vouched_now
        self._prepare_validated(out, batch, record, now_s, too_late_before, backfill, publisher)

    def _prepare_validated(
        self,
        out: Prepared,
        batch: PartitionBatch,
        record: Record,
        now_s: float,
        too_late_before: float,
        backfill: bool,
        publisher: str,
    ) -> None:
        """``prepare`` for a record no ingest vouches for: each event against the contract."""
        out.paths["validated"] = out.paths.get("validated", 0) + 1
        elements = self._decoder.elements(record.value)
        if isinstance(elements, Rejected):
            out.dead_letters.append(dead_letter(record, elements))
            return
        decoded = [(record, elements, too_late_before)]
        self._prepare_events(out, batch, decoded, now_s, backfill, publisher, True)

    def _prepare_summary(
        self,
        batch: PartitionBatch,
        raw: bytes,
        version: int,
        value_size: int,
        now_s: float,
        too_late_before: float,
        backfill: bool,
        publisher: str,
    ) -> bool | Rejected:
        """Count a summarised record as groups (and dossier facts), when nothing in it
        needs a per-event look: every event within the clock skew and (unless backfilled)
        within the grace. False: its events need that look; Rejected: the summary is
        malformed or adds what no valid record adds (services/metrics/sanity.py), and the
        record is dead-lettered."""
        try:
            tally = self._summaries.read(raw, version, backfill, publisher)
            wrong = sanity.problem(tally, value_size, self._bounds, version)
            if wrong is None:
                tally.families = [self._families[t] for t in tally.types]
        except Exception as exc:  # its MAC verified: a stolen key or an ingest bug
            wrong = f"malformed: {exc!r}"[:2000]
        if wrong is not None:
            log.warning("a signed summary is dead-lettered: %s", wrong)
            return Rejected(sanity.NONSENSE, wrong)
        if version < 2 and not DOSSIER_TYPES.isdisjoint(tally.types):
            return False  # version 1's digests are per event, the ledger needs each dossier
        if version < 3 and any(fact.kind == "final" for fact in tally.facts.values()):
            # Version 2 says ``final`` for a refusal as for an approval, and the ledger
            # judges a refusal while the dossier is back with its applicant at the return:
            # only the event tells which (records written before ingest's upgrade).
            return False
        epochs = tally.epochs
        if not epochs or max(epochs) > now_s + self._clock_skew.total_seconds():
            return False
        if not backfill and min(epochs) < too_late_before:
            return False
        batch.append(tally, summarised=True)
        return True

    def _prepare_signed(
        self,
        out: Prepared,
        batch: PartitionBatch,
        record: Record,
        now_s: float,
        too_late_before: float,
        backfill: bool,
        publisher: str,
    ) -> None:
        """``prepare`` for a record ingest validated and signed: its events are not checked
        against the contract again (their fields are there and typed)."""
        raw = orjson.loads(record.value or b"[]")  # never empty: verifies() refuses that
        elements = (raw, True) if not isinstance(raw, list) else (raw, False)
        decoded = [(record, elements, too_late_before)]
        self._prepare_events(out, batch, decoded, now_s, backfill, publisher, False)

    def _prepare_events(
        self,
        out: Prepared,
        batch: PartitionBatch,
        decoded: Sequence[_Decoded],
        now_s: float,
        backfill: bool,
        publisher: str,
        validate: bool,
    ) -> None:
        """Every event of records parsed (each a single event, or a batch's list), checked
        and tallied in one loop without an object per event: this runs once per event a
        worker counts.

        In order, an event is dead-lettered when it breaks the contract (if ``validate``;
        records ingest signed passed it there), names a unit unknown or ambiguous at its
        time, lies beyond the clock skew in the future, or (unless backfilled) beyond the
        grace before its record was accepted; else, validated here in a record keyed by
        another value than its province, it is published again keyed by it
        (services/metrics/rekeying.py); else it joins its group.
        """
        if not decoded:
            return
        future_after = now_s + self._clock_skew.total_seconds()
        cache, resolve = self._decoder.resolved_cache(), self._decoder.resolve
        checked_time = self._contract.checked_time
        counts = self._catalogue.counts_of_envelope
        add = batch.builder(backfill, self._families).add
        fromisoformat = datetime.fromisoformat
        moves = Moves()
        keys, partitions = self._key_texts, self.partition_counts
        for record, (raw, single), too_late_before in decoded:
            # Records no ingest vouches for: their key is the publisher's (its MAC covers
            # the key of a record ingest signed, keyed from the same registry), and so is
            # its partition: "" (no province) unless the key's is where it landed.
            key = None
            if validate:
                key = keys.get(record.key)
                if key is None:
                    key = _key_text(keys, record.key)
                count = partitions.get(record.topic)
                if key and count and partition_of(record.key, count) != record.partition:
                    key = ""
            for index, e in enumerate((raw,) if single else raw):
                if validate:
                    when = checked_time(e)
                    if isinstance(when, list):
                        rejected = Rejected("schema-violation", violations_text(when))
                        self._reject_element(out, record, rejected, None if single else index, e)
                        continue
                else:
                    when = fromisoformat(e["time"].upper())
                epoch = when.timestamp()
                if epoch < EARLIEST_EVENT_EPOCH:  # the contract's years (its day would not exist)
                    raise ValueError(f"event time {when.isoformat()} before the contract's years")
                unit = e["unit"]
                found = cache.get((unit, epoch >= REFORM_EPOCH))
                if found is None:
                    resolved = resolve(unit, when)
                    if isinstance(resolved, Rejected):
                        self._reject_element(out, record, resolved, None if single else index, e)
                        continue
                    found = resolved
                if epoch > future_after:
                    skew = self._clock_skew.total_seconds()
                    detail = f"event time {when.isoformat()} is more than {skew:.0f} s ahead"
                    rejected = Rejected("time-in-future", detail)
                    self._reject_element(out, record, rejected, None if single else index, e)
                    continue
                event_type = e["type"]
                if epoch < too_late_before and not backfill:
                    out.too_late.append(event_type)
                    rejected = Rejected("too-late", self._too_late(when, too_late_before))
                    self._reject_element(out, record, rejected, None if single else index, e)
                    continue
                if key is not None and found[1][-1] != key:  # the chain ends at its province
                    moves.add(record, found[1][-1], e, single)
                    continue
                fact = None
                if event_type in FACT_TYPES:
                    fact = fact_of(event_type, e["data"], publisher)
                add(
                    group_key(event_type, found[1], found[0].via_crosswalk, counts(e, when), epoch),
                    epoch,
                    event_digest(e["source"], event_type, e["id"], e["data"], publisher),
                    fact,
                )
        out.forwards += moves.forwards()

    @staticmethod
    def _reject_element(
        out: Prepared, record: Record, rejected: Rejected, index: int | None, element: object
    ) -> None:
        raw = None if index is None else element_bytes(element)
        located = Rejected(rejected.reason, rejected.detail, index, raw)
        out.dead_letters.append(dead_letter(record, located))

    def _too_late(self, when: datetime, too_late_before: float) -> str:
        accepted = datetime.fromtimestamp(too_late_before + self._grace.total_seconds(), UTC)
        days = self._grace / timedelta(days=1)
        return (
            f"event time {when.isoformat()} is beyond the {days:g}-day grace period of the "
            f"time its record was accepted, {accepted.isoformat()}"
        )


def count_backfilled(metrics: PipelineMetrics, counted: Iterable[TallyBatch]) -> None:
    """``egov_events_backfilled_total`` by type of the backfilled batches among ``counted``,
    one ``inc`` per type (not per event)."""
    by_type: dict[str, int] = {}
    for tally in counted:
        if tally.backfill:
            for group in tally.groups():
                by_type[group.type] = by_type.get(group.type, 0) + group.events
    for event_type, n in by_type.items():
        metrics.backfilled.labels(event_type).inc(n)


async def retrying(
    what: str,
    action: Callable[[], Awaitable[T]],
    delay_s: float = 0.5,
    errors: tuple[type[BaseException], ...] = INFRASTRUCTURE_ERRORS,
) -> T:
    """Run ``action`` until it succeeds: infrastructure failures (``errors``) block, not drop."""
    attempt = 0
    while True:
        try:
            return await action()
        except errors as exc:
            attempt += 1
            log.warning("%s failed (attempt %d), retrying: %r", what, attempt, exc)
            await asyncio.sleep(min(delay_s * attempt, 5.0))


class PartitionState:
    """The partitions this worker owns: claims (for fencing), figures, and the flush."""

    def __init__(
        self,
        pool: Callable[[], Awaitable[asyncpg.Pool]],
        group: str,
        owner: str,
        figures: Figures,
        metrics: PipelineMetrics,
        stall: StallWatch | None = None,
    ) -> None:
        self._pool = pool
        self.stall = stall if stall is not None else StallWatch()
        """The counting's stall watch: a claim or a read of stored positions that
        PostgreSQL holds is a stall of the counting too (they come before any record)."""
        self.group = group
        self.owner = owner
        self.figures = figures
        self.metrics = metrics
        self.claims: dict[TopicPartition, Claim] = {}
        self.readings: dict[TopicPartition, int] = {}
        """How often each partition was (re)started from its stored position (claimed,
        sent back by a rebalance, revoked): records read before belong to an earlier
        reading, and the consumer hands them over again (services/metrics/agents.py)."""
        # Claims, loads and flushes never interleave: a flush sees a consistent ownership.
        self._lock = asyncio.Lock()
        self._expect_new = True
        """Whether the last flush found no duplicate: the next tries its dedup keys as
        all new first (store.flush ``expect_new``)."""

    async def _using(self, use: Callable[[Connection], Awaitable[T]]) -> T:
        """``use`` a pooled connection. A server refusing writes (a failover left the pool
        on a demoted primary) has the pool's connections replaced before the caller
        retries: a pooled connection would stay on the read-only server for ever."""
        pool = await self._pool()
        try:
            async with pool.acquire() as conn:
                return await use(conn)
        except INFRASTRUCTURE_ERRORS as exc:
            await expire_if_read_only(pool, exc)
            raise

    async def assign(
        self, tps: Sequence[TopicPartition], periods: Periods
    ) -> dict[TopicPartition, int]:
        """Claim ``tps``, load their figures; returns the offset to read each from next."""
        if not tps:
            return {}
        with self.stall.held():  # no record reaches the counting before its claim
            async with self._lock:
                return await retrying("claiming partitions", lambda: self._assign(tps, periods))

    async def _assign(
        self, tps: Sequence[TopicPartition], periods: Periods
    ) -> dict[TopicPartition, int]:
        async def claim(
            conn: Connection,
        ) -> tuple[dict[TopicPartition, Claim], dict[TopicPartition, PartitionFigures]]:
            async with conn.transaction():
                claims = await store.claim(conn, self.group, self.owner, tps)
                return claims, await store.load_figures(conn, tps, periods)

        claims, loaded = await self._using(claim)
        for tp in tps:
            self.claims[tp] = claims[tp]
            self.figures.assign(tp, loaded[tp])
            self.readings[tp] = self.readings.get(tp, 0) + 1
        log.info("claimed %s", {f"{t}[{p}]": c.next_offset for (t, p), c in claims.items()})
        return {tp: c.next_offset for tp, c in claims.items()}

    async def stored_positions(self, tps: Sequence[TopicPartition]) -> dict[TopicPartition, Stored]:
        """Where the figures of partitions this worker keeps end now (the last committed
        flush), with the fingerprint of the record before: read, not claimed again."""
        if not tps:
            return {}

        async def read(conn: Connection) -> dict[TopicPartition, Stored]:
            return await store.positions(conn, self.group, tps)

        with self.stall.held():
            return await retrying("reading stored positions", lambda: self._using(read))

    def resumed_at(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Where the consumer was sent: the claims say so, for the next rebalance."""
        for tp, offset in offsets.items():
            self.readings[tp] = self.readings.get(tp, 0) + 1
            claim = self.claims.get(tp)
            if claim is not None:
                self.claims[tp] = dataclasses.replace(claim, next_offset=offset)

    async def revoke(self, tps: Iterable[TopicPartition]) -> None:
        """Forget revoked partitions at once: nothing stale is exported.

        Without the lock: a flush retrying through a database outage holds it, and the
        rebalance must not wait for PostgreSQL. A flush in flight still commits only what
        its epoch allows, and its figures are not applied to a partition no longer here.
        """
        for tp in tps:
            self.claims.pop(tp, None)
            self.figures.revoke(tp)
            self.readings[tp] = self.readings.get(tp, 0) + 1

    async def flush(self, batches: Sequence[PartitionBatch], periods: Periods) -> FlushResult:
        """Count the batches (one transaction), then update the figures of owned partitions."""
        async with self._lock:
            # A batch decoded in an earlier reading of its partition (taken for this flush
            # before a rebalance gave the partition back) would store an offset from
            # before the claim: its records are handed over again, so it is left out.
            batches = [b for b in batches if b.reading < 0 or b.reading == self.readings.get(b.tp)]
            owned = [b for b in batches if b.tp in self.claims]
            if not owned:
                return FlushResult(fenced={b.tp for b in batches})
            claims = dict(self.claims)
            tried = False

            async def attempt() -> FlushResult:
                nonlocal tried
                again, tried = tried, True
                return await self._flush(claims, owned, periods, again)

            result = await retrying("flush", attempt)
            # A flush with duplicates (a publisher re-sending) says the next may have some.
            self._expect_new = not result.duplicates
            for tp, deltas in result.deltas.items():
                self.figures.apply(tp, deltas, periods)
            for tp, figures in result.reloaded.items():
                if tp in self.claims:
                    self.figures.assign(tp, figures)
            count_backfilled(self.metrics, result.counted)
            for tp in result.fenced:
                log.warning("%s[%d] is owned by another worker now: its batch is dropped", *tp)
                self.claims.pop(tp, None)
                self.figures.revoke(tp)
            result.fenced |= {b.tp for b in batches if b.tp not in claims}
            return result

    async def probe(
        self,
        batches: Sequence[PartitionBatch],
        periods: Periods,
        clones: Sequence[dossierstore.DossierClone] = (),
        /,
    ) -> FlushResult:
        """Run the flush of ``batches`` and roll it back: it raises what PostgreSQL refuses
        in them (services/metrics/refusals.py), or says what it would count; it changes
        nothing, here or stored. ``clones``: ledger rows copied under a canary's dossier
        id first, in the same transaction."""
        async with self._lock:
            claims = dict(self.claims)
            owned = [b for b in batches if b.tp in claims]
            if not owned:
                return FlushResult(fenced={b.tp for b in batches})

            async def attempt(conn: Connection) -> FlushResult:
                transaction = conn.transaction()
                await transaction.start()
                try:
                    # What a commit would check (a deferred constraint), checked now.
                    await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    for copy in clones:
                        if copy.tp in claims:
                            await dossierstore.clone(conn, copy)
                    # The flush's own transaction is a savepoint inside this one.
                    return await store.flush(
                        conn, self.group, claims, owned, periods, self._expect_new
                    )
                finally:
                    await transaction.rollback()

            return await retrying("probing a refused flush", lambda: self._using(attempt))

    async def sweep_dossiers(self, now: datetime) -> None:
        """Count the open dossiers whose appointment passed by ``now`` (the worker's clock:
        services/metrics/dossiers.py), then update the figures of owned partitions."""
        async with self._lock:
            claims = dict(self.claims)
            if not claims:
                return

            async def sweep(conn: Connection) -> dict[TopicPartition, Deltas]:
                return await store.sweep_dossiers(conn, self.group, claims, now)

            found = await retrying("sweeping overdue dossiers", lambda: self._using(sweep))
            periods = Periods.at(now)
            for tp, deltas in found.items():
                self.figures.apply(tp, deltas, periods)

    async def _flush(
        self,
        claims: Mapping[TopicPartition, Claim],
        batches: Sequence[PartitionBatch],
        periods: Periods,
        again: bool,
    ) -> FlushResult:
        """One attempt of a flush; ``again`` after an attempt that failed."""

        async def run(conn: Connection) -> FlushResult:
            if again:
                # The failed attempt's outcome may be unknown (its connection lost after
                # PostgreSQL committed): its events would now all read as duplicates and
                # the exported figures miss them, silently. Checked first, for one query.
                done = await self._committed_already(conn, claims, batches, periods)
                if done is not None:
                    return done
            return await store.flush(conn, self.group, claims, batches, periods, self._expect_new)

        return await self._using(run)

    async def _committed_already(
        self,
        conn: Connection,
        claims: Mapping[TopicPartition, Claim],
        batches: Sequence[PartitionBatch],
        periods: Periods,
    ) -> FlushResult | None:
        """If an earlier attempt of this flush committed, the figures of its partitions
        read back from PostgreSQL as on assignment (exact, whatever that attempt counted
        or found duplicate); None if it did not commit."""
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            fenced = await store.committed_already(conn, self.group, claims, batches)
            if fenced is None:
                return None
            tps = [b.tp for b in batches if b.tp not in fenced]
            loaded = await store.load_figures(conn, tps, periods)
        log.warning(
            "the flush of %s had committed before its connection was lost: their figures "
            "are read back from PostgreSQL",
            ", ".join(f"{t}[{p}]" for t, p in tps),
        )
        return FlushResult(fenced=fenced, reloaded=loaded)
