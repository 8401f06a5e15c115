"""PostgreSQL adapter of the metrics service: one transaction per flush, claims, loading.

A flush writes, atomically: the dedup keys of the batch's events (only events whose key
is new are counted), the daily and 5-minute figures they add, the last-event times and
the next offset of each partition. Each partition is *claimed* by the worker it is
assigned to (its epoch goes up by one); a flush carrying an older epoch is fenced: that
partition's work is dropped, because its new owner will read those records again.

Errors: :class:`StoreError` is the base; a database that is down surfaces as asyncpg's
own connection errors, which the pipeline retries (it never dead-letters them).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import asyncpg

from services.common.db import Connection
from services.common.tally import Deltas, TallyBatch, TallyEvent
from services.common.targets import Override, Scope
from services.metrics import dossierstore, pgcopy, tally
from services.metrics.eras import PREVIOUS_ERA, Lineage, era_of_day
from services.metrics.figures import PartitionFigures, TopicPartition, partition_from_rows
from services.metrics.logcheck import Stored
from services.metrics.periods import BUCKET_RETENTION_S, Periods
from services.metrics.tally import KeyBlocks, PartitionBatch


class StoreError(Exception):
    """Base of the metrics store's own errors."""


@dataclass(frozen=True, slots=True)
class Claim:
    """A partition this worker owns: where to resume reading and the epoch that fences."""

    tp: TopicPartition
    next_offset: int
    epoch: int
    last_record: bytes | None = None
    """Fingerprint of the record before ``next_offset`` (services/metrics/logcheck.py)."""


@dataclass(slots=True)
class FlushResult:
    """What a committed flush counted; fenced partitions counted nothing."""

    deltas: dict[TopicPartition, Deltas] = field(default_factory=dict)
    tallies: dict[TopicPartition, list[TallyBatch]] = field(default_factory=dict)
    """The events counted (new dedup keys), per partition in offset order."""
    duplicates: list[TallyEvent] = field(default_factory=list)
    fenced: set[TopicPartition] = field(default_factory=set)
    reloaded: dict[TopicPartition, PartitionFigures] = field(default_factory=dict)
    """Figures read back from PostgreSQL instead of counted: the flush had committed in
    an attempt whose answer was lost (:func:`committed_already`)."""

    @property
    def counted(self) -> list[TallyBatch]:
        """Every batch counted, whatever the partition."""
        return [t for tallies in self.tallies.values() for t in tallies]

    @property
    def events(self) -> int:
        """How many events the flush counted."""
        return sum(t.events for tallies in self.tallies.values() for t in tallies)


def _tp_arrays(tps: Iterable[TopicPartition]) -> tuple[list[str], list[int]]:
    pairs = list(tps)
    return [t for t, _ in pairs], [p for _, p in pairs]


async def claim(
    conn: Connection, group: str, owner: str, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, Claim]:
    """Take ownership of partitions: bump their epoch and return where each resumes."""
    topics, parts = _tp_arrays(tps)
    rows = await conn.fetch(
        """
        INSERT INTO consumer_offsets (group_id, topic, "partition", epoch, owner)
        SELECT $1, t, p, 1, $4 FROM unnest($2::text[], $3::int[]) AS u(t, p)
        ON CONFLICT (group_id, topic, "partition") DO UPDATE
            SET epoch = consumer_offsets.epoch + 1, owner = excluded.owner, updated_at = now()
        RETURNING topic, "partition", next_offset, epoch, last_record
        """,
        group,
        topics,
        parts,
        owner,
    )
    claims = {}
    for r in rows:
        tp = (r["topic"], r["partition"])
        claims[tp] = Claim(tp, r["next_offset"], r["epoch"], r["last_record"])
    return claims


async def positions(
    conn: Connection, group: str, tps: Sequence[TopicPartition]
) -> dict[TopicPartition, Stored]:
    """The stored position of each partition and the fingerprint of the record before it."""
    topics, parts = _tp_arrays(tps)
    rows = await conn.fetch(
        """
        SELECT o.topic, o."partition", o.next_offset, o.last_record FROM consumer_offsets o
        JOIN unnest($2::text[], $3::int[]) AS u(t, p) ON o.topic = u.t AND o."partition" = u.p
        WHERE o.group_id = $1
        """,
        group,
        topics,
        parts,
    )
    return {(r["topic"], r["partition"]): Stored(r["next_offset"], r["last_record"]) for r in rows}


