"""PostgreSQL adapter of the on-time ledger: dossier state per partition (table dossier_state).

Called inside the metrics store's transactions, never on its own: ``apply`` within a
flush (the counts, the dedup keys, the offsets and the dossiers commit together) and
``sweep`` within a transaction that holds the partitions' offset rows (fenced like a
flush). It reads and writes state; the decisions are services/metrics/dossiers.py's.
"""

from __future__ import annotations

import io
import logging
import struct
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Final

import asyncpg

from services.common.db import Connection
from services.common.dossierfacts import PUBLISHER_MARK, Due, bare_id, ledger_id, split_key
from services.common.tally import Deltas, TallyBatch
from services.metrics import dossiers, pgcopy
from services.metrics.dossiers import Dossier, Status
from services.metrics.figures import TopicPartition

if TYPE_CHECKING:
    from services.metrics.store import FlushResult
    from services.metrics.tally import PartitionBatch

log = logging.getLogger(__name__)

SWEEP_LIMIT = 10_000
"""Dossiers a sweep marks overdue per partition at once; the next sweep takes the rest."""


@dataclass(frozen=True, slots=True)
class DossierClone:
    """A dossier's stored rows copied under another id, for a canary (services/metrics/
    refusals.py) to take the same ledger transition as a refused event: only in a probe,
    rolled back. Ids bare and in NFC, as the ledger keys them (dossierfacts.canonical_id)."""

    tp: TopicPartition
    dossier_id: str
    clone_id: str


async def clone(conn: Connection, copy: DossierClone) -> None:
    """Copy every publisher's row of ``copy.dossier_id`` in its partition under
    ``copy.clone_id`` (so that the canary continues or adopts one as the refused event
    would); nothing when it has none (the canary's dossier is then new, as the refused
    one's was)."""
    await conn.execute(
        """
        INSERT INTO dossier_state
            (topic, "partition", dossier_id, publisher, status, due_day, last_on_time, units,
             resolved_at, history)
        SELECT topic, "partition", $4, publisher, status, due_day, last_on_time, units,
            resolved_at, history
        FROM dossier_state WHERE topic = $1 AND "partition" = $2 AND dossier_id = $3
        """,
        *copy.tp,
        copy.dossier_id,
        copy.clone_id,
    )


Event = tuple[dossiers.Fact, float, tuple[str, ...]]
"""One counted dossier event: its fact, epoch seconds and unit chain (a plain tuple: one
is made per dossier event of a flush)."""


def events_of(batch: TallyBatch) -> list[Event]:
    """The dossier events of ``batch`` (those with a fact), in order."""
    index, epochs, chains, group_chain = batch.index, batch.epochs, batch.chains, batch.group_chain
    return [(fact, epochs[i], chains[group_chain[index[i]]]) for i, fact in batch.facts.items()]


async def count(conn: Connection, batches: Sequence[PartitionBatch], result: FlushResult) -> None:
    """Within a flush: apply the dossier events it counts (new dedup keys only) and add
    their figures to ``result.deltas``.

    Open dossiers are judged overdue by their events' own times here, not the flush's
    clock: on the wall clock only the sweep counts a dossier open overdue (its one place,
    fenced, every ``dossiers.SWEEP_EVERY_S``)."""
    for batch in batches:
        events = [e for t in result.tallies.get(batch.tp, ()) for e in events_of(t)]
        if events:
            deltas = result.deltas.setdefault(batch.tp, Deltas())
            deltas.merge(await apply(conn, batch.tp, events))


async def apply(conn: Connection, tp: TopicPartition, events: Sequence[Event]) -> Deltas:
    """Apply counted dossier events of one partition, in offset order; their figures."""
    if not events:
        return Deltas()
    # Every publisher's row of the flush's dossiers: a bound event may continue an
    # unbound row, and an unbound event a bound one (dossiers.apply, ``continued``).
    known = await _load(conn, tp, sorted({bare_id(fact.dossier_id) for fact, _, _ in events}))
    stored = set(known)
    refused: list[dossiers.Fact] = []
    retired: list[str] = []
    changed, ticks = dossiers.apply(known, events, refused=refused, retired=retired)
    for fact in refused:
        # A one-stop system returns a dossier a few times; dozens of cycles are a
        # publisher's loop. Its receipt and its ending still count.
        log.warning(
            "dossier %r of %s[%d] keeps %d returns and resubmissions already: "
            "its %s event is not applied",
            fact.dossier_id, tp[0], tp[1], dossiers.HISTORY_LIMIT, fact.kind,
        )  # fmt: skip
    # Unbound rows their publisher's events took over: each now lives under its key.
    gone = [key for key in retired if key in stored]
    if gone:
        await conn.execute(
            'DELETE FROM dossier_state WHERE topic = $1 AND "partition" = $2'
            " AND dossier_id = ANY($3::text[]) AND publisher = ''",
            *tp,
            gone,
        )
    await _save(conn, tp, changed.values(), stored)
    return dossiers.deltas_of(ticks)


