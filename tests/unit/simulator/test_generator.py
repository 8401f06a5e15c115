"""The generator against the real contract and unit data, with explicit seeds and clocks."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.common.contract import Contract
from services.common.events import CloudEvent, parse_time
from services.common.figures import Figure
from services.common.kpis import KpiCatalogue
from services.common.scorecard import Period, Scorecard, State, score
from services.common.units import VN_TZ, UnitRegistry
from services.metrics.dossiers import FINAL_OUTCOMES, Dossier, Due, Tick, fact_of, step, sweep
from services.simulator.generator import (
    DOCUMENT_ISSUED,
    DOSSIER_PAID,
    DOSSIER_RECEIVED,
    DOSSIER_RESOLVED,
    DOSSIER_RESUBMITTED,
    EVENT_TYPES,
    FLAGS_RECORDED,
    MEETING_HELD,
    RATING_SUBMITTED,
    TYPE_WEIGHTS,
    EventGenerator,
)
from services.simulator.profiles import (
    BELOW_TARGET,
    NORMAL_RANGES,
    Rates,
    SimulationPlan,
    build_plan,
    group_by_province,
)

NOW = datetime(2025, 9, 1, 10, 0, tzinfo=VN_TZ)
WINDOW = timedelta(seconds=1)
GRACE = timedelta(days=7)
PROVINCES = ("19", "38", "68")
Event = dict[str, Any]


@dataclass(frozen=True)
class Sent:
    """One batch as the runner would send it: the clock it was made at, and its events."""

    now: datetime
    events: list[Event]


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


@pytest.fixture(scope="module")
def registry() -> UnitRegistry:
    return UnitRegistry.from_dir()


@pytest.fixture(scope="module")
def plan(registry: UnitRegistry) -> SimulationPlan:
    grouped = group_by_province(registry.units("2025"), PROVINCES)
    return build_plan(grouped, random.Random(7))


@pytest.fixture(scope="module")
def default_run(plan: SimulationPlan, contract: Contract) -> list[Event]:
    """20,000 events with the default late and duplicate fractions, shared by read-only tests."""
    return flat(run(generator(plan, contract), 20_000))


def generator(
    plan: SimulationPlan, contract: Contract, seed: int = 1, **kwargs: Any
) -> EventGenerator:
    schemas = {t: contract.dataschema_uri(t) for t in EVENT_TYPES}
    return EventGenerator(plan, random.Random(seed), schemas, **kwargs)


def run(gen: EventGenerator, total: int, batch: int = 500) -> list[Sent]:
    """``total`` events in batches, the clock advancing one window per batch."""
    return [
        Sent(NOW + i * WINDOW, gen.generate(NOW + i * WINDOW, batch, WINDOW))
        for i in range(total // batch)
    ]


def flat(sent: Iterable[Sent]) -> list[Event]:
    return [e for s in sent for e in s.events]


def unique(events: Iterable[Event]) -> list[Event]:
    """Each (source, id) once, as the pipeline counts them."""
    seen: dict[tuple[str, str], Event] = {}
    for e in events:
        seen.setdefault((e["source"], e["id"]), e)
    return list(seen.values())


# KPI name -> (counts in the denominator, counts in the numerator), per DOMAIN.md.
Predicate = Callable[[Event], bool]


def _doc(e: Event) -> dict[str, Any]:
    return e["data"] if e["type"] == DOCUMENT_ISSUED else {}


def _typed(event_type: str) -> Predicate:
    return lambda e: e["type"] == event_type


KPIS: Mapping[str, tuple[Predicate, Predicate]] = {
    "document_signing": (
        lambda e: bool(_doc(e)) and _doc(e)["electronic"] and not _doc(e).get("classified"),
        lambda e: bool(_doc(e)["signed"]),
    ),
    "document_electronic": (
        lambda e: bool(_doc(e)) and not _doc(e).get("classified"),
        lambda e: bool(_doc(e)["electronic"]),
    ),
    "dossier_online": (
        lambda e: e["type"] == DOSSIER_RECEIVED and e["data"]["service_level"] == "full",
        lambda e: e["data"]["channel"] == "online",
    ),
    "dossier_online_payment": (
        _typed(DOSSIER_PAID),
        lambda e: e["data"]["method"] == "online",
    ),
    # Final outcomes only (withdrawn and returned are not resolutions), judged as the
    # on-time ledger judges them (services/metrics/dossiers.py): by the local date.
    "dossier_on_time": (
        lambda e: e["type"] == DOSSIER_RESOLVED and e["data"]["outcome"] in FINAL_OUTCOMES,
        lambda e: not Due.parse(e["data"]["due_at"]).late(parse_time(e["time"]).timestamp()),
    ),
    "meeting_online": (
        _typed(MEETING_HELD),
        lambda e: e["data"]["mode"] in ("online", "hybrid"),
    ),
    "meeting_paperless": (_typed(MEETING_HELD), lambda e: bool(e["data"]["paperless"])),
    # The optional flags: a dossier whose event does not carry one is out of its rate.
    "dossier_digitised": (
        lambda e: e["type"] == DOSSIER_RECEIVED and "digitised" in e["data"],
        lambda e: bool(e["data"]["digitised"]),
    ),
    "dossier_population_data": (
        lambda e: e["type"] == DOSSIER_RECEIVED and "population_data" in e["data"],
        lambda e: bool(e["data"]["population_data"]),
    ),
    "dossier_electronic_result": (
        lambda e: e["type"] == DOSSIER_RESOLVED and "electronic_result" in e["data"],
        lambda e: bool(e["data"]["electronic_result"]),
    ),
    "dossier_satisfaction": (
        _typed(RATING_SUBMITTED),
        lambda e: e["data"]["rating"] == "satisfied",
    ),
}


def measure(events: Iterable[Event]) -> dict[str, tuple[int, int]]:
    """KPI -> (numerator, denominator) over ``events``."""
    counts = {kpi: [0, 0] for kpi in KPIS}
    for e in events:
        for kpi, (in_denominator, in_numerator) in KPIS.items():
            if in_denominator(e):
                counts[kpi][1] += 1
                counts[kpi][0] += in_numerator(e)
    return {kpi: (num, den) for kpi, (num, den) in counts.items()}


def expected_rate(kpi: str, rates: Iterable[tuple[float, Rates]]) -> float:
    """The rate the profiles promise, weighted by each unit's share of the denominator."""
    num = den = 0.0
    for weight, r in rates:
        share = {
            "document_signing": (1 - r.document_classified) * r.document_electronic,
            "document_electronic": 1 - r.document_classified,
            "dossier_online": r.dossier_full_share,
        }.get(kpi, 1.0)
        num += weight * share * getattr(r, kpi)
        den += weight * share
    return num / den