async def flush(
    conn: Connection,
    group: str,
    claims: Mapping[TopicPartition, Claim],
    batches: Sequence[PartitionBatch],
    periods: Periods,
    expect_new: bool = False,
) -> FlushResult:
    """Count the batch's new events and advance the offsets, in one transaction.

    ``expect_new``: try the dedup keys as all new first (``_all_new``) even where no
    batch came whole from ingest's summaries, as when the partitions' last flush found
    no duplicate. Records published straight to Kafka are mostly new too: the binary
    COPY then takes PostgreSQL ~40 % less CPU an event than INSERT .. ON CONFLICT (4.0
    against 6.75 µs, the counting of 40,000 single-event records; bench/pipeline.py). A
    duplicate undoes the attempt, and the keys are decided one by one as before."""
    result = FlushResult()
    async with conn.transaction():
        result.fenced = await _fenced(conn, group, claims, [b.tp for b in batches])
        live = [b for b in batches if b.tp not in result.fenced]
        if not live:
            return result
        if (expect_new or any(b.summarised for b in live)) and await _all_new(conn, live):
            # The usual case with ingest's summaries: no per-event decision at all, and
            # the sums made ahead are the flush's.
            for batch in live:
                result.tallies[batch.tp] = list(batch.tallies)
                result.deltas[batch.tp] = batch.deltas()
        else:
            await _insert_keys(conn, live, result)
            for batch in live:
                result.deltas[batch.tp] = (
                    batch.deltas()
                    if not result.duplicates
                    else Deltas.of_batches(result.tallies.get(batch.tp, []))
                )
        await dossierstore.count(conn, live, result)
        await _upsert_figures(conn, result.deltas, periods)
        topics, parts = _tp_arrays(b.tp for b in live)
        # The clock at the flush's last statement, not its transaction's start: when the
        # positions (and the figures with them) became durable, to a few milliseconds.
        await conn.execute(
            """
            UPDATE consumer_offsets AS o
            SET next_offset = u.n, last_record = u.f, updated_at = clock_timestamp()
            FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[]) AS u(t, p, n, f)
            WHERE o.group_id = $1 AND o.topic = u.t AND o."partition" = u.p
            """,
            group,
            topics,
            parts,
            [b.next_offset for b in live],
            [b.last_record for b in live],
        )
    return result


async def committed_already(
    conn: Connection,
    group: str,
    claims: Mapping[TopicPartition, Claim],
    batches: Sequence[PartitionBatch],
) -> set[TopicPartition] | None:
    """Whether an earlier attempt of this very flush committed, its answer lost (the
    connection cut after PostgreSQL's COMMIT, before the client heard it): then every
    partition still ours stores exactly the position and record fingerprint the flush
    writes, which no earlier flush can have stored (a batch starts at the stored position
    and ends past it). Returns the partitions fenced meanwhile, or None if it did not
    commit and the flush is to be run (again)."""
    topics, parts = _tp_arrays(b.tp for b in batches)
    rows = await conn.fetch(
        """
        SELECT o.topic, o."partition", o.epoch, o.next_offset, o.last_record
        FROM consumer_offsets o
        JOIN unnest($2::text[], $3::int[]) AS u(t, p) ON o.topic = u.t AND o."partition" = u.p
        WHERE o.group_id = $1
        """,
        group,
        topics,
        parts,
    )
    stored = {(r["topic"], r["partition"]): r for r in rows}
    fenced = {
        b.tp
        for b in batches
        if b.tp not in claims or b.tp not in stored or stored[b.tp]["epoch"] != claims[b.tp].epoch
    }
    live = [b for b in batches if b.tp not in fenced]
    if not live:
        return None  # nothing to tell: the flush itself reports them fenced
    for batch in live:
        row = stored[batch.tp]
        if (row["next_offset"], row["last_record"]) != (batch.next_offset, batch.last_record):
            return None
    return fenced