async def sweep(conn: Connection, tp: TopicPartition, now: float) -> Deltas:
    """Count the open dossiers of ``tp`` whose appointment has passed at ``now``."""
    rows = await conn.fetch(
        """
        SELECT dossier_id, publisher, status, due_day, last_on_time, units, resolved_at,
            history
        FROM dossier_state
        WHERE topic = $1 AND "partition" = $2 AND status = 'open' AND last_on_time < $3
        ORDER BY last_on_time LIMIT $4
        """,
        *tp,
        now,
        SWEEP_LIMIT,
    )
    marked, ticks = dossiers.sweep((_dossier(r) for r in rows), now)
    await _save(conn, tp, marked, {d.dossier_id for d in marked})
    return dossiers.deltas_of(ticks)


async def _load(conn: Connection, tp: TopicPartition, ids: list[str]) -> dict[str, Dossier]:
    """Every publisher's row of the dossiers ``ids`` (as events carry them), by ledger key."""
    # A join, not "dossier_id = ANY($3)": on a table that grew since it was last analysed
    # the planner chose a sequential scan testing every row against the whole array, so a
    # flush's read grew with rows x ids (300,000 events of a replay: 62 s instead of 5 s).
    rows = await conn.fetch(
        """
        SELECT s.dossier_id, s.publisher, s.status, s.due_day, s.last_on_time, s.units,
            s.resolved_at, s.history
        FROM unnest($3::text[]) AS u(id)
        JOIN dossier_state s
            ON s.topic = $1 AND s."partition" = $2 AND s.dossier_id = u.id
        """,
        *tp,
        ids,
    )
    found = map(_dossier, rows)
    return {d.dossier_id: d for d in found}


def _dossier(row: asyncpg.Record) -> Dossier:
    day = row["due_day"]
    due = None if day is None else Due(day, row["last_on_time"])
    raw = row["history"]
    history, counted = (None, None) if raw is None else history_of(raw)
    return Dossier(
        ledger_id(row["dossier_id"], row["publisher"]), Status(row["status"]), due,
        tuple(row["units"]), row["resolved_at"], history, counted,
    )  # fmt: skip


# A dossier's history on disk (column ``history``, bytea): a version byte, its verdict
# (outcome code, 0 for none; day as a proleptic ordinal; epoch seconds), then each event
# (epoch seconds, kind code, appointment's day ordinal or 0, its last on-time instant).
# Fixed-size little-endian records: ~20 bytes an event, read and written with ``struct``.
_HISTORY_VERSION = 1
_HEAD = struct.Struct("<BBid")
_ENTRY = struct.Struct("<dBid")
# The codes are stored: written out, never derived from an order in the code, so that a
# kind or outcome added later takes a new code and every stored history still reads as
# written (a code derived from sorted(KINDS) would have shifted with a new kind).
_OUTCOME_CODES: Final = {"early": 1, "on_time": 2, "late": 3, "open_overdue": 4}
_KIND_CODES: Final = {
    "final": 1,
    "received": 2,
    "rejected": 3,
    "resubmitted": 4,
    "returned": 5,
    "withdrawn": 6,
}
_OUTCOMES_BY_CODE = {code: outcome for outcome, code in _OUTCOME_CODES.items()}
_KINDS_BY_CODE = {code: kind for kind, code in _KIND_CODES.items()}
_NO_VERDICT = _HEAD.pack(_HISTORY_VERSION, 0, 0, 0.0)


class HistoryError(ValueError):
    """A stored history this version cannot read."""


def history_bytes(dossier: Dossier) -> bytes:
    """``dossier``'s history and verdict as stored (its history must be known)."""
    assert dossier.history is not None  # noqa: S101 -- every dossier the ledger wrote has one
    verdict = dossier.counted
    if verdict is None:
        head = _NO_VERDICT
    else:
        outcome, day, epoch = verdict
        head = _HEAD.pack(_HISTORY_VERSION, _OUTCOME_CODES[outcome], day.toordinal(), epoch)
    pack, codes = _ENTRY.pack, _KIND_CODES
    # One row per dossier of a flush, most holding one event: a list, not a generator.
    return head + b"".join(
        [
            pack(at, codes[kind], 0, 0.0)
            if due is None
            else pack(at, codes[kind], due.day.toordinal(), due.last_on_time)
            for at, kind, due in dossier.history
        ]
    )


def history_of(raw: bytes) -> tuple[tuple[dossiers.Entry, ...], dossiers.Verdict | None]:
    """The history and verdict :func:`history_bytes` wrote."""
    if len(raw) < _HEAD.size or raw[0] != _HISTORY_VERSION or (len(raw) - _HEAD.size) % _ENTRY.size:
        raise HistoryError(f"a dossier history of {len(raw)} bytes, version {raw[:1]!r}")
    _, code, ordinal, epoch = _HEAD.unpack_from(raw)
    verdict = (
        None
        if code == 0
        else dossiers.Verdict(_OUTCOMES_BY_CODE[code], date.fromordinal(ordinal), epoch)
    )
    entries = []
    dues: dict[tuple[int, float], Due] = {}
    for at, kind, day, last in _ENTRY.iter_unpack(memoryview(raw)[_HEAD.size :]):
        due = None
        if day:
            due = dues.get((day, last))
            if due is None:
                due = dues[(day, last)] = Due(date.fromordinal(day), last)
        entries.append(dossiers.Entry(at, _KINDS_BY_CODE[kind], due))
    return tuple(entries), verdict