def assert_close(kpi: str, measured: tuple[int, int], expected: float) -> None:
    num, den = measured
    assert den > 50, f"{kpi}: too few events ({den}) to judge"
    tolerance = 4 * math.sqrt(expected * (1 - expected) / den) + 0.005
    assert abs(num / den - expected) <= tolerance, (kpi, num, den, expected)


# ---------------------------------------------------------------- the contract


def test_every_generated_event_is_valid_against_the_contract(
    plan: SimulationPlan, contract: Contract
) -> None:
    events = flat(run(generator(plan, contract, late_fraction=0.2, duplicate_fraction=0.1), 20_000))
    invalid = [(e, v) for e in events if (v := contract.validate(e))]
    assert invalid == []
    assert {e["type"] for e in events} == set(EVENT_TYPES)


def test_times_are_vietnam_time_and_never_in_the_future(
    plan: SimulationPlan, contract: Contract
) -> None:
    for sent in run(generator(plan, contract), 5_000):
        for e in sent.events:
            assert e["time"].endswith("+07:00")
            assert parse_time(e["time"]) <= sent.now


def test_sources_name_the_integrating_system_of_the_units_province(
    plan: SimulationPlan, contract: Contract
) -> None:
    system = {DOCUMENT_ISSUED: "tdoffice", MEETING_HELD: "hntt"}
    for e in flat(run(generator(plan, contract), 5_000)):
        province = plan.profile(e["unit"]).province
        assert e["source"] == f"urn:egov:{system.get(e['type'], 'dvc')}:{province}"