async def sweep_dossiers(
    conn: Connection, group: str, claims: Mapping[TopicPartition, Claim], now: datetime
) -> dict[TopicPartition, Deltas]:
    """Count the open dossiers whose appointment passed by ``now``, in one transaction
    fenced like a flush (a partition another worker owns now is left to it)."""
    deltas: dict[TopicPartition, Deltas] = {}
    async with conn.transaction():
        fenced = await _fenced(conn, group, claims, sorted(claims))
        for tp in sorted(claims):
            if tp not in fenced:
                found = await dossierstore.sweep(conn, tp, now.timestamp())
                if found.daily:
                    deltas[tp] = found
        await _upsert_figures(conn, deltas, Periods.at(now))
    return deltas


_INSERT_KEYS = """
    INSERT INTO metrics_seen_events (digest, event_day, backfill)
    SELECT substring(b.keys FROM i * 16 + 1 FOR 16), b.day, b.backfill
    FROM unnest($1::bytea[], $2::date[], $3::boolean[]) AS b(keys, day, backfill),
         generate_series(0, length(b.keys) / 16 - 1) AS i
"""
"""The dedup keys of a flush, one blob of 16-byte digests per (event day, backfill)."""

_INSERT_NEW_KEYS = (  # composed from module constants only
    f"WITH new AS ({_INSERT_KEYS} ON CONFLICT (digest) DO NOTHING RETURNING digest)"  # noqa: S608
    " SELECT string_agg(digest, ''::bytea) FROM new"
)
"""The same, skipping keys already stored; the new ones come back as one blob."""


def _key_arrays(blocks: KeyBlocks) -> tuple[list[bytes], list[date], list[bool]]:
    """The parameters of ``_INSERT_KEYS``: each block's digests sorted and joined, its day,
    backfill. Sorted, neighbours in the index are inserted one after another (~25 % less
    PostgreSQL time than arrival order, 30,000 random keys into 1M), and concurrent
    flushes of two workers that share keys take their index locks in one order."""
    order = sorted(blocks)
    return (
        [b"".join(sorted(blocks[block])) for block in order],
        [day for day, _ in order],
        [backfill for _, backfill in order],
    )


async def _all_new(conn: Connection, batches: Sequence[PartitionBatch]) -> bool:
    """Insert every dedup key of ``batches`` if each is new and none repeats; else nothing.

    The whole-record path: a replay's flush holds ~40,000 keys, all new. A binary COPY,
    not INSERT .. ON CONFLICT: it expects no conflict, and PostgreSQL writes a page of
    heap rows per WAL record instead of one per row (see ``_copy_stream``). Any key seen
    before, or twice in the flush, fails it (unique violation), which undoes the
    savepoint, and the caller decides event by event (``_insert_keys``).
    """
    blocks, sent = tally.all_keys(batches)
    try:
        async with conn.transaction():  # a savepoint inside the flush's transaction
            status = await conn.copy_to_table(
                "metrics_seen_events",
                source=io.BytesIO(_copy_stream(blocks)),
                columns=_KEY_COLUMNS,
                format="binary",
            )
    except asyncpg.UniqueViolationError:
        return False
    if int(status.split()[-1]) != sent:  # cannot happen: every row is copied or none
        raise StoreError(f"{status} for {sent} dedup keys")
    return True


_KEY_COLUMNS = ("digest", "event_day", "backfill")
_ROW_START = struct.pack(">hi", len(_KEY_COLUMNS), 16)  # 3 fields; the digest's 16 bytes


def _copy_stream(blocks: KeyBlocks) -> bytes:
    """``blocks`` as PostgreSQL's binary COPY format, rows in ``_key_arrays``' order.

    Every row of a block ends alike (its day and backfill flag), so a block is one
    ``bytes.join`` over its sorted digests: no object per key. Against the INSERT ..
    SELECT over ``unnest`` it replaces (no per-row executor work), the 300,000 keys of
    ``python -m bench.pipeline 300000`` cost the PostgreSQL backend 0.33-0.39 s of CPU
    instead of 0.43-0.46 (six alternated pairs, lower in each) and 41.6 MB of WAL
    instead of 55.2 (/tmp/h4/ab.py). The floor, a table without the key index, is
    ~0.08 s: the B-tree insert of random digests is the cost (/tmp/h4/floor.py)."""
    parts = [pgcopy.HEADER]
    for (day, backfill), digests in sorted(blocks.items()):
        if digests:
            end = struct.pack(">iii?", 4, day.toordinal() - pgcopy.PG_EPOCH_ORDINAL, 1, backfill)
            parts += [_ROW_START, (end + _ROW_START).join(sorted(digests)), end]
    parts.append(pgcopy.TRAILER)
    return b"".join(parts)


