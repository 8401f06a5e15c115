"""/v1/kpis answers from the snapshot the counting loop publishes, never built per request
(issue 15, item 5). Time is an input: a wall clock for the periods, a monotonic clock for
the publishing interval; builds are counted by the snapshots themselves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from prometheus_client import CollectorRegistry

from services.common.tally import Deltas
from services.metrics import api
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.periods import ALL_WINDOWS, Periods
from services.metrics.snapshot import CAUGHT_UP_COST_SHARE, KpiSnapshots, SnapshotCollector
from services.metrics.targets import Targets
from services.metrics.web import activity_answer, kpis_answer
from tests.unit.metrics.helpers import catalogue, registry
from tests.unit.metrics.test_figures import c

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
TP = ("egov.documents", 0)
OTHER_TP = ("egov.documents", 1)


class Clocks:
    def __init__(self) -> None:
        self.now = NOW
        self.mono = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.mono += seconds


def setup(piece: int = 2000) -> tuple[Figures, KpiSnapshots, Clocks, Targets]:
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    figures.assign(OTHER_TP, PartitionFigures())
    clocks = Clocks()
    targets = Targets(catalogue())
    snapshots = KpiSnapshots(
        figures,
        registry(),
        targets,
        clocks.wall,
        interval_s=1.0,
        monotonic=clocks.monotonic,
        piece=piece,
    )
    return figures, snapshots, clocks, targets


def answer(snapshots: KpiSnapshots, targets: Targets, **params: list[str]) -> dict:  # type: ignore[type-arg]
    response = kpis_answer(dict(params), snapshots, targets, "unit-worker")
    assert response.status == 200, response.body
    return orjson.loads(response.body)  # type: ignore[arg-type, no-any-return]


def built_directly(figures: Figures, targets: Targets, clocks: Clocks, **params: list[str]):  # type: ignore[no-untyped-def]
    query = api.KpiQuery.parse(dict(params), targets.catalogue)
    return api.kpi_items(query, figures, registry(), targets, Periods.at(clocks.wall()))


async def test_a_burst_of_requests_builds_nothing() -> None:
    figures, snapshots, clocks, targets = setup()
    figures.apply(TP, Deltas.of([c(NOW), c(NOW, 0)]), Periods.at(NOW))
    await snapshots.publish()
    builds = snapshots.builds
    assert builds == len(ALL_WINDOWS)  # one build per window, at publishing
    for _ in range(200):
        body = answer(snapshots, targets, unit=["01843"], window=["day"])
        assert [(i["numerator"], i["denominator"]) for i in body["items"]] == [(1, 2)]
    assert snapshots.builds == builds  # 200 requests, no build
    # Nothing changed: the timer's refreshes publish nothing either.
    clocks.advance(5)
    assert await snapshots.refresh() is False
    assert snapshots.builds == builds


async def test_the_snapshot_reflects_a_committed_step_within_its_interval() -> None:
    figures, snapshots, clocks, targets = setup()
    await snapshots.publish()
    assert answer(snapshots, targets, unit=["01843"])["items"] == []
    # A committed step applies its deltas to the figures...
    figures.apply(TP, Deltas.of([c(NOW), c(NOW)]), Periods.at(NOW))
    # ...and is published at most once per interval, not before.
    clocks.advance(0.5)
    assert await snapshots.refresh() is False
    clocks.advance(0.5)
    assert await snapshots.refresh() is True
    body = answer(snapshots, targets, unit=["01843"], window=["day", "1h"])
    assert [(i["window"], i["numerator"]) for i in body["items"]] == [("day", 2), ("1h", 2)]
    assert body["snapshot_age_s"] == 0.0
    clocks.advance(0.25)
    assert answer(snapshots, targets)["snapshot_age_s"] == 0.25


async def test_only_the_units_a_step_touched_are_built_again() -> None:
    figures, snapshots, clocks, targets = setup(piece=1)  # a full build: one per unit
    figures.apply(TP, Deltas.of([c(NOW, units=("01843", "19"))]), Periods.at(NOW))
    figures.apply(OTHER_TP, Deltas.of([c(NOW, units=("16342", "38"))]), Periods.at(NOW))
    await snapshots.publish()
    assert snapshots.builds == 4 * len(ALL_WINDOWS)
    figures.apply(OTHER_TP, Deltas.of([c(NOW, 0, units=("16342", "38"))]), Periods.at(NOW))
    clocks.advance(1)
    touched = figures.take_touched()
    assert touched == {"16342", "38"}
    figures._touched = touched  # put back what the assertion took
    await snapshots.refresh()
    # The two touched units, once per window, in one piece: not the four units again.
    assert snapshots.builds == 5 * len(ALL_WINDOWS)
    # Every item equals one built from all the figures at once, untouched units kept.
    for window in ALL_WINDOWS:
        direct = built_directly(figures, targets, clocks, window=[window])
        assert answer(snapshots, targets, window=[window])["items"] == direct


async def test_selection_equals_the_full_build_for_every_filter() -> None:
    figures, snapshots, clocks, targets = setup(piece=1)  # one unit a piece: many pieces
    figures.apply(TP, Deltas.of([c(NOW, units=("01843", "19")), c(NOW, 0)]), Periods.at(NOW))
    figures.apply(OTHER_TP, Deltas.of([c(NOW, units=("16342", "38"))]), Periods.at(NOW))
    await snapshots.publish()
    queries: list[dict[str, list[str]]] = [
        {},
        {"window": ["day", "month"]},
        {"unit": ["19", "16342"]},
        {"province": ["38"]},
        {"level": ["province"], "window": ["year"]},
        {"level": ["commune"], "province": ["19"]},
        {"kpi": ["document_signing"], "unit": ["404"]},
    ]
    for params in queries:
        assert answer(snapshots, targets, **params)["items"] == built_directly(
            figures, targets, clocks, **params
        ), params


async def test_a_revoked_partition_leaves_the_next_snapshot() -> None:
    figures, snapshots, clocks, targets = setup()
    figures.apply(OTHER_TP, Deltas.of([c(NOW, units=("16342", "38"))]), Periods.at(NOW))
    await snapshots.publish()
    assert answer(snapshots, targets, unit=["16342"])["items"]
    figures.revoke(OTHER_TP)
    clocks.advance(1)
    assert await snapshots.refresh() is True
    body = answer(snapshots, targets, unit=["16342"])
    assert body["items"] == [] and body["partitions"] == ["egov.documents[0]"]


async def test_windows_roll_with_the_clock_without_a_step() -> None:
    figures, snapshots, clocks, targets = setup()
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    await snapshots.publish()
    assert [i["denominator"] for i in answer(snapshots, targets, unit=["01843"])["items"]] == [1]
    clocks.advance(24 * 3600)  # tomorrow: the day window is 0/0 again
    assert await snapshots.refresh() is True
    day = answer(snapshots, targets, unit=["01843"], window=["day"])["items"]
    assert [(i["denominator"], i["period_start"][:10]) for i in day] == [(0, "2026-11-24")]


async def test_before_the_first_build_no_unit_is_known() -> None:
    figures, snapshots, _, targets = setup()
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    body = answer(snapshots, targets)
    assert body["items"] == [] and body["partitions"] == []  # unknown, never 0
    assert snapshots.builds == 0 and snapshots.due()  # built at once, not after a wait
    await snapshots.refresh()
    assert [i["unit"] for i in answer(snapshots, targets, window=["day"])["items"]] == [
        "01843",
        "19",
    ]


def test_a_bad_window_is_a_problem_naming_it() -> None:
    _, snapshots, _, targets = setup()
    response = kpis_answer({"window": ["week"]}, snapshots, targets, "unit-worker")
    assert response.status == 400 and response.content_type == "application/problem+json"
    assert "week" in orjson.loads(response.body)["detail"]  # type: ignore[arg-type]


@pytest.mark.parametrize("piece", [1, 3, 2000])
async def test_a_full_build_in_pieces_equals_one_build(piece: int) -> None:
    figures, snapshots, clocks, targets = setup(piece=piece)
    units = [("01843", "19"), ("16342", "38"), ("16351", "38"), ("01837", "19")]
    figures.apply(TP, Deltas.of([c(NOW, units=u) for u in units]), Periods.at(NOW))
    await snapshots.publish()
    assert answer(snapshots, targets)["items"] == built_directly(figures, targets, clocks)


async def test_a_committed_step_schedules_the_next_snapshot_itself() -> None:
    """Wired to the figures, a step is published without waiting for the timer's tick."""
    figures, snapshots, clocks, targets = setup()
    await snapshots.publish()
    figures.on_change = snapshots.poke
    clocks.advance(5)  # the last snapshot is older than the interval: publish at once
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))  # one refresh for both
    scheduled = snapshots._scheduled
    assert scheduled is not None
    await scheduled
    body = answer(snapshots, targets, unit=["01843"], window=["day"])
    assert [i["denominator"] for i in body["items"]] == [2]
    assert snapshots.builds == len(ALL_WINDOWS)  # one refresh (the first had no unit)