_COLUMNS = (
    "topic", "partition", "dossier_id", "publisher", "status", "due_day", "last_on_time",
    "units", "resolved_at", "history",
)  # fmt: skip
_STATUS = {status: pgcopy.text(status) for status in Status}
_NO_DUE = pgcopy.NULL + pgcopy.NULL


def _copy_stream(tp: TopicPartition, dossiers: Iterable[Dossier]) -> bytes:
    """``dossiers`` as rows of ``_COLUMNS`` in PostgreSQL's binary COPY format
    (services/metrics/pgcopy.py): a flush's dossiers share a few thousand unit chains
    and appointments, each encoded once here."""
    start = pgcopy.fields(len(_COLUMNS)) + pgcopy.text(tp[0]) + pgcopy.int4(tp[1])
    chains: dict[tuple[str, ...], bytes] = {}
    dues: dict[Due | None, bytes] = {None: _NO_DUE}
    owners: dict[str, bytes] = {}  # a flush's few publishers
    parts = [pgcopy.HEADER]
    for d in dossiers:
        due = dues.get(d.due)
        if due is None:
            assert d.due is not None  # noqa: S101 -- None is in the cache from the start
            due = dues[d.due] = pgcopy.day(d.due.day) + pgcopy.float8(d.due.last_on_time)
        units = chains.get(d.units)
        if units is None:
            units = chains[d.units] = pgcopy.text_array(d.units)
        resolved = pgcopy.NULL if d.resolved_at is None else pgcopy.float8(d.resolved_at)
        history = pgcopy.NULL if d.history is None else pgcopy.raw(history_bytes(d))
        publisher, _, dossier_id = d.dossier_id.rpartition(PUBLISHER_MARK)  # split_key
        owner = owners.get(publisher)
        if owner is None:
            owner = owners[publisher] = pgcopy.text(publisher)
        parts += (
            start,
            pgcopy.text(dossier_id),
            owner,
            _STATUS[d.status],
            due,
            units,
            resolved,
            history,
        )
    parts.append(pgcopy.TRAILER)
    return b"".join(parts)


async def _save(
    conn: Connection, tp: TopicPartition, changed: Iterable[Dossier], stored: Collection[str]
) -> None:
    """Write ``changed``; ``stored`` holds the ids that have a row already.

    A dossier without a row goes in by COPY, the others by INSERT .. ON CONFLICT DO
    UPDATE. Most of a flush's dossiers are new (all of them on the bench backlog), and
    COPY writes them in ~0.55 of the upsert's time (20,000 rows a transaction: 79 ms
    against 138, medians of six alternated; /tmp/h6-notes.md). No other writer can give
    such a dossier a row meanwhile: the caller holds the partition's offset row (the
    fence) until commit, and a row that appeared all the same fails the flush (unique
    violation) rather than being overwritten.
    """
    rows = sorted(changed, key=lambda d: d.dossier_id)  # one lock order for every writer
    # d.status, not d.status.value: a StrEnum member is its text, and .value costs ~1 µs.
    fresh = [d for d in rows if d.dossier_id not in stored]
    if fresh:
        await conn.copy_to_table(
            "dossier_state",
            source=io.BytesIO(_copy_stream(tp, fresh)),
            columns=_COLUMNS,
            format="binary",
        )
    rows = [d for d in rows if d.dossier_id in stored] if len(fresh) < len(rows) else []
    if not rows:
        return
    keys = [split_key(d.dossier_id) for d in rows]
    await conn.execute(
        """
        INSERT INTO dossier_state AS s
            (topic, "partition", dossier_id, publisher, status, due_day, last_on_time, units,
             resolved_at, history)
        SELECT $1, $2, u.id, u.publisher, u.status, u.day, u.last,
            string_to_array(u.units, ' '), u.resolved, u.history
        FROM unnest(
            $3::text[], $4::text[], $5::text[], $6::date[], $7::float8[], $8::text[],
            $9::float8[], $10::bytea[]
        ) AS u(id, publisher, status, day, last, units, resolved, history)
        ON CONFLICT (topic, "partition", dossier_id, publisher) DO UPDATE
            SET status = excluded.status, due_day = excluded.due_day,
                last_on_time = excluded.last_on_time, units = excluded.units,
                resolved_at = excluded.resolved_at, history = excluded.history,
                updated_at = now()
        """,
        *tp,
        [key[1] for key in keys],
        [key[0] for key in keys],
        [d.status for d in rows],
        [d.due.day if d.due else None for d in rows],
        [d.due.last_on_time if d.due else None for d in rows],
        # Unit codes hold no spaces: a chain travels as one string (no 2-D arrays).
        [" ".join(d.units) for d in rows],
        [d.resolved_at for d in rows],
        [None if d.history is None else history_bytes(d) for d in rows],
    )
