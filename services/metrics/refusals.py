"""A flush PostgreSQL refuses for one record's data: narrowed to that record, never a stop.

A record the contract accepts can still carry a value PostgreSQL refuses (SQLSTATE class
22, data exception; until 2026-12-04 a NUL byte in a dossier id was one). Such a flush
fails again after every restart, and the counting of its partitions stops for good: one
record would stop every worker that takes those partitions over.

``narrow`` finds the records PostgreSQL refuses instead, with *probes*: the flush of a
prefix of the failed flush's records, run in a transaction that is rolled back. The
shortest failing prefix ends with a refused record (the flush of the records before it
passed). A refused record that holds several events (a JSON list, ingest's summarised
records) is searched event by event in its place, so only the refused event is set
aside; its siblings count. The search goes on with the rest until the flush of what
remains passes. The caller dead-letters what was refused (``store-refused``, with
PostgreSQL's words) before it flushes the rest, whose offsets move past them: each
record is counted or visibly refused, at least once.

Nothing is written while the search runs, and a record is dead-lettered only when the
database vouches for it being the record's fault, in the record's own partition: the
same flush without the refused records counted new events there of every type they
hold, or one of the last ``LOOKAHEAD`` records of the partition holding the type counts
when flushed alone, or else the record's own *canary* does: the refused event with
identities of its own (event id, source, dossier id; its dossier a copy of the refused
one's ledger row), flushed alone and rolled back (``_canary``), so that a record of a
type rare in its partition is told apart at once. A database refusing every dossier,
or every ledger update, or a unit's rows, say (a defect of ours, a schema change),
refuses the canary too, with no dossier counted beside them. Then nothing is
dead-lettered: the partition of such a record is held from it on, uncounted and its
offset unmoved, while the other partitions count, and searched again with the records
that come next. When ``MAX_REFUSED`` records nothing vouches for are
refused, or ``MAX_HELD`` records are held, the error propagates (:class:`NotTheRecords`):
the worker crashes as for any error that is not infrastructure and resumes from its
stored offsets, nothing lost.

A search sets aside at most ``MAX_REFUSED`` records: past that, what passed before the
next refused record is flushed first and the search goes on from there (``Narrowed.
rest``), so that a backlog with many bad records makes progress flush after flush.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import asyncpg
import orjson

from services.common.dossierfacts import canonical_id
from services.common.signing import SUMMARY_HEADER, SUMMARY_MAC_HEADER, VALIDATED_HEADER
from services.metrics.decoding import Rejected, element_bytes
from services.metrics.dossierstore import DossierClone
from services.metrics.logcheck import mark_last_records
from services.metrics.periods import Periods
from services.metrics.pipeline import DeadLetter, Prepared, Preparer, Record, dead_letter
from services.metrics.store import FlushResult
from services.metrics.tally import PartitionBatch

log = logging.getLogger(__name__)

REFUSED_BY_STORE: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # SQLSTATE class 22, and asyncpg refusing a statement's argument
    OverflowError,  # asyncpg encoding a COPY row: an integer beyond its column's range
    UnicodeEncodeError,  # the same: text that is not UTF-8 (a lone surrogate)
)
"""What says that a value cannot be stored. Anything else that fails a flush is not
narrowed: it is retried (infrastructure) or crashes the worker."""

MAX_REFUSED = 10
"""Refused records one search sets aside before flushing what passed (each costs about
log2(records) probes while the flush waits); also how many refused records nothing
vouches for are held before the worker gives up and crashes."""

REASON = "store-refused"

_SIGNATURES = frozenset({SUMMARY_HEADER, SUMMARY_MAC_HEADER, VALIDATED_HEADER})
"""Headers that vouch for a record's value as a whole: an element read on its own is
validated in full instead (the property tests hold both paths equal)."""

Piece = tuple[Sequence[Record], datetime]
"""Records decoded together, and the clock they were decoded at (the grace period and
the future check depend on it: a probe decodes them again at the same instant)."""

TypeIn = tuple[tuple[str, int], str]
"""An event type in a partition: ((topic, partition), type)."""


class Probe(Protocol):
    """Run a flush and roll it back (``PartitionState.probe``): raises what it raises.
    ``clones`` are ledger rows copied under another dossier id first (a canary's)."""

    def __call__(
        self,
        batches: Sequence[PartitionBatch],
        periods: Periods,
        clones: Sequence[DossierClone] = (),
        /,
    ) -> Awaitable[FlushResult]: ...


class NotTheRecords(Exception):
    """The database refuses more records' data than it vouches for; ``__cause__`` is its
    error."""


@dataclass(frozen=True, slots=True)
class _Item:
    """A record of the failed flush, or one event of a batched record refused whole."""

    record: Record
    now: datetime
    origin: Record | None = None
    """The batched record this element was taken from; None for a record of the flush."""
    index: int = -1
    """The element's position in ``origin``."""
    fresh: bool = False
    """Whether what decoding the element dead-letters is news: its origin was counted
    from ingest's summary, so its events were never read one by one."""


@dataclass(slots=True)
class Narrowed:
    """A failed flush, narrowed: what to dead-letter first, then what to flush, then what
    to narrow again, and what to hold for the next flush."""

    refused: list[DeadLetter]
    prepared: Prepared | None
    """The records that passed, decoded again, their partitions' offsets past the
    refused ones (and before the held ones). None: nothing to flush."""
    rest: list[Piece]
    """Records after the search stopped (``MAX_REFUSED`` set aside), to narrow next."""
    held: list[Piece] = field(default_factory=list)
    """The records of a partition from a refused one nothing vouches for on: kept,
    uncounted and their offsets unmoved, to go into the next flush again."""


def store_refused(
    exc: BaseException, index: int | None = None, raw: bytes | None = None
) -> Rejected:
    """The dead-letter reason of a record whose data PostgreSQL refused with ``exc``."""
    state = getattr(exc, "sqlstate", None) or "?"
    detail = f"PostgreSQL refused its data (SQLSTATE {state}): {exc}"[:2000]
    return Rejected(REASON, detail, index, raw)


async def narrow(
    pieces: Sequence[Piece],
    preparer: Preparer,
    probe: Probe,
    periods: Periods,
    failure: BaseException,
) -> Narrowed:
    """The records of ``pieces`` PostgreSQL refuses, and the flush of the others.

    ``failure`` is what the flush of them all raised. Raises :class:`NotTheRecords` from
    it when ``MAX_REFUSED`` refused records have nothing vouching for them.
    """
    remaining = [_Item(record, now) for piece, now in pieces for record in piece]
    refused: list[tuple[_Item, BaseException]] = []
    start = 1  # every prefix shorter than this passes
    error = await _probe(remaining, preparer, probe, periods)
    while error is not None:
        # The shortest failing prefix: that of ``high`` fails, that of ``low - 1`` passes.
        low, high = start, len(remaining)
        while low < high:
            middle = (low + high) // 2
            found = await _probe(remaining[:middle], preparer, probe, periods)
            if found is None:
                low = middle + 1
            else:
                high, error = middle, found
        at = high - 1
        item = remaining[at]
        elements = _elements(item, preparer)
        if elements:
            remaining[at : at + 1] = elements  # searched event by event, in its place
            start = max(1, at)
            error = await _probe(remaining, preparer, probe, periods)
            continue
        del remaining[at]
        refused.append((item, error))
        record = item.record
        log.warning(
            "PostgreSQL refuses %s[%d]@%d%s: %r",
            record.topic,
            record.partition,
            record.offset,
            "" if item.origin is None else f" (element {item.index})",
            error,
        )
        if len(refused) % MAX_REFUSED == 0:
            # Enough for one search: flush what passed before this record and search the
            # rest next. Inside a batched record (its events go together) only check that
            # something vouches for them: if nothing does, the database refuses more than
            # records, and the search stops now (NotTheRecords).
            judged = remaining[:at]
            if item.origin is None:
                return await _judged(
                    judged, refused, remaining[at:], preparer, probe, periods, failure
                )
            await _unvouched_refusals(judged, refused, remaining, preparer, probe, periods, failure)
        start = max(1, at)
        error = await _probe(remaining, preparer, probe, periods)
    return await _judged(remaining, refused, [], preparer, probe, periods, failure)


async def _judged(
    passing: list[_Item],
    refused: list[tuple[_Item, BaseException]],
    rest: list[_Item],
    preparer: Preparer,
    probe: Probe,
    periods: Periods,
    failure: BaseException,
) -> Narrowed:
    """The narrowed flush: ``passing`` flushed after ``refused`` is dead-lettered where
    the database vouches for them; a partition from a refused record nothing vouches for
    on is held (:class:`NotTheRecords` when ``MAX_REFUSED`` are, or ``MAX_HELD``
    records). Then ``rest``, narrowed next."""
    if not refused:
        return Narrowed([], _passing(passing, preparer, []), _pieces_of(rest))
    pool = [*passing, *rest]
    unvouched = await _unvouched_refusals(passing, refused, pool, preparer, probe, periods, failure)
    holding: list[_Item] = []
    if unvouched:
        # Each such partition from its first unvouched record on: the others go on.
        cut: dict[tuple[str, int], int] = {}
        for item, _ in unvouched:
            record = item.origin or item.record
            tp = (record.topic, record.partition)
            cut[tp] = min(cut.get(tp, record.offset), record.offset)

        def kept(item: _Item) -> bool:
            record = item.origin or item.record
            at = cut.get((record.topic, record.partition))
            return at is not None and record.offset >= at

        holding = sorted(
            [*(i for i in pool if kept(i)), *(i for i, _ in refused if kept(i))],
            key=lambda i: (i.record.offset, i.index),
        )
        if len(holding) > MAX_HELD:
            raise NotTheRecords(
                f"{len(holding)} records held for refusals nothing vouches for"
            ) from failure
        passing = [i for i in passing if not kept(i)]
        refused = [(i, e) for i, e in refused if not kept(i)]
        rest = [i for i in rest if not kept(i)]
    letters = [_dead_letter(i, e) for i, e in refused]
    flushed = _passing(passing, preparer, [i for i, _ in refused])
    return Narrowed(letters + flushed.dead_letters, flushed, _pieces_of(rest), _pieces_of(holding))


async def _unvouched_refusals(
    passing: Sequence[_Item],
    refused: Sequence[tuple[_Item, BaseException]],
    pool: Sequence[_Item],
    preparer: Preparer,
    probe: Probe,
    periods: Periods,
    failure: BaseException,
) -> list[tuple[_Item, BaseException]]:
    """The refused records nothing vouches for (``_unvouched``), given that ``passing``
    passes; :class:`NotTheRecords` when there are ``MAX_REFUSED`` of them."""
    result = await probe(list(_prepare(passing, preparer).batches.values()), periods)
    missing = await _unvouched(result, refused, pool, preparer, probe, periods)
    unvouched = []
    for item, error in refused:
        types = _item_types(item, preparer)
        if types & missing and not await _canary_counts(item, types, preparer, probe, periods):
            unvouched.append((item, error))
    if len(unvouched) >= MAX_REFUSED:
        raise _not_the_records(unvouched, missing, failure)
    return unvouched


def _not_the_records(
    refused: Sequence[tuple[_Item, BaseException]], missing: set[TypeIn], failure: BaseException
) -> NotTheRecords:
    named = sorted(
        {f"{event_type} in {topic}[{partition}]" for (topic, partition), event_type in missing}
    )
    error = NotTheRecords(
        f"{len(refused)} records refused, and no event of their types "
        f"({', '.join(named)}) counts beside them: not the records' fault"
    )
    error.__cause__ = failure
    return error


MAX_HELD = 10_000
"""Records held at once (refused ones nothing vouches for, and their partitions' records
after them) before the worker gives up and crashes: each flush searches them again."""

LOOKAHEAD = 3
"""Records of a refused type that count alone, from the end of the flush, looked for
when what passed before the refused ones holds none of that type ..."""

LOOKAHEAD_PROBES = 30
"""... in at most this many probes of one record (refused ones do not count towards
``LOOKAHEAD``: refused records last in the flush must not hide good ones before them)."""


async def _unvouched(
    result: FlushResult,
    refused: Sequence[tuple[_Item, BaseException]],
    pool: Sequence[_Item],
    preparer: Preparer,
    probe: Probe,
    periods: Periods,
) -> set[TypeIn]:
    """The event types of ``refused`` the database does not vouch for, each in the
    partition of a refused record: no new event of the type counted there by the flush
    without them (``result``), nor by any of the last ``LOOKAHEAD`` records of ``pool``
    of that partition holding the type, each flushed alone. (A record of such a type may
    still be vouched for by its own canary: ``_canary_counts``.)

    Per partition, not per type: a database refusing one partition's rows (a partition
    of a table filled up, a trigger of ours) is not vouched for by another partition."""
    counted = _counted_types(result)
    missing: set[TypeIn] = set()
    for item, _ in refused:
        missing |= _item_types(item, preparer)
    missing -= counted
    for wanted in sorted(missing):
        tp = wanted[0]
        passed = probes = 0
        for candidate in reversed(pool):
            if passed == LOOKAHEAD or probes == LOOKAHEAD_PROBES:
                break
            if _tp(candidate) != tp:
                continue
            prepared = _prepare([candidate], preparer)
            if wanted not in _types(prepared):
                continue
            probes += 1
            try:
                alone = await probe(list(prepared.batches.values()), periods)
            except REFUSED_BY_STORE:
                continue
            passed += 1
            if wanted in _counted_types(alone):
                missing.discard(wanted)
                break
    return missing


CANARY_SOURCE = "urn:egov-pulse:canary"
"""The ``source`` of canary events: never published, only probed and rolled back."""


async def _canary_counts(
    item: _Item, wanted: set[TypeIn], preparer: Preparer, probe: Probe, periods: Periods
) -> bool:
    """Whether the canary of the refused ``item``, which would count ``wanted``, counts
    them (``_canary``): the last chance
    to vouch for a refused record nothing of its type beside it vouches for. A record of
    a type rare in its partition (a meeting a week) would otherwise hold the whole
    partition until the next one of its type arrived, and past ``MAX_HELD`` records
    crash the worker on every restart. One canary per record: another refused record's
    unit, day or dossier says nothing of this one's."""
    made = _canary(item)
    if made is None:
        return False
    canary, clones = made
    prepared = _prepare([canary], preparer)
    if not wanted or _types(prepared) != wanted:  # the canary is not counted as it is
        return False
    try:
        alone = await probe(list(prepared.batches.values()), periods, clones)
    except REFUSED_BY_STORE:
        return False
    vouched = wanted <= _counted_types(alone)
    record = item.origin or item.record
    log.info(
        "the canary of %s[%d]@%d%s, which PostgreSQL refuses, %s",
        record.topic,
        record.partition,
        record.offset,
        "" if item.origin is None else f" (element {item.index})",
        "counts: the record is at fault" if vouched else "does not count: it is held",
    )
    return vouched


def _canary(item: _Item) -> tuple[_Item, list[DossierClone]] | None:
    """The refused ``item``'s event with identities of its own: event id, ``source``
    (``CANARY_SOURCE``) and, for a dossier event, dossier id; everything else as it is
    (type, time, unit, data, the record's headers: its acceptance time, publisher and
    backfill flag). It adds the same figures to the same units and days as the refused
    event would, through the same ledger transition: a dossier event's canary dossier
    starts as a copy of the refused dossier's stored row, if it has one (the
    ``DossierClone``), so that it is written as the refused one would be (a new row, or
    an update of one).

    What differs is what identifies the event, its dossier id among them, the one
    free-form value the database stores per event. If the database takes the canary,
    it refuses the record's own values: the record is at fault. If it refuses the canary
    too, it refuses more than the record (a defect of ours, a unit or a day it cannot
    store): nothing is vouched for, and the partition is held. None when ``item`` is not
    one event (a JSON object, or a batch of one)."""
    try:
        event = orjson.loads(item.record.value or b"")
    except orjson.JSONDecodeError:
        return None
    if isinstance(event, list) and len(event) == 1:
        event = event[0]
    if not isinstance(event, dict):
        return None
    name = f"canary-{uuid.uuid4().hex}"
    canary = {**event, "id": name, "source": CANARY_SOURCE}
    clones: list[DossierClone] = []
    record = item.record
    data = event.get("data")
    if isinstance(data, dict) and isinstance(data.get("dossier_id"), str):
        canary["data"] = {**data, "dossier_id": name}
        stored = canonical_id(data["dossier_id"])  # the ledger's key (NFC), as sent or not
        if _storable(stored):  # else it has no row, and cannot be looked up
            clones.append(DossierClone((record.topic, record.partition), stored, name))
    made = Record(
        record.topic,
        record.partition,
        record.offset,
        record.key,
        orjson.dumps(canary),
        tuple(h for h in record.headers if h[0] not in _SIGNATURES),
        record.timestamp,
        publisher_vouched=True,  # its record counted: its publisher was believed
    )
    return _Item(made, item.now), clones


def _storable(text: str) -> bool:
    """Whether PostgreSQL can hold ``text`` at all (no NUL, encodable as UTF-8): a dossier
    id that cannot has no stored row, and the clone's lookup of it would be refused for
    the very value the canary is there to tell apart."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _tp(item: _Item) -> tuple[str, int]:
    record = item.origin or item.record
    return (record.topic, record.partition)


async def _probe(
    items: Sequence[_Item], preparer: Preparer, probe: Probe, periods: Periods
) -> BaseException | None:
    """What the flush of ``items`` raises, if PostgreSQL refuses it."""
    try:
        await probe(list(_prepare(items, preparer).batches.values()), periods)
    except REFUSED_BY_STORE as exc:
        return exc
    return None


def _prepare(items: Iterable[_Item], preparer: Preparer) -> Prepared:
    """The items decoded again, each at the instant its record first was."""
    out = Prepared()
    run: list[Record] = []
    run_at: datetime | None = None
    for item in items:
        if run_at is not None and item.now != run_at:
            preparer.prepare(run, run_at, out)
            run = []
        run.append(item.record)
        run_at = item.now
    if run_at is not None:
        preparer.prepare(run, run_at, out)
    return out


def _elements(item: _Item, preparer: Preparer) -> list[_Item]:
    """The events of a batched record, each an item of its own; [] for one event."""
    record = item.record
    if item.origin is not None or not record.value or record.value.lstrip()[:1] != b"[":
        return []
    try:
        parsed = orjson.loads(record.value)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(parsed, list) or len(parsed) < 2:
        return []
    alone = preparer.prepare([record], item.now)
    fresh = alone.paths.get("summary", 0) > 0
    headers = tuple(h for h in record.headers if h[0] not in _SIGNATURES)
    items = []
    for index, element in enumerate(parsed):
        raw = element_bytes(element)
        if raw is not None:
            element_record = Record(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                raw,
                headers,
                record.timestamp,
                publisher_vouched=True,  # its record counted: its publisher was believed
            )
            items.append(_Item(element_record, item.now, record, index, fresh))
    return items


def _pieces_of(items: Sequence[_Item]) -> list[Piece]:
    """``items`` as pieces of the flush's records (a batched record whole, once)."""
    pieces: list[Piece] = []
    seen: set[int] = set()
    for item in items:
        record = item.origin or item.record
        if id(record) in seen:
            continue
        seen.add(id(record))
        if pieces and pieces[-1][1] == item.now:
            pieces[-1] = ([*pieces[-1][0], record], item.now)
        else:
            pieces.append(([record], item.now))
    return pieces


def _types(prepared: Prepared) -> set[TypeIn]:
    """The event types of what ``prepared`` would count, each with its partition."""
    types: set[TypeIn] = set()
    for tp, batch in prepared.batches.items():
        batch.seal()
        for tally in batch.tallies:
            types.update((tp, tally.types[t]) for t in set(tally.group_type))
    return types


def _item_types(item: _Item, preparer: Preparer) -> set[TypeIn]:
    """The event types ``item`` holds (what it would count), with its partition."""
    return _types(_prepare([item], preparer))


def _counted_types(result: FlushResult) -> set[TypeIn]:
    """The event types of the new events a flush counted, each with its partition
    (duplicates vouch for nothing)."""
    return {
        (tp, tally.types[t])
        for tp, tallies in result.tallies.items()
        for tally in tallies
        for t in set(tally.group_type)
    }


def _dead_letter(item: _Item, error: BaseException) -> DeadLetter:
    if item.origin is None:
        return dead_letter(item.record, store_refused(error))
    return dead_letter(item.origin, store_refused(error, item.index, item.record.value))


def _passing(items: Sequence[_Item], preparer: Preparer, refused: Sequence[_Item]) -> Prepared:
    """The flush of ``items`` that follows the dead letters: every partition's offset past
    every record of ``items`` and ``refused``, the fingerprint of the last with it. Its
    dead letters are those of elements read one by one for the first time (their origin
    was counted from ingest's summary); the rest were sent with the failed flush, as
    were the counters of its records."""
    out = _prepare(items, preparer)
    fresh = []
    for item in items:
        if item.fresh and item.origin is not None:
            for dead in _prepare([item], preparer).dead_letters:
                rejected = Rejected(dead.reason, dead.detail, item.index, item.record.value)
                fresh.append(dead_letter(item.origin, rejected))
    batches = out.batches
    records = [item.origin or item.record for item in [*items, *refused]]
    records.sort(key=lambda r: r.offset)
    for record in records:
        tp = (record.topic, record.partition)
        batch = batches.get(tp)
        if batch is None:
            batch = batches[tp] = PartitionBatch(tp, record.offset + 1)
        batch.next_offset = max(batch.next_offset, record.offset + 1)
    mark_last_records(batches, records)
    return Prepared(batches=batches, dead_letters=fresh, ingest_times=out.ingest_times)


def rebuild(pieces: Sequence[Piece], preparer: Preparer) -> Prepared:
    """The flush of every record of ``pieces``, decoded again (their dead letters, sent
    already, and their counters, counted already, left out)."""
    items = [_Item(record, now) for piece, now in pieces for record in piece]
    return _passing(items, preparer, [])