async def test_activity_is_answered_from_the_snapshot_too() -> None:
    figures, snapshots, clocks, _ = setup()
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    await snapshots.publish()
    later = NOW + timedelta(minutes=1)
    figures.apply(TP, Deltas.of([c(later)]), Periods.at(later))  # not published yet

    def units_seen() -> list[tuple[str, str]]:
        body = orjson.loads(activity_answer(snapshots, "unit-worker").body)  # type: ignore[arg-type]
        return [(i["unit"], i["last_event_time"]) for i in body["items"]]

    assert units_seen() == [
        ("01843", "2026-11-23T10:00:00+07:00"),
        ("19", "2026-11-23T10:00:00+07:00"),
    ]
    clocks.advance(1)
    await snapshots.refresh()
    assert units_seen() == [
        ("01843", "2026-11-23T10:01:00+07:00"),
        ("19", "2026-11-23T10:01:00+07:00"),
    ]


async def test_the_snapshots_count_themselves_for_prometheus() -> None:
    figures, snapshots, clocks, targets = setup()
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshots))
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    await snapshots.publish()
    for _ in range(50):
        answer(snapshots, targets, window=["day"])
    clocks.advance(2.5)
    assert registry.get_sample_value("egov_metrics_snapshots_total") == 1
    assert registry.get_sample_value("egov_metrics_snapshot_builds_total") == len(ALL_WINDOWS)
    assert registry.get_sample_value("egov_metrics_snapshot_age_seconds") == 2.5


