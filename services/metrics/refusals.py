"""A flush PostgreSQL refuses for one record's data: narrowed to that record, never a stop.

A record the contract accepts can still carry a value PostgreSQL refuses (SQLSTATE class
22, data exception; until 2026-12-04 a NUL byte in a dossier id was one). Such a flush
fails again after every restart, and the counting of its partitions stops for good: one
record would stop every worker that takes those partitions over.

``narrow`` finds the records PostgreSQL refuses instead, with *probes*: the flush of a
prefix of the failed flush's records, run in a transaction that is rolled back. The
shortest failing prefix ends with a refused record (the flush of the records before it
passed); it is set aside and the search goes on with the rest, until the flush of what
remains passes. The caller dead-letters the refused records (``store-refused``, with
PostgreSQL's words) before it flushes the rest, whose offsets move past them: each
record is counted or visibly refused, at least once.

Nothing is written while the search runs, so a refusal that is no record's fault costs
nothing. When more than ``MAX_REFUSED`` records are refused, the database refuses more
than a few records' data (a defect of ours, a schema change): the original error
propagates, the worker crashes as for any error that is not infrastructure, and resumes
from its stored offsets: nothing is dead-lettered or lost. When no event of the flush
counts without the refused records (a refused record alone in a trickle), they cannot be
told from a database refusing everything: they are held, uncounted and their offsets
unmoved, and searched again with the records that come next.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.metrics.decoding import Rejected
from services.metrics.logcheck import mark_last_records
from services.metrics.periods import Periods
from services.metrics.pipeline import DeadLetter, Prepared, Preparer, Record, dead_letter
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
"""Refused records one flush may hold. Beyond, the refusal is not a few records' fault."""

REASON = "store-refused"

Piece = tuple[Sequence[Record], datetime]
"""Records decoded together, and the clock they were decoded at (the grace period and
the future check depend on it: a probe decodes them again at the same instant)."""

Probe = Callable[[Sequence[PartitionBatch], Periods], Awaitable[None]]
"""Run a flush and roll it back (``PartitionState.probe``): raises what it raises."""


class NotTheRecords(Exception):
    """The database refuses more than a few records' data; ``__cause__`` is its error."""


@dataclass(slots=True)
class Narrowed:
    """A failed flush, narrowed: what to dead-letter first, then what to flush."""

    refused: list[DeadLetter]
    prepared: Prepared | None
    """Every other record, decoded again, its partitions' offsets past the refused ones.
    None: no event counts without the refused records; hold them all until more come."""


def store_refused(exc: BaseException) -> Rejected:
    """The dead-letter reason of a record whose data PostgreSQL refused with ``exc``."""
    state = getattr(exc, "sqlstate", None) or "?"
    return Rejected(REASON, f"PostgreSQL refused its data (SQLSTATE {state}): {exc}"[:2000])


async def narrow(
    pieces: Sequence[Piece],
    preparer: Preparer,
    probe: Probe,
    periods: Periods,
    failure: BaseException,
) -> Narrowed:
    """The records of ``pieces`` PostgreSQL refuses, and the flush of the others.

    ``failure`` is what the flush of them all raised. Raises :class:`NotTheRecords` from
    it when the refusal is not a few records' fault (see the module's docstring).
    """
    records = [(record, now) for piece, now in pieces for record in piece]
    refused: dict[int, BaseException] = {}
    remaining = list(range(len(records)))
    error = await _probe(records, remaining, preparer, probe, periods)
    while error is not None:
        # The shortest failing prefix of ``remaining``: the prefix of ``high`` fails, the
        # prefix of ``low - 1`` passes (none: the empty flush).
        low, high = 1, len(remaining)
        while low < high:
            middle = (low + high) // 2
            found = await _probe(records, remaining[:middle], preparer, probe, periods)
            if found is None:
                low = middle + 1
            else:
                high, error = middle, found
        index = remaining.pop(high - 1)
        refused[index] = error
        record = records[index][0]
        log.warning(
            "PostgreSQL refuses %s[%d]@%d: %r",
            record.topic,
            record.partition,
            record.offset,
            error,
        )
        if len(refused) > MAX_REFUSED:
            raise NotTheRecords(f"more than {MAX_REFUSED} records refused") from failure
        error = await _probe(records, remaining, preparer, probe, periods)
    if not refused:
        return Narrowed([], rebuild(pieces, preparer))
    rest = _prepare(records, remaining, preparer)
    if not any(batch.events for batch in rest.batches.values()):
        return Narrowed([], None)
    return Narrowed(
        [dead_letter(records[i][0], store_refused(e)) for i, e in sorted(refused.items())],
        _passing(rest, records),
    )


def rebuild(pieces: Sequence[Piece], preparer: Preparer) -> Prepared:
    """The flush of every record of ``pieces``, decoded again (their dead letters, sent
    already, and their counters, counted already, left out)."""
    records = [(record, now) for piece, now in pieces for record in piece]
    return _passing(_prepare(records, range(len(records)), preparer), records)


async def _probe(
    records: Sequence[tuple[Record, datetime]],
    indices: Sequence[int],
    preparer: Preparer,
    probe: Probe,
    periods: Periods,
) -> BaseException | None:
    """What the flush of ``records`` at ``indices`` raises, if PostgreSQL refuses it."""
    prepared = _prepare(records, indices, preparer)
    try:
        await probe(list(prepared.batches.values()), periods)
    except REFUSED_BY_STORE as exc:
        return exc
    return None


def _prepare(
    records: Sequence[tuple[Record, datetime]], indices: Sequence[int], preparer: Preparer
) -> Prepared:
    """The records at ``indices`` decoded again, each at the instant it first was."""
    out = Prepared()
    run: list[Record] = []
    run_at: datetime | None = None
    for i in indices:
        record, now = records[i]
        if run_at is not None and now != run_at:
            preparer.prepare(run, run_at, out)
            run = []
        run.append(record)
        run_at = now
    if run_at is not None:
        preparer.prepare(run, run_at, out)
    return out


def _passing(rest: Prepared, records: Sequence[tuple[Record, datetime]]) -> Prepared:
    """``rest`` as the flush that follows the dead letters: every partition's offset
    past every record of the failed flush (the refused ones too), the fingerprint of the
    last with it, and nothing the failed flush had already seen to (its dead letters,
    already sent, and the counters of its records)."""
    batches = rest.batches
    for record, _ in records:
        tp = (record.topic, record.partition)
        batch = batches.get(tp)
        if batch is None:
            batch = batches[tp] = PartitionBatch(tp, record.offset + 1)
        batch.next_offset = max(batch.next_offset, record.offset + 1)
    mark_last_records(batches, [record for record, _ in records])
    return Prepared(batches=batches, ingest_times=rest.ingest_times)
