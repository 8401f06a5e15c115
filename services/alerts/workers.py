"""Which units the metrics workers answered for, cycle by cycle, while one is down. Pure.

A unit nobody answered for in a cycle is unknown: what it published then was not seen,
so that time is not its silence (a :class:`conditions.Blind` span) and its silence is
not judged until a worker answers for it again, trusted. Two kinds of unit are trusted
while some worker does not answer:

* those in every answer since the last cycle every worker answered (their worker never
  stopped: judged all along, as since review 65);
* those a live worker answers for again after a gap, once it has answered for them in
  every cycle for :data:`REJOIN_AFTER_S`. Their gap (from the last cycle one answered
  for them to the first cycle one did again) ends then, for them alone, although the
  outage goes on: it is recorded at once, so it is kept across a restart of this
  service as any ended span.

Until review 85 only the first kind was: a worker SIGKILLed and left down hands its
partitions to a survivor, whose answers lack them for the seconds of the rebalance, so
they stayed unjudged for as long as the dead worker stayed down, and the whole outage
became their blind span when it came back. A commune silent for hours on a moved
partition never paged; on-call saw the dead worker only.

Everything else is as before: the units nobody answers for (the dead worker's, still
unassigned) are not judged; when every worker answers again, the time from the last
complete cycle is blind for the units not trusted meanwhile. A trusted unit missing
from a later answer is unknown again from the last cycle a worker answered for it, so
no time already judged becomes blind afterwards (that would resolve its alert with
nothing received).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from services.alerts.conditions import Blind

REJOIN_AFTER_S = 30.0
"""How long a live worker must answer for a unit in every cycle, after a gap, before its
silence is judged again while another worker is still down: longer than a failover's
rebalance (about 10 s after a SIGKILL, docs/metrics.md "Failover"), so a partition
handed on and taken back again within one is not trusted on a single answer. Measured
from the first cycle it was answered for again: at least two cycles."""


class WorkerWatch:
    """The units whose silence the workers' answers let be judged, and the spans they
    leave blind (:meth:`observe`). One outage at a time: from the last cycle every
    worker answered (before the first, this process's first cycle: a service started
    while a worker is down is blind from its start) to the next one."""

    def __init__(self) -> None:
        self._since: datetime | None = None
        """The last cycle every worker answered; before the first, the first cycle."""
        self._last: datetime | None = None
        """The cycle before the one observed."""
        self._always: frozenset[str] | None = None
        """The units in every answer since ``_since``; None while no cycle since lacked
        a worker."""
        self._trusted: set[str] = set()
        """Units answered for again after a gap, for long enough: judged again."""
        self._gaps: dict[str, datetime] = {}
        """Units answered for since ``_since``, then not: the last cycle one was. Any other
        unit not trusted has been in no answer since ``_since``."""
        self._runs: dict[str, datetime] = {}
        """Units answered for again after a gap, not for long enough yet: since when."""

    def judgeable(self) -> frozenset[str] | None:
        """The units whose silence may be judged (None: all, every worker answered)."""
        if self._always is None:
            return None
        return self._always | self._trusted

    def observe(self, complete: bool, units: Iterable[str], now: datetime) -> list[Blind]:
        """One cycle: whether every worker answered, and the units in the answers (read
        only when not). Returns the spans that ended in it, to keep."""
        self._since = self._since or now
        last, self._last = self._last, now
        if complete:
            ended = self._outage_over(now)
            self._since, self._always = now, None
            self._trusted, self._gaps, self._runs = set(), {}, {}
            return ended
        answered = frozenset(units)
        if self._always is None:
            self._always = answered
            return []
        self._always = self._left(self._always, answered, last or now)
        return self._rejoined(self._always, answered, now)

    def _left(
        self, always: frozenset[str], answered: frozenset[str], last: datetime
    ) -> frozenset[str]:
        """Trusted units missing from this cycle's answers are unknown from the last cycle,
        when a worker answered for them (every unit of ``always`` and ``_trusted`` was then
        answered for). Returns what is left of ``always``."""
        gone = (always | self._trusted) - answered
        for unit in gone:
            self._gaps[unit] = last
        self._trusted -= gone
        for unit in [u for u in self._runs if u not in answered]:
            del self._runs[unit]  # a run broken: its gap goes on from where it began
        return always - gone if gone else always

    def _rejoined(
        self, always: frozenset[str], answered: frozenset[str], now: datetime
    ) -> list[Blind]:
        """Units answered for again: trusted once answered for REJOIN_AFTER_S; their gap
        (to the first cycle of the run) ends then. One span per gap start and run."""
        since = self._since or now
        ended: dict[tuple[datetime, datetime], set[str]] = {}
        for unit in answered - always - self._trusted:
            run = self._runs.setdefault(unit, now)
            if (now - run).total_seconds() < REJOIN_AFTER_S:
                continue
            del self._runs[unit]
            self._trusted.add(unit)
            start = self._gaps.pop(unit, since)
            ended.setdefault((start, run), set()).add(unit)
        return [Blind(s, e, units=frozenset(u)) for (s, e), u in sorted(ended.items())]

    def _outage_over(self, now: datetime) -> list[Blind]:
        """Every worker answered again: the time since the last complete cycle is blind for
        the units in no answer since, and since its gap for each unit that had one."""
        if self._always is None or self._since is None:
            return []
        seen = self._always.union(self._trusted, self._gaps)
        spans = [Blind(self._since, now, frozenset(seen))]
        starts: dict[datetime, set[str]] = {}
        for unit, start in self._gaps.items():
            starts.setdefault(start, set()).add(unit)
        spans += [Blind(s, now, units=frozenset(u)) for s, u in sorted(starts.items())]
        return spans