async def test_a_window_repeated_is_answered_once() -> None:
    figures, snapshots, _, targets = setup()
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    await snapshots.publish()
    once = answer(snapshots, targets, window=["day", "month"])["items"]
    repeated = answer(snapshots, targets, window=["day", "month"] * 1000)["items"]
    assert repeated == once and len(once) == 4


async def test_caught_up_publishes_before_the_interval() -> None:
    """The counting committed all it read: the next snapshot need not wait the interval."""
    figures, snapshots, clocks, targets = setup()
    await snapshots.publish()
    figures.on_change = snapshots.poke
    clocks.advance(0.2)  # the interval is 1 s: a poke alone would wait 0.8 s more
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    snapshots.caught_up()
    scheduled = snapshots._scheduled
    assert scheduled is not None
    await asyncio.wait_for(scheduled, 0.5)
    body = answer(snapshots, targets, unit=["01843"], window=["day"])
    assert [i["denominator"] for i in body["items"]] == [1]


async def test_caught_up_waits_in_proportion_to_the_last_build() -> None:
    """A snapshot that took long keeps caught-up ones to a share of the loop."""
    figures, snapshots, clocks, _ = setup()
    await snapshots.publish()
    snapshots._build_s = 0.05  # the next one may come 0.05 / CAUGHT_UP_COST_SHARE after
    clocks.advance(0.2)
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    assert not snapshots.due(0.05 / CAUGHT_UP_COST_SHARE)
    snapshots.caught_up()
    await asyncio.sleep(0.01)
    assert snapshots.published == 1  # still waiting
    clocks.advance(0.4)
    await asyncio.wait_for(snapshots._scheduled, 1.0)  # type: ignore[arg-type]
    assert snapshots.published == 2


