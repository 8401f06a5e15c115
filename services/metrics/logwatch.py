"""The broker's log watched while a worker reads it: fetches that jump, records read back.

logcheck.py checks a stored position against the log when partitions are assigned. A
worker that keeps its partitions while the log changes under it (it still heartbeats:
blocked on PostgreSQL, behind a backlog) needs the same checks as it reads (review 89),
because the consumer runs with ``consumer_auto_offset_reset="earliest"``:
- retention deletes records the worker has not fetched yet: the fetch is out of range
  and aiokafka moves the partition to the log's start, in silence. The next fetch starts
  past the offset the counting expects, a *gap*. A transaction's commit marker or an
  aborted transaction leaves a gap too, so the log's start is asked for (one ListOffsets,
  on a gap only): the offsets of the gap below it were deleted before they were counted,
  and are reported as at assignment (``egov_metrics_offsets_lost_total``, EgovOffsetsLost);
- a topic deleted and created again, or a broker that forgot its log: a new log shorter
  than the position makes aiokafka reset to its start, and the fetch goes *backwards*;
  the record before the expected offset is read back and judged as at assignment
  (``logcheck.judge``), and a replaced log is counted again from its start (dedup keys
  make re-reading harmless). A new log already longer than the position shows nothing in
  the fetch: every ``RECHECK_S`` a record handed out earlier (a *checkpoint*) is read back
  on a consumer of its own, and another record in its place means the log was replaced.

The consumer's part (services/metrics/fetched.py) is a comparison per partition per
fetch and one dictionary write; the broker is asked only on a jump and on the timer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any

from aiokafka.errors import KafkaError

from services.metrics.logcheck import TP, Inconclusive, LogCheck, Seen, Stored, Verdict, judge
from services.metrics.logcheck import fingerprint as fingerprint_of

log = logging.getLogger(__name__)

RECHECK_S = 10.0
"""How often the checkpoints are read back: a log replaced under a running worker is
counted again from its start within about this long (one fetch per owned partition)."""

ASK_S = 10.0
"""How long a question to the broker about a jump may take."""

BROKER_ERRORS = (KafkaError, OSError, TimeoutError)

Earliest = Callable[..., Awaitable[Mapping[Any, int]]]
"""The consumer's ``earliest_offsets(*partitions)``: each partition's log start."""


def lost_in_gap(expected: int, first: int, log_start: int) -> int:
    """Offsets of a gap (a fetch starting at ``first``, past the ``expected`` one) that the
    broker deleted before they were counted: those below its log's start. A commit marker
    or an aborted transaction the fetch skipped is at or above the start: no loss."""
    return max(0, min(log_start, first) - expected)


def holds(point: Stored, seen: Seen) -> bool | None:
    """Whether the log still holds a checkpoint's record (``next_offset - 1``, with its
    fingerprint): False only on evidence, another record in its place; True if it is
    there, or if retention deleted it since (a log's start only moves on); None: no
    answer (a slow fetch; a log shorter than the checkpoint shows in the fetch itself)."""
    offset = point.next_offset - 1
    if offset < seen.log_start:
        return True
    if seen.found is None:
        return None
    return seen.found == (offset, point.last_record)


def print_of(record: Any) -> bytes:
    """The fingerprint of an aiokafka ``ConsumerRecord``, as the read-back makes it."""
    ms = record.timestamp if record.timestamp and record.timestamp > 0 else 0
    return fingerprint_of(record.key, record.value, ms)


class LogWatch:
    """Where the running consumer's readings stand, checked against the broker's log.

    The consumer tells it where each partition was sought (``sought``) and what each
    fetch handed to the counting (``handed``), and asks it about a fetch that does not
    start where the counting expects (``gaps``, ``went_back``); ``recheck`` runs on a
    timer. The seeks it decides wait in ``seeks`` until the consumer makes them, between
    two fetches in its own loop (never while a fetch is counted)."""

    def __init__(self, check: LogCheck) -> None:
        self.check = check
        self.expected: dict[TP, int] = {}
        """The offset the counting expects next from each partition: after the last
        record handed out, or where the partition was sought."""
        self.seeks: dict[TP, int] = {}
        self._last: dict[TP, Any] = {}
        """The last record handed out of each partition: the next checkpoint."""
        self._points: dict[TP, Any] = {}
        """The record of each partition ``recheck`` reads back next."""

    def sought(self, offsets: Mapping[TP, int]) -> None:
        """The consumer was sent to ``offsets``: the records from there are expected."""
        self.expected.update(offsets)

    def handed(self, last: Mapping[TP, Any]) -> None:
        """The last record of each partition a fetch handed to the counting."""
        for tp, record in last.items():
            self.expected[tp] = record.offset + 1
            if record.value is not None:  # not the stand-in of an undecodable batch
                self._last[tp] = record
                if tp not in self._points:  # the first of a reading: its chain starts
                    self._points[tp] = record

    def forget(self, tps: Iterable[TP]) -> None:
        """Partitions revoked: nothing of them is expected or checked here any more."""
        for tp in tps:
            for state in (self.expected, self.seeks, self._last, self._points):
                state.pop(tp, None)

    def take_seeks(self, assigned: Collection[TP]) -> dict[TP, int]:
        """The seeks decided since the last call, of the partitions still assigned."""
        seeks, self.seeks = self.seeks, {}
        return {tp: offset for tp, offset in seeks.items() if tp in assigned}

    async def gaps(self, gaps: Mapping[TP, int], earliest: Earliest) -> None:
        """Fetches of ``gaps`` started at the offset given, past the one expected: report
        what the broker deleted of them before it was counted."""
        try:
            starts = await asyncio.wait_for(earliest(*gaps), ASK_S)
        except BROKER_ERRORS as exc:
            for tp, first in gaps.items():
                log.warning(
                    "%s[%d]: fetched from %d, not %d, and the broker did not say where its"
                    " log starts (%r): offsets retention deleted in between, if any, are"
                    " not reported",
                    *tp, first, self.expected[tp], exc,
                )  # fmt: skip
            return
        for tp, first in gaps.items():
            expected = self.expected[tp]
            lost = lost_in_gap(expected, first, starts.get(tp, 0))
            if lost:
                self.check.report(tp, expected, Verdict(first, "deleted", lost))

    async def went_back(self, back: Iterable[TP]) -> None:
        """Fetches of ``back`` started below the offset expected (their records are not
        counted): aiokafka reset them to the log's start. Judged as at assignment; the
        partition is sought where the verdict says (back to the expected offset when the
        log still holds the record before it)."""
        stored = {tp: Stored(self.expected[tp], self._print_before(tp)) for tp in back}
        try:
            seen = await self.check.observe(stored)
        except BROKER_ERRORS as exc:
            log.warning("no read-back for %s (%r): sought back, judged again if it recurs",
                        sorted(stored), exc)  # fmt: skip
            self.seeks.update({tp: s.next_offset for tp, s in stored.items()})
            return
        for tp, point in stored.items():
            try:
                verdict = judge(point, *seen[tp])
            except Inconclusive:  # below the log's end: the position is in range after all
                verdict = Verdict(point.next_offset)
            self._decided(tp, point.next_offset, verdict)

    async def recheck(self) -> None:
        """Read back each partition's checkpoint; the last record handed out since becomes
        the next one once it holds (kept while there is no answer, so no replacement falls
        between two checkpoints)."""
        points = dict(self._points)
        if not points:
            return
        following = dict(self._last)
        stored = {tp: Stored(r.offset + 1, print_of(r)) for tp, r in points.items()}
        try:
            seen = await self.check.observe(stored)
        except BROKER_ERRORS as exc:
            log.info("checkpoints not read back this time (%r)", exc)
            return
        for tp, point in points.items():
            if self._points.get(tp) is not point:
                continue  # revoked, or replaced by a verdict meanwhile
            held = holds(stored[tp], seen[tp])
            if held:
                self._points[tp] = following.get(tp, point)
            elif held is not None:
                before = self.expected.get(tp, stored[tp].next_offset)
                self._decided(tp, before, Verdict(seen[tp].log_start, "replaced"))

    def _decided(self, tp: TP, before: int, verdict: Verdict) -> None:
        self.check.report(tp, before, verdict)
        self.seeks[tp] = verdict.offset
        if verdict.reason == "replaced":  # the next reading's first record starts a chain
            self._points.pop(tp, None)
            self._last.pop(tp, None)

    def _print_before(self, tp: TP) -> bytes | None:
        """The fingerprint of the record before the expected offset, if it was handed out
        here (else the read-back checks the log's bounds only)."""
        last = self._last.get(tp)
        if last is None or last.offset + 1 != self.expected[tp]:
            return None
        return print_of(last)