def test_event_ids_are_unique_apart_from_duplicates(
    plan: SimulationPlan, contract: Contract
) -> None:
    events = flat(run(generator(plan, contract, duplicate_fraction=0.0), 20_000))
    assert len({e["id"] for e in events}) == len(events)


# ---------------------------------------------------------------- realism


def test_rates_over_20000_events_are_within_tolerance_of_the_profiles(
    plan: SimulationPlan, default_run: list[Event]
) -> None:
    measured = measure(unique(default_run))
    rates = [(p.weight, p.rates) for p in plan.profiles]
    for kpi in KPIS:
        assert_close(kpi, measured[kpi], expected_rate(kpi, rates))


def test_rates_are_near_the_published_figures(default_run: list[Event]) -> None:
    measured = measure(unique(default_run))
    rate = {kpi: num / den for kpi, (num, den) in measured.items()}
    assert 0.98 <= rate["document_signing"] <= 1.0
    assert 0.92 <= rate["document_electronic"] <= 0.98
    assert 0.85 <= rate["dossier_online"] <= 0.99
    assert 0.02 <= rate["dossier_online_payment"] <= 0.11
    assert 0.90 <= rate["dossier_on_time"] <= 0.98
    assert 0.80 <= rate["meeting_online"] <= 0.97
    assert 0.70 <= rate["meeting_paperless"] <= 0.90
    assert 0.75 <= rate["dossier_digitised"] <= 0.95
    assert 0.50 <= rate["dossier_population_data"] <= 0.80
    assert 0.60 <= rate["dossier_electronic_result"] <= 0.90
    assert 0.90 <= rate["dossier_satisfaction"] <= 0.99


def test_some_dossiers_come_from_systems_that_do_not_record_the_flags(
    default_run: list[Event],
) -> None:
    receipts = [e["data"] for e in default_run if e["type"] == DOSSIER_RECEIVED]
    flagged = [d for d in receipts if "digitised" in d]
    assert all(("population_data" in d) == ("digitised" in d) for d in receipts)
    assert abs(len(flagged) / len(receipts) - FLAGS_RECORDED) < 0.03
    resolved = [e["data"] for e in default_run if e["type"] == DOSSIER_RESOLVED]
    assert all(d["outcome"] == "approved" for d in resolved if "electronic_result" in d)
    assert any("electronic_result" not in d for d in resolved if d["outcome"] == "approved")


def test_a_province_of_the_simulation_scores_the_766_indicators_the_events_measure(
    plan: SimulationPlan, default_run: list[Event]
) -> None:
    """What `make up` shows: beside 2.1 (20 points), the simulated systems' flags and
    ratings give a province figures for 4.1, 4.2, 4.5b and 5.4: 38 measured points."""
    province = PROVINCES[0]
    mine = [e for e in unique(default_run) if plan.profile(e["unit"]).province == province]
    catalogue = KpiCatalogue.load()
    counts: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for e in mine:  # the catalogue's own conditions, as a worker counts the events
        for kpi, num, den in catalogue.counts(CloudEvent.from_dict(e)):
            counts[kpi] = (counts[kpi][0] + num, counts[kpi][1] + den)
    counts["dossier_on_time"] = measure(mine)["dossier_on_time"]  # the ledger's, in short
    figures = [Figure(k, province, "month", n, d, None, 10) for k, (n, d) in counts.items()]
    s = score(Scorecard.load(), figures, province, Period("month", NOW.year, NOW.month))
    measured = {i.indicator.id for i in s.indicators if i.state is State.MEASURED}
    assert measured == {"2.1", "4.1", "4.2", "4.5b", "5.4"}
    assert s.measured_max == 38 and s.points > 20


def test_ratings_are_of_dossiers_the_unit_resolved(default_run: list[Event]) -> None:
    resolved: dict[str, set[str]] = defaultdict(set)
    rated_known = rated = 0
    for e in default_run:  # in the order sent: a rating comes after its resolution
        if e["type"] == DOSSIER_RESOLVED and e["data"]["outcome"] in FINAL_OUTCOMES:
            resolved[e["unit"]].add(e["data"]["dossier_id"])
        elif e["type"] == RATING_SUBMITTED:
            rated += 1
            rated_known += e["data"]["subject_id"] in resolved[e["unit"]]
    assert rated > 100 and rated_known / rated > 0.5


