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

from collections.abc import Callable, Set
from dataclasses import dataclass, field

from services.common.contract import EARLIEST_EVENT_EPOCH
from services.common.dossierfacts import FACT_TYPES, KINDS
from services.common.tally import TallyBatch as Summary
from services.common.timekeys import BUCKET_S

NONSENSE = "summary-nonsense"
"""The dead-letter reason of a record whose signed summary fails a check below."""

KNOWN_CHAINS_LIMIT = 65_536
"""Chains remembered as known; past it the set starts again (a registry has ~15,000 codes)."""

MIN_EVENT_BYTES = 100
"""Fewer bytes than the smallest event the contract accepts (its required attributes
alone take more): a record of ``n`` bytes holds at most ``n // 100`` events."""


@dataclass(frozen=True, slots=True)
class SummaryBounds:
    """What this worker knows: the KPIs of its catalogue, the event types of its contract,
    and the codes of its unit registry (both eras)."""

    kpis: Set[str]
    types: Set[str]
    units: Callable[[str], bool]
    clock_skew_s: float
    known_chains: set[tuple[str, ...]] = field(default_factory=set)
    """Unit chains whose every code ``units`` knows, seen in earlier summaries."""


def problem(
    summary: Summary, value_size: int, bounds: SummaryBounds, now_s: float, version: int = 2
) -> str | None:
    """Why ``summary`` cannot be what a record of ``value_size`` bytes adds, or None.

    Checked: the events fit in the record, every group adds at least one event, every
    KPI count of one event is 0 <= numerator <= denominator <= 1 (so every sum stays
    within the events counted), KPIs, event types and units are known, and times and
    buckets lie within the contract's years and not ahead of the clock; dossier facts
    (version 2) are those of the dossier events, one each, of a known kind."""
    events = summary.events
    if events * MIN_EVENT_BYTES > value_size:
        return f"{events} events claimed in a record of {value_size} bytes"
    if any(type(n) is not int or n < 1 for n in summary.group_events):
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
    known = bounds.known_chains
    for chain in summary.chains:
        if chain in known:  # checked in an earlier summary (the registry does not change)
            continue
        strangers = [code for code in chain if not bounds.units(code)]
        if strangers:
            return f"unknown units {strangers[:3]}"
        if len(known) >= KNOWN_CHAINS_LIMIT:
            known.clear()
        known.add(chain)
    times = _times_problem(summary, now_s + bounds.clock_skew_s)
    return times or (_facts_problem(summary) if version >= 2 else None)


def _times_problem(summary: Summary, latest: float) -> str | None:
    times, buckets = summary.epochs, summary.group_bucket
    if times and not (EARLIEST_EVENT_EPOCH <= min(times) and max(times) <= latest):
        return "an event time outside the contract's years or ahead of the clock"
    if buckets and not (EARLIEST_EVENT_EPOCH - BUCKET_S < min(buckets) <= max(buckets) <= latest):
        return "a bucket outside the contract's years or ahead of the clock"
    return None


def _facts_problem(summary: Summary) -> str | None:
    """Facts of version 2: on the dossier events (payments aside) and on no other."""
    facts = summary.facts
    dossier_types = {t for t, name in enumerate(summary.types) if name in FACT_TYPES}
    group_type, index = summary.group_type, summary.index
    dossier_events = sum(
        n for t, n in zip(group_type, summary.group_events, strict=True) if t in dossier_types
    )
    if dossier_events != len(facts) or any(
        group_type[index[i]] not in dossier_types for i in facts
    ):
        return "its dossier facts are not one for each dossier event"
    if any(f.kind not in KINDS or not f.dossier_id for f in facts.values()):
        return "a dossier fact of an unknown kind, or without a dossier"
    return None