async def test_caught_up_while_building_publishes_again_after() -> None:
    figures, snapshots, clocks, targets = setup()
    await snapshots.publish()
    clocks.advance(5)
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    snapshots.caught_up()
    first = snapshots._scheduled
    await asyncio.sleep(0)  # the refresh starts building
    snapshots._sleeping = False
    snapshots.caught_up()  # what it missed: published right after it
    assert snapshots._caught_up_again
    await first  # type: ignore[misc]
    clocks.advance(5)
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    await asyncio.sleep(0.01)
    assert snapshots._scheduled is not first
    await snapshots._scheduled  # type: ignore[misc]
    body = answer(snapshots, targets, unit=["01843"], window=["day"])
    assert [i["denominator"] for i in body["items"]] == [2]


async def test_behind_a_change_waits_the_interval_from_when_it_fell_behind() -> None:
    """A burst of records is not interrupted by a build at its start: the last snapshot
    being old, the first step of a backlog would otherwise build at once."""
    figures, snapshots, clocks, _ = setup()
    await snapshots.publish()
    behind = [True]
    snapshots.reading_behind = lambda: behind[0]
    figures.on_change = snapshots.poke
    clocks.advance(5)
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))  # falls behind now
    assert not snapshots.due()
    clocks.advance(0.5)
    assert await snapshots.refresh() is False  # the timer's tick: still within the interval
    clocks.advance(0.5)
    assert snapshots.due()  # an interval after falling behind, however far behind
    behind[0] = False
    snapshots.caught_up()  # and once caught up, at once
    await asyncio.wait_for(snapshots._scheduled, 0.5)  # type: ignore[arg-type]
    assert snapshots.published == 2


async def test_a_snapshot_owed_from_before_a_burst_waits_for_it() -> None:
    """Caught up after a costly build, the next snapshot waits (its cost share); a burst
    that comes meanwhile is not interrupted by it until the interval has passed."""
    figures, snapshots, clocks, _ = setup()
    await snapshots.publish()
    snapshots._build_s = 0.05  # the next caught-up one may come 0.5 s after the last
    behind = [False]
    snapshots.reading_behind = lambda: behind[0]
    figures.on_change = snapshots.poke
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    snapshots.caught_up()
    behind[0] = True  # a burst starts before it is due
    clocks.advance(0.3)
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    clocks.advance(0.3)
    assert not snapshots.due(0.5)  # owed, but the burst goes first
    clocks.advance(0.8)
    assert snapshots.due(0.5)  # the interval since the burst began


async def test_a_snapshot_owed_from_before_a_burst_waits_for_it_before_any_change() -> None:
    """The owed build comes due while the burst is read but before its first flush has
    changed any figure: it waits for the burst's end (or the interval) all the same."""
    figures, snapshots, clocks, _ = setup()
    await snapshots.publish()
    snapshots._build_s = 0.05  # the next caught-up one may come 0.5 s after the last
    behind = [False]
    snapshots.reading_behind = lambda: behind[0]
    figures.on_change = snapshots.poke
    figures.apply(TP, Deltas.of([c(NOW)]), Periods.at(NOW))
    snapshots.caught_up()
    behind[0] = True  # a burst is being read; nothing of it counted yet
    clocks.advance(0.6)
    assert await snapshots.refresh(0.5) is False  # the owed build's turn: the burst first
    assert snapshots.published == 1
    clocks.advance(0.5)
    assert not snapshots.due(0.5)  # within the interval (1 s) of when it fell behind
    clocks.advance(0.6)
    assert snapshots.due(0.5)  # an interval after it fell behind, however far behind
    behind[0] = False
    snapshots.caught_up()  # or at once when it has caught up
    await asyncio.wait_for(snapshots._scheduled, 0.5)  # type: ignore[arg-type]
    assert snapshots.published == 2
