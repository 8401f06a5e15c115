"""/v1/kpis/history's ``target_bp``: each day with the target in force that day (review 67).

A past day is judged against its own target, not today's: once a dated target changes
(1 January, a province's plan, data/targets.json), last December keeps the 100 % it was
held to. Pure: the real catalogue, registry and crosswalk; rows handed in."""

from __future__ import annotations

import asyncio
from datetime import date

import orjson

from services.common.paths import UNITS_DIR
from services.common.targets import Override, Scope
from services.metrics import history
from services.metrics.eras import Crosswalk
from services.metrics.history import HistoryQuery
from services.metrics.targets import Targets
from services.metrics.web import history_answer
from tests.unit.metrics.helpers import catalogue, registry

TODAY = date(2027, 1, 5)
CROSSWALK = Crosswalk.from_dir(UNITS_DIR)
PLAN_2027 = Override(
    Scope(province="19", level="commune"), "document_signing", 9500,
    valid_from=date(2027, 1, 1), reason="Kế hoạch 2027",
)  # fmt: skip


def parse(unit: str, kpi: str = "document_signing", **params: str) -> HistoryQuery:
    lists = {"unit": [unit], "kpi": [kpi]} | {k: [v] for k, v in params.items()}
    return HistoryQuery.parse(lists, registry(), CROSSWALK, TODAY, 800)


def targets(*overrides: Override) -> Targets:
    found = Targets(catalogue(), registry(), lambda: TODAY)
    found.overrides = overrides
    return found


def day_targets(body: dict[str, object]) -> list[tuple[str, int | None]]:
    items = body["items"]
    assert isinstance(items, list)
    return [(i["day"], i["target_bp"]) for i in items]


def test_each_day_carries_the_target_in_force_that_day_across_a_new_year() -> None:
    query = parse("01843", days="10")  # a commune of Thái Nguyên (19)
    rows = [(date(2026, 12, 30), 96, 100), (date(2026, 12, 31), 96, 100),
            (date(2027, 1, 1), 96, 100), (date(2027, 1, 5), 96, 100)]  # fmt: skip
    on = history.targets_on(targets(PLAN_2027), registry(), query)
    assert day_targets(history.answer(query, rows, on)) == [
        ("2026-12-30", 10000),
        ("2026-12-31", 10000),
        ("2027-01-01", 9500),
        ("2027-01-05", 9500),
    ]


def test_a_catalogue_default_changing_on_a_date_is_followed_day_by_day() -> None:
    # document_signing: the old 95 % for communes until 31 January 2020, then 100 %
    # (Directive 02/CT-TTg, data/targets.json).
    query = parse("01843", year="2020")
    rows = [(date(2020, 1, 31), 1, 1), (date(2020, 2, 1), 1, 1)]
    on = history.targets_on(targets(), registry(), query)
    assert day_targets(history.answer(query, rows, on)) == [
        ("2020-01-31", 9500),
        ("2020-02-01", 10000),
    ]


def test_a_restated_day_takes_the_target_of_todays_unit() -> None:
    # 16342 is restated before the reform; a unit override of today's 16342 applies to
    # those days too, as they are shown on today's boundaries.
    query = parse("16342", year="2025")
    ours = Override(Scope(unit="16342"), "document_signing", 9000)
    on = history.targets_on(targets(ours), registry(), query)
    body = history.answer(query, [(date(2025, 3, 2), 29, 30), (date(2025, 9, 1), 5, 8)], on)
    assert day_targets(body) == [("2025-03-02", 9000), ("2025-09-01", 9000)]


def test_a_retired_kpi_has_no_target_on_any_day() -> None:
    query = parse("01843", kpi="no_longer_counted", days="3")
    on = history.targets_on(targets(), registry(), query)
    assert day_targets(history.answer(query, [(TODAY, 1, 2)], on)) == [("2027-01-05", None)]


def test_without_targets_the_field_is_there_and_null() -> None:
    """Callers that pass no targets still answer the same shape (clients ignoring the
    field read every other field as before)."""
    body = history.answer(parse("01843", days="3"), [(TODAY, 1, 2)])
    [item] = body["items"]
    assert item == {"day": "2027-01-05", "numerator": 1, "denominator": 2, "ratio": 0.5,
                    "rate_bp": 5000, "restated": False, "target_bp": None}  # fmt: skip
    assert "target_bp" not in body["years"][0]


async def test_the_served_answer_carries_each_days_target() -> None:
    query = parse("01843", days="10")

    async def read(_: HistoryQuery) -> list[tuple[date, int, int]]:
        return [(date(2026, 12, 31), 96, 100), (TODAY, 96, 100)]

    on = history.targets_on(targets(PLAN_2027), registry(), query)
    answered = await history_answer(query, read, asyncio.Semaphore(1), 1.0, on)
    body = orjson.loads(answered.body)  # type: ignore[arg-type]
    assert day_targets(body) == [("2026-12-31", 10000), ("2027-01-05", 9500)]