async def _fenced(
    conn: Connection,
    group: str,
    claims: Mapping[TopicPartition, Claim],
    tps: Sequence[TopicPartition],
) -> set[TopicPartition]:
    """Partitions whose stored epoch is not ours any more (rows locked until commit)."""
    topics, parts = _tp_arrays(tps)
    rows = await conn.fetch(
        """
        SELECT o.topic, o."partition", o.epoch FROM consumer_offsets o
        JOIN unnest($2::text[], $3::int[]) AS u(t, p) ON o.topic = u.t AND o."partition" = u.p
        WHERE o.group_id = $1
        ORDER BY o.topic, o."partition"
        FOR UPDATE OF o
        """,
        group,
        topics,
        parts,
    )
    stored = {(r["topic"], r["partition"]): r["epoch"] for r in rows}
    return {tp for tp in tps if tp not in claims or stored.get(tp) != claims[tp].epoch}


async def _insert_keys(
    conn: Connection, batches: Sequence[PartitionBatch], result: FlushResult
) -> None:
    """Record the dedup keys; the first delivery of a new key goes to ``result.tallies``.

    The keys travel as one blob of 16-byte digests per (event day, backfill) (not one
    array element per event) and the new ones come back as one blob: per key, the client
    builds and parses nothing. They are sorted within a block, so that concurrent flushes
    of two workers that share keys mostly take their index locks in the same order; the
    statement does not sort them again (that was a quarter of its time), and the rare
    deadlock that remains is PostgreSQL's to detect: the flush is retried (class 40). A
    backfilled delivery of a key already stored as live marks it backfill: one event,
    whichever path, and its key is never pruned.
    """
    first, repeated = tally.first_deliveries(batches)
    if not first:
        return
    # Keys repeated within the flush aside, the keys summed ahead are the ones to send.
    blocks = tally.key_blocks(batches, first.values()) if repeated else tally.all_keys(batches)[0]
    blob = await conn.fetchval(_INSERT_NEW_KEYS, *_key_arrays(blocks))
    if not repeated and blob is not None and len(blob) == 16 * len(first):  # the usual case
        for batch in batches:
            result.tallies[batch.tp] = list(batch.tallies)
        return
    new = {blob[i : i + 16] for i in range(0, len(blob), 16)} if blob else set()
    counted = [at for digest, at in first.items() if digest in new]
    duplicates = repeated + [at for digest, at in first.items() if digest not in new]
    for batch, tallies in zip(batches, tally.selected(batches, counted), strict=True):
        result.tallies[batch.tp] = tallies
    result.duplicates += tally.views(batches, duplicates)
    marks = sorted({c.digest for c in result.duplicates if c.backfill})
    if marks:
        # A separate statement: ON CONFLICT DO UPDATE would return the key as if it were new.
        await conn.execute(
            """
            UPDATE metrics_seen_events s SET backfill = true
            FROM generate_series(0, length($1::bytea) / 16 - 1) AS i
            WHERE s.digest = substring($1::bytea FROM i * 16 + 1 FOR 16) AND NOT s.backfill
            """,
            b"".join(marks),
        )