def test_documents_are_most_frequent_and_meetings_rare(default_run: list[Event]) -> None:
    types = Counter(e["type"] for e in default_run)
    assert types.most_common(1)[0][0] == DOCUMENT_ISSUED
    # Resubmissions (of the few returned dossiers) are rarer still.
    others = [t for t, _ in types.most_common() if t != DOSSIER_RESUBMITTED]
    assert others[-1] == MEETING_HELD
    assert types[MEETING_HELD] / types.total() < 0.05
    assert max(TYPE_WEIGHTS, key=TYPE_WEIGHTS.__getitem__) == DOCUMENT_ISSUED


def test_classified_documents_are_rare_and_left_out_of_electronic_exchange(
    default_run: list[Event],
) -> None:
    documents = [e["data"] for e in default_run if _doc(e)]
    classified = [d for d in documents if d["classified"]]
    assert 0.005 <= len(classified) / len(documents) <= 0.03
    assert not any(d["electronic"] or d["signed"] for d in classified)


def test_provinces_departments_and_communes_all_publish(
    plan: SimulationPlan, default_run: list[Event]
) -> None:
    units = {e["unit"] for e in default_run}
    levels = Counter(plan.profile(code).level for code in units)
    assert set(levels) == {"province", "department", "commune"}
    assert {plan.profile(code).province for code in units} == set(PROVINCES)


# ---------------------------------------------------------------- misbehaving units


def test_the_silent_unit_publishes_nothing(plan: SimulationPlan, contract: Contract) -> None:
    assert plan.silent is not None and plan.silent.level == "commune"
    assert plan.silent.code not in {p.code for p in plan.profiles}
    events = flat(run(generator(plan, contract, late_fraction=0.1, duplicate_fraction=0.1), 20_000))
    assert plan.silent.code not in {e["unit"] for e in events}


def test_a_configured_silent_unit_is_the_one_left_out(registry: UnitRegistry) -> None:
    grouped = group_by_province(registry.units("2025"), PROVINCES)
    plan = build_plan(grouped, random.Random(7), silent_unit="16342")
    assert plan.silent is not None and plan.silent.code == "16342"
    assert "16342" not in {p.code for p in plan.profiles}


def test_a_few_units_are_clearly_below_target(registry: UnitRegistry, contract: Contract) -> None:
    # A small plan, so that each failing unit has enough events to be judged on its own.
    units = group_by_province(registry.units("2025"), ["19"])["19"]
    small = [u for u in units if u.level != "commune"][:3] + [
        u for u in units if u.level == "commune"
    ][:8]
    plan = build_plan({"19": small}, random.Random(3), below_target_count=4)
    failing = plan.below_target
    assert {p.below_target for p in failing} == set(BELOW_TARGET)
    assert all(p.level == "commune" for p in failing)

    events = unique(flat(run(generator(plan, contract), 100_000)))
    by_unit: dict[str, list[Event]] = defaultdict(list)
    for e in events:
        by_unit[e["unit"]].append(e)
    for p in failing:
        kpi = p.below_target or ""
        measured = measure(by_unit[p.code])[kpi]
        assert_close(kpi, measured, BELOW_TARGET[kpi])
        num, den = measured
        assert num / den < NORMAL_RANGES[kpi][0] - 0.1, (p.code, kpi, num / den)


# ---------------------------------------------------------------- late and duplicate


def test_late_events_are_hours_to_days_old_and_within_grace(
    plan: SimulationPlan, contract: Contract
) -> None:
    gen = generator(plan, contract, late_fraction=0.05, duplicate_fraction=0.0)
    sent = run(gen, 20_000)
    lateness = [s.now - parse_time(e["time"]) for s in sent for e in s.events]
    late = [d for d in lateness if d > WINDOW]
    assert len(late) == gen.late_total
    assert 0.04 <= len(late) / len(lateness) <= 0.06
    assert all(timedelta(hours=1) <= d < GRACE for d in late)
    assert max(late) > timedelta(days=1)


