"""Whether a signed summary makes sense, before a worker counts it without reading events.

A summary whose MAC verifies was made with the record signing key: by ingest, or by
whoever has the key. Counted as it is, it could add anything to any unit (numerators
above denominators, negative sums, KPIs or units that do not exist, years outside the
contract), so every summary is checked here first, at the one place where summaries are
trusted (``Preparer._prepare_summary`` in pipeline.py). A summary that fails is not
counted and its record is dead-lettered with the reason (``summary-nonsense``), where an
operator sees it: only a stolen key or a bug in ingest can make one. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from dataclasses import dataclass, field
from itertools import repeat
from operator import add, attrgetter, le, lt, mod
from typing import Final

from services.common.contract import EARLIEST_EVENT_EPOCH
from services.common.dossierfacts import FACT_TYPES, RECEIVED, RESOLVED, RESUBMITTED, bare_id
from services.common.tally import TallyBatch as Summary
from services.common.timekeys import BUCKET_S

NONSENSE = "summary-nonsense"
"""The dead-letter reason of a record whose signed summary fails a check below."""

KNOWN_CHAINS_LIMIT = 65_536
"""Chains remembered as known; past it the set starts again (a registry has ~15,000 codes)."""

KINDS_OF: Final = {
    RECEIVED: frozenset({"received"}),
    RESUBMITTED: frozenset({"resubmitted"}),
    RESOLVED: frozenset({"final", "rejected", "returned", "withdrawn"}),
}
"""The fact kinds an event of each type can carry (services/common/dossierfacts.py)."""

MIN_EVENT_BYTES = 100
"""Fewer bytes than the smallest event the contract accepts (its required attributes
alone take more): a record of ``n`` bytes holds at most ``n // 100`` events."""


@dataclass(frozen=True, slots=True)
class SummaryBounds:
    """What this worker knows: the KPIs of its catalogue with the event type each counts,
    the event types of its contract, and the codes of its unit registry (both eras)."""

    kpis: Mapping[str, str]
    """KPI id -> the event type whose events it counts."""
    types: Set[str]
    units: Callable[[str], bool]
    known_chains: set[tuple[str, ...]] = field(default_factory=set)
    """Unit chains whose every code ``units`` knows, seen in earlier summaries."""


def problem(
    summary: Summary, value_size: int, bounds: SummaryBounds, version: int = 2
) -> str | None:
    """Why ``summary`` cannot be what a record of ``value_size`` bytes adds, or None.

    Checked: the events fit in the record; every group adds at least one event; KPIs,
    event types and units are known; every KPI count is of a KPI of its group's event
    type and 0 <= numerator <= denominator <= 1 for one event (so every sum stays within
    the events counted); a chain names each unit once; times lie within the contract's
    years; a group's latest time lies in its 5-minute bucket (so in its Vietnam day) and
    at or before the record's latest event; dossier facts (version 2) are those of the
    dossier events, one each, of a kind their event's type can say.

    Not checked here: times ahead of the worker's clock (the caller then reads the
    record event by event and dead-letters only the events ahead of its clock: a worker
    whose clock lags ingest's must not refuse the events around them), and whether a
    fact's dossier id is its event's (the summary does not carry the event's source, and
    two sources of one publisher may number their dossiers alike). A key holder can
    still make up events; these checks keep what it makes up counted as events are."""
    events = summary.events
    if events * MIN_EVENT_BYTES > value_size:
        return f"{events} events claimed in a record of {value_size} bytes"
    sizes = summary.group_events
    if sizes and (not set(map(type, sizes)) <= {int} or min(sizes) < 1):
        return "a group adds no events, or a negative number of them"
    unknown = [t for t in summary.types if t not in bounds.types]
    if unknown:
        return f"unknown event types {unknown[:3]}"
    for counts in summary.counts:
        for kpi, n, d in counts:
            if kpi not in bounds.kpis:
                return f"unknown KPI {kpi!r}"
            if not (type(n) is int and type(d) is int and 0 <= n <= d <= 1):
                return f"KPI {kpi!r} counts {n}/{d} for one event (0 <= n <= d <= 1)"
    for t, c in set(zip(summary.group_type, summary.group_counts, strict=True)):
        for kpi, _, _ in summary.counts[c]:
            if bounds.kpis[kpi] != summary.types[t]:
                return f"KPI {kpi!r} counted for a {summary.types[t]} event"
    known = bounds.known_chains
    for chain in summary.chains:
        if chain in known:  # checked in an earlier summary (the registry does not change)
            continue
        strangers = [code for code in chain if not bounds.units(code)]
        if strangers:
            return f"unknown units {strangers[:3]}"
        if len(set(chain)) != len(chain):
            return f"a unit chain names a unit twice: {','.join(chain)[:200]}"
        if len(known) >= KNOWN_CHAINS_LIMIT:
            known.clear()
        known.add(chain)
    times = _times_problem(summary)
    return times or (_facts_problem(summary) if version >= 2 else None)


def _times_problem(summary: Summary) -> str | None:
    times = summary.epochs
    if not times:
        return None
    if not EARLIEST_EVENT_EPOCH <= min(times):
        return "an event time before the contract's years"
    # Whole columns through C-level map: a group is often one event, and this runs on
    # every summary of a replay.
    buckets, latests = summary.group_bucket, summary.group_latest
    ends = map(add, buckets, repeat(BUCKET_S))
    if (
        any(map(mod, buckets, repeat(BUCKET_S)))
        or not all(map(le, buckets, latests))
        or not all(map(lt, latests, ends))
    ):
        return "a group's latest time is not in its 5-minute bucket"
    if max(latests) > max(times):
        return "a group's latest time is after every event of the record"
    return None


def _facts_problem(summary: Summary) -> str | None:
    """Facts of version 2: on the dossier events (payments aside) and on no other."""
    facts = summary.facts
    dossier_types = {t for t, name in enumerate(summary.types) if name in FACT_TYPES}
    group_type, index = summary.group_type, summary.index
    dossier_events = sum(
        n for t, n in zip(group_type, summary.group_events, strict=True) if t in dossier_types
    )
    # Each fact's event type, through C-level maps (facts are most events of a dossier
    # record); then the few distinct (type, kind) pairs are judged.
    fact_types = list(map(group_type.__getitem__, map(index.__getitem__, facts)))
    if dossier_events != len(facts) or not dossier_types.issuperset(fact_types):
        return "its dossier facts are not one for each dossier event"
    names, kinds = summary.types, map(attrgetter("kind"), facts.values())
    # The id the event carried: a record's publisher qualifies it (dossierfacts.ledger_id).
    if not all(map(bare_id, map(attrgetter("dossier_id"), facts.values()))):
        return "a dossier fact without its dossier"
    for t, kind in set(zip(fact_types, kinds, strict=True)):
        if kind not in KINDS_OF[names[t]]:
            return f"a dossier fact ({kind}) its event's type ({names[t]}) cannot say"
    return None