async def _upsert_figures(
    conn: Connection, deltas: Mapping[TopicPartition, Deltas], periods: Periods
) -> None:
    oldest = int(periods.now.timestamp()) - BUCKET_RETENTION_S
    daily: list[tuple[str, int, str, str, date, int, int]] = []
    buckets: list[tuple[str, int, str, str, int, int, int]] = []
    activity: list[tuple[str, int, str, str, datetime]] = []
    for (topic, part), d in deltas.items():
        daily += [(topic, part, u, k, day, n, m) for (u, k, day), (n, m) in d.daily.items()]
        buckets += [
            (topic, part, u, k, b, n, m) for (u, k, b), (n, m) in d.buckets.items() if b >= oldest
        ]
        activity += [
            (topic, part, u, f, datetime.fromtimestamp(e, periods.now.tzinfo))
            for (u, f), e in d.activity.items()
        ]
    # A count taken back (a dossier's open-overdue count moved to late, or withdrawn in
    # time) is a negative delta, and a count moved (open overdue to on time: the rate's
    # numerator +1, its denominator +0) a delta above its own denominator. INSERT .. ON
    # CONFLICT checks the table's CHECKs (numerator >= 0, denominator >= numerator) on
    # the proposed row before it finds the conflict, so every delta that would fail them
    # alone goes through MERGE, which checks only the row it leaves (and fails loudly if
    # the count it takes back is gone). Review 77: the catch-up of resolutions made on
    # time after the sweep counted them overdue stopped the worker.
    taken_back = [row for row in daily if not 0 <= row[5] <= row[6]]
    if taken_back:
        daily = [row for row in daily if 0 <= row[5] <= row[6]]
        await conn.execute(
            """
            MERGE INTO kpi_daily AS k
            USING unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::date[],
                         $6::bigint[], $7::bigint[])
                AS d (topic, "partition", unit, kpi, day, numerator, denominator)
            ON k.topic = d.topic AND k."partition" = d."partition" AND k.unit = d.unit
               AND k.kpi = d.kpi AND k.day = d.day
            WHEN MATCHED THEN UPDATE SET numerator = k.numerator + d.numerator,
                                         denominator = k.denominator + d.denominator
            WHEN NOT MATCHED THEN INSERT (topic, "partition", unit, kpi, day, numerator,
                                          denominator)
                VALUES (d.topic, d."partition", d.unit, d.kpi, d.day, d.numerator,
                        d.denominator)
            """,
            *map(list, zip(*taken_back, strict=True)),
        )
    if daily:
        await conn.execute(
            """
            INSERT INTO kpi_daily AS k (topic, "partition", unit, kpi, day, numerator, denominator)
            SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::date[],
                                 $6::bigint[], $7::bigint[])
            ON CONFLICT (topic, "partition", unit, kpi, day) DO UPDATE
                SET numerator = k.numerator + excluded.numerator,
                    denominator = k.denominator + excluded.denominator
            """,
            *map(list, zip(*daily, strict=True)),
        )
    if buckets:
        await conn.execute(
            """
            INSERT INTO kpi_buckets AS k
                (topic, "partition", unit, kpi, bucket_start, numerator, denominator)
            SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::bigint[],
                                 $6::bigint[], $7::bigint[])
            ON CONFLICT (topic, "partition", unit, kpi, bucket_start) DO UPDATE
                SET numerator = k.numerator + excluded.numerator,
                    denominator = k.denominator + excluded.denominator
            """,
            *map(list, zip(*buckets, strict=True)),
        )
    if activity:
        await conn.execute(
            """
            INSERT INTO unit_activity AS a (topic, "partition", unit, family, last_event_time)
            SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[],
                                 $5::timestamptz[])
            ON CONFLICT (topic, "partition", unit, family) DO UPDATE
                SET last_event_time = GREATEST(a.last_event_time, excluded.last_event_time)
            """,
            *map(list, zip(*activity, strict=True)),
        )