def test_duplicates_resend_an_earlier_event_unchanged(
    plan: SimulationPlan, contract: Contract
) -> None:
    gen = generator(plan, contract, duplicate_fraction=0.02)
    sent = run(gen, 20_000)
    first_batch: dict[tuple[str, str], int] = {}
    originals: dict[tuple[str, str], Event] = {}
    repeats = 0
    for index, s in enumerate(sent):
        for e in s.events:
            key = (e["source"], e["id"])
            if key in originals:
                repeats += 1
                assert e == originals[key]
                assert first_batch[key] < index  # re-sent later, not in the same request
            else:
                originals[key], first_batch[key] = e, index
    assert repeats == gen.duplicates_total
    assert 0.015 <= repeats / gen.events_total <= 0.025


def test_no_late_events_or_duplicates_when_their_fractions_are_zero(
    plan: SimulationPlan, contract: Contract
) -> None:
    gen = generator(plan, contract, late_fraction=0.0, duplicate_fraction=0.0)
    sent = run(gen, 5_000)
    assert gen.late_total == gen.duplicates_total == 0
    assert all(s.now - parse_time(e["time"]) <= WINDOW for s in sent for e in s.events)


# ---------------------------------------------------------------- determinism


def test_the_same_seed_and_clock_give_the_same_events(
    plan: SimulationPlan, contract: Contract
) -> None:
    assert flat(run(generator(plan, contract, seed=5), 2_000)) == flat(
        run(generator(plan, contract, seed=5), 2_000)
    )
    assert flat(run(generator(plan, contract, seed=5), 2_000)) != flat(
        run(generator(plan, contract, seed=6), 2_000)
    )


def test_the_plan_depends_on_the_seed_not_on_the_order_of_units(registry: UnitRegistry) -> None:
    grouped = group_by_province(registry.units("2025"), PROVINCES)
    shuffled = {p: random.Random(1).sample(units, len(units)) for p, units in grouped.items()}
    assert build_plan(grouped, random.Random(9)) == build_plan(shuffled, random.Random(9))
    assert build_plan(grouped, random.Random(9)) != build_plan(grouped, random.Random(10))


def test_a_naive_clock_is_refused(plan: SimulationPlan, contract: Contract) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        generator(plan, contract).generate(datetime(2025, 9, 1, 10, 0), 1)


def test_dossiers_end_early_on_time_late_and_open_overdue(
    plan: SimulationPlan, default_run: list[Event]
) -> None:
    """Through the on-time ledger, the simulated dossiers show all four counts (some left
    open past their short appointment), and withdrawn, returned and resubmitted ones."""
    ledger: dict[str, Dossier | None] = {}
    ticks: list[Tick] = []
    for e in unique(default_run):
        fact = fact_of(e["type"], e["data"])
        if fact is None:
            continue
        units = (e["unit"], plan.profile(e["unit"]).province)
        at = parse_time(e["time"]).timestamp()
        ledger[fact.dossier_id], new = step(ledger.get(fact.dossier_id), fact, at, units)
        ticks += new
    end = NOW + (len(default_run) // 500) * WINDOW + timedelta(days=1)
    ticks += sweep([d for d in ledger.values() if d is not None], end.timestamp())[1]
    counts = Counter(t.outcome for t in ticks for _ in range(t.delta))
    assert all(counts[outcome] > 0 for outcome in ("early", "on_time", "late", "open_overdue"))
    outcomes = Counter(e["data"]["outcome"] for e in default_run if e["type"] == DOSSIER_RESOLVED)
    assert outcomes["withdrawn"] > 0 and outcomes["returned"] > 0
    assert any(e["type"] == DOSSIER_RESUBMITTED for e in default_run)
    # Date-only and timed appointments both.
    dues = [e["data"]["due_at"] for e in default_run if e["type"] == DOSSIER_RECEIVED]
    assert any(len(d) == 10 for d in dues) and any(len(d) > 10 for d in dues)