async def load_figures(
    conn: Connection, tps: Sequence[TopicPartition], periods: Periods
) -> dict[TopicPartition, PartitionFigures]:
    """The figures of owned partitions: history folded into year/month sums, buckets, activity.

    Days before this year fold into one row dated the eve of the year, earlier months of
    this year into one dated 1 January, earlier days of this month into one dated the 1st:
    the tallies come out the same, from a few rows per series instead of one per day.
    Rows dated after today never become the current day (see ``Tally``). Only rows of
    today's era are loaded: a code reused after the 2025 reform must not add its old
    unit's figures to the new one's; older eras are history (:func:`history`).
    """
    topics, parts = _tp_arrays(tps)
    year_start = periods.day.replace(month=1, day=1)
    month_start = periods.day.replace(day=1)
    daily = await conn.fetch(
        """
        SELECT k.topic, k."partition", k.unit, k.kpi,
               CASE WHEN k.day < $3 THEN $3 - 1
                    WHEN k.day < $4 THEN $3
                    WHEN k.day < $5 THEN $4
                    ELSE k.day END AS folded,
               sum(k.numerator)::bigint AS n, sum(k.denominator)::bigint AS d
        FROM kpi_daily k JOIN unnest($1::text[], $2::int[]) AS u(t, p)
          ON k.topic = u.t AND k."partition" = u.p
        WHERE k.era = $6
        GROUP BY 1, 2, 3, 4, 5
        """,
        topics,
        parts,
        year_start,
        month_start,
        periods.day,
        era_of_day(periods.day),
    )
    oldest = int(periods.now.timestamp()) - BUCKET_RETENTION_S
    buckets = await conn.fetch(
        """
        SELECT k.topic, k."partition", k.unit, k.kpi, k.bucket_start, k.numerator, k.denominator
        FROM kpi_buckets k JOIN unnest($1::text[], $2::int[]) AS u(t, p)
          ON k.topic = u.t AND k."partition" = u.p
        WHERE k.bucket_start >= $3
        """,
        topics,
        parts,
        oldest,
    )
    activity = await conn.fetch(
        """
        SELECT a.topic, a."partition", a.unit, a.family, a.last_event_time
        FROM unit_activity a JOIN unnest($1::text[], $2::int[]) AS u(t, p)
          ON a.topic = u.t AND a."partition" = u.p
        """,
        topics,
        parts,
    )
    figures: dict[TopicPartition, PartitionFigures] = {}
    now_s = periods.now.timestamp()
    for tp in tps:
        figures[tp] = partition_from_rows(
            [
                (r["unit"], r["kpi"], r["folded"], r["n"], r["d"])
                for r in daily
                if (r["topic"], r["partition"]) == tp
            ],
            [
                (r["unit"], r["kpi"], r["bucket_start"], r["numerator"], r["denominator"])
                for r in buckets
                if (r["topic"], r["partition"]) == tp
            ],
            [
                # A last-event time ahead of the clock (stored before future events were
                # refused) would hold off silence alerts: it reads as now at the latest.
                (r["unit"], r["family"], min(r["last_event_time"].timestamp(), now_s))
                for r in activity
                if (r["topic"], r["partition"]) == tp
            ],
            today=periods.day,
        )
    return figures


BACKLOG_BOUND = timedelta(days=8)
"""The longest a record waits in the broker: Apache Kafka's retention plus one segment
(deploy/kafka/server.properties: log.retention.hours=168, log.roll.hours=24); older
records are deleted, and reported (services/metrics/logcheck.py)."""


async def prune(
    conn: Connection,
    periods: Periods,
    grace: timedelta,
    piece: int = 20_000,
    backlog: timedelta | None = None,
    keys: bool = True,
) -> tuple[int, int]:
    """Forget live dedup keys older than the grace plus the longest backlog (and a day),
    unless ``keys`` is False, and buckets past retention.

    Lateness is judged at the time ingest accepted an event, not when a worker reads it:
    a record can wait in the broker up to its retention (``BACKLOG_BOUND``) and still be
    counted, so its key, and a duplicate's, must outlive that wait. Older live events
    are refused as too late, so their keys are never needed again; a backfilled event is
    counted however old, so its key is kept for good, and so is a dossier event's (the
    ``backfill`` column means "kept": ``TallyBatch.key_blocks``): a dossier's receipt,
    payment and final outcome are one per dossier whatever their ids, and a second one
    is a duplicate however much later it comes (until 2026-12-05 a second final 23
    days on counted again). The keys are scanned, not looked up
    by day: an index on the day would cost every event's insert more than this scan
    (migration 0008). The scan reads the kept keys too, which only grow: ``Pruner``
    runs it once per day of the horizon, not at every call.
    """
    seen = 0
    if keys:
        seen = await _delete_in_pieces(
            conn,
            "metrics_seen_events",
            "event_day < $1 AND NOT backfill",
            keys_horizon(periods, grace, backlog),
            piece,
        )
    oldest = int(periods.now.timestamp()) - BUCKET_RETENTION_S
    buckets = await _delete_in_pieces(conn, "kpi_buckets", "bucket_start < $1", oldest, piece)
    return seen, buckets


def keys_horizon(periods: Periods, grace: timedelta, backlog: timedelta | None = None) -> date:
    """The day before which live dedup keys are forgotten (``prune``): it moves once a
    day, and no live key older than it is written after it moved (ingest refuses such an
    event, and the broker holds none longer than ``BACKLOG_BOUND``)."""
    backlog = BACKLOG_BOUND if backlog is None else backlog
    return periods.day - grace - backlog - timedelta(days=1)


@dataclass(slots=True)
class Pruner:
    """A worker's pruning, every ten minutes: buckets at every call, live dedup keys once
    per horizon day (``keys_horizon``).

    The keys' scan reads every row of ``metrics_seen_events``, and the kept ones (each
    dossier's receipt, payment and final outcome, every backfilled event) only grow:
    some 3 million a year in a province of a million dossiers. Run every ten minutes,
    that scan would cost 144 times a day what once a day does, for nothing: the keys due
    change only when the horizon's day does (review 39)."""

    grace: timedelta
    backlog: timedelta | None = None
    piece: int = 20_000
    pruned_to: date | None = None
    """The horizon of the last prune of the keys that completed (None: none since start)."""

    async def __call__(self, conn: Connection, periods: Periods) -> tuple[int, int]:
        horizon = keys_horizon(periods, self.grace, self.backlog)
        due = self.pruned_to is None or horizon > self.pruned_to
        done = await prune(conn, periods, self.grace, self.piece, self.backlog, keys=due)
        if due:
            self.pruned_to = horizon
        return done


PRUNE_PIECE = 20_000
"""Rows one prune statement deletes: each piece is a short transaction of its own, so a
prune after a long outage (millions of keys) never holds a flush up for long."""


async def _delete_in_pieces(
    conn: Connection, table: str, where: str, bound: object, piece: int
) -> int:
    # table and where are module constants; only the bound is a parameter.
    statement = (
        f"DELETE FROM {table} WHERE ctid = ANY(ARRAY("  # noqa: S608
        f"SELECT ctid FROM {table} WHERE {where} LIMIT {int(piece)}))"
    )
    deleted = 0
    while True:
        done = int((await conn.execute(statement, bound)).split()[-1])
        deleted += done
        if done < piece:
            return deleted


async def history(
    conn: Connection, lineage: Lineage, kpi: str, first: date, last: date
) -> list[tuple[date, int, int]]:
    """Daily figures of one unit and KPI from ``first`` to ``last``, summed over partitions:
    the unit's own rows of its era and, before the reform, its 2024-era predecessors'
    (``lineage.whole``), never rows of another unit that had its code. At most one row a
    day: the caller bounds the days."""
    rows = await conn.fetch(
        """
        SELECT day, sum(numerator)::bigint AS n, sum(denominator)::bigint AS d
        FROM kpi_daily
        WHERE kpi = $1 AND day BETWEEN $2 AND $3
          AND ((era = $4 AND unit = $5) OR (era = $6 AND unit = ANY($7::text[])))
        GROUP BY day ORDER BY day
        """,
        kpi,
        first,
        last,
        lineage.era,
        lineage.unit,
        PREVIOUS_ERA,
        list(lineage.whole),
    )
    return [(r["day"], r["n"], r["d"]) for r in rows]


async def target_overrides(conn: Connection) -> list[Override] | None:
    """Operator target overrides, or None when the alerts service's table does not exist."""
    exists = await conn.fetchval("SELECT to_regclass('kpi_target_overrides') IS NOT NULL")
    if not exists:
        return None
    rows = await conn.fetch(
        "SELECT unit, province, level, kpi, target_bp, valid_from, valid_until, reason "
        "FROM kpi_target_overrides"
    )
    # The reason travels with each figure's target basis: the wall and the pages cite it.
    return [
        Override(Scope(r["unit"], r["province"], r["level"]), r["kpi"], r["target_bp"],
                 r["valid_from"], r["valid_until"], reason=r["reason"] or "")
        for r in rows
    ]  # fmt: skip
