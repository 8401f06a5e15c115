"""/v1/kpis/history: bounded parameters, and figures across the 2025 reform (issues 15, 16).

Pure: the query is parsed against the real unit registry and crosswalk; the stored rows
are handed in as PostgreSQL would return them (tests/integration/metrics/test_eras.py
reads them from a real database)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

import orjson
import pytest

from services.common.paths import UNITS_DIR
from services.common.tally import Deltas
from services.metrics import history
from services.metrics.api import QueryError
from services.metrics.eras import Crosswalk, Lineage, era_of_day, era_start
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.history import HistoryQuery, LimitError
from services.metrics.periods import Periods
from services.metrics.web import history_answer
from tests.unit.metrics.helpers import registry
from tests.unit.metrics.test_figures import c

TODAY = date(2026, 12, 4)
CROSSWALK = Crosswalk.from_dir(UNITS_DIR)
MAX_DAYS = 800


def parse(**params: str | list[str]) -> HistoryQuery:
    lists = {k: v if isinstance(v, list) else [v] for k, v in params.items()}
    return HistoryQuery.parse(lists, registry(), CROSSWALK, TODAY, MAX_DAYS)


@pytest.mark.parametrize("days", ["801", "100000000000000000000000000000", "0", "-5"])
def test_days_outside_the_limit_is_refused_naming_it(days: str) -> None:
    with pytest.raises(LimitError) as refused:
        parse(unit="19", kpi="document_signing", days=days)
    assert refused.value.parameter == "days" and refused.value.limit == "1..800"
    assert "1 to 800" in str(refused.value)


def test_the_largest_days_is_answered() -> None:
    query = parse(unit="19", kpi="document_signing", days="800")
    assert (query.first, query.last) == (date(2024, 9, 26), TODAY)
    assert (query.last - query.first).days + 1 == MAX_DAYS


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"unit": "19"}, "required"),
        ({"unit": "19", "kpi": "document_signing", "days": "ten"}, "integer"),
        ({"unit": "19", "kpi": "document_signing", "days": ["1", "2"]}, "once"),
        ({"unit": "99999", "kpi": "document_signing"}, "unknown unit"),
        ({"unit": "19", "kpi": "DROP TABLE"}, "not a KPI id"),
        ({"unit": "19", "kpi": "document_signing", "days": "5", "year": "2025"}, "not both"),
    ],
)
def test_bad_parameters_are_refused_saying_why(params: dict[str, str], says: str) -> None:
    with pytest.raises(QueryError, match=says):
        parse(**params)


def test_a_year_is_read_whole_and_bounded() -> None:
    query = parse(unit="19", kpi="document_signing", year="2025")
    assert (query.first, query.last) == (date(2025, 1, 1), date(2025, 12, 31))
    assert parse(unit="19", kpi="document_signing", year="2026").last == TODAY
    for year in ("1999", "2027", "99999999999999"):
        with pytest.raises(LimitError) as refused:
            parse(unit="19", kpi="document_signing", year=year)
        assert refused.value.parameter == "year" and refused.value.limit == "2000..2026"


def test_the_era_of_a_day_turns_at_the_reform() -> None:
    assert era_of_day(date(2025, 6, 30)) == "2024"
    assert era_of_day(date(2025, 7, 1)) == "2025"
    assert era_start(TODAY) == date(2025, 7, 1)
    assert era_start(date(2025, 6, 30)) == date.min


def test_a_reused_code_reads_its_predecessors_not_its_old_unit() -> None:
    # 00103 was Phường Xuân La until 2025-06-30 and is Phường Tây Hồ since; Xuân La went
    # to other wards (only partly, if at all, to Tây Hồ): never read as Tây Hồ's history.
    assert registry().get("00103", "2024").name == "Xuân La"
    assert registry().get("00103", "2025").name == "Tây Hồ"
    lineage = Lineage.of("00103", registry(), CROSSWALK)
    assert lineage is not None
    assert "00103" not in lineage.whole and "00103" in lineage.left_out
    assert lineage.restated


def test_a_merged_commune_is_restated_from_every_unit_merged_into_it() -> None:
    # 16342: Xã Thăng Long until 2025-06-30, then Xã Thăng Bình = Thăng Long + Thăng Bình
    # (16351) + Thăng Thọ (16360).
    lineage = Lineage.of("16342", registry(), CROSSWALK)
    assert lineage is not None and lineage.whole == ("16342", "16351", "16360")
    assert Lineage.of("19", registry(), CROSSWALK) == Lineage(
        "19", "2025", ("06", "19"), (), False
    )  # Thái Nguyên took in Bắc Kạn
    unchanged = Lineage.of("01", registry(), CROSSWALK)
    assert unchanged is not None and not unchanged.restated  # Hà Nội: its own figures
    old_only = Lineage.of("404", registry(), CROSSWALK)  # huyện Nông Cống: no successor
    assert old_only == Lineage("404", "2024") and not old_only.restated


def test_a_department_is_restated_from_the_departments_of_its_provinces_predecessors() -> None:
    # Bắc Kạn (06) went into Thái Nguyên (19): 19-STTTT's days before the reform are
    # 06-STTTT + 19-STTTT, never presented as its own complete history.
    lineage = Lineage.of("19-STTTT", registry(), CROSSWALK)
    assert lineage == Lineage("19-STTTT", "2025", ("06-STTTT", "19-STTTT"), (), False)
    assert lineage.restated and lineage.restated_on(date(2025, 6, 30))
    assert not lineage.restated_on(date(2025, 7, 1))
    dak_nong = Lineage.of("68-SNV", registry(), CROSSWALK)  # Lâm Đồng took 60 and 67
    assert dak_nong is not None and dak_nong.whole == ("60-SNV", "67-SNV", "68-SNV")
    # Hà Nội's department: alone and unchanged, its own figures as before
    hanoi = Lineage.of("01-STTTT", registry(), CROSSWALK)
    assert hanoi == Lineage("01-STTTT", "2025", ("01-STTTT",), (), True)
    assert not hanoi.restated
    # a department of a dissolved province exists only before the reform
    assert Lineage.of("06-STTTT", registry(), CROSSWALK) == Lineage("06-STTTT", "2024")


def test_the_answer_labels_restated_days_and_year_totals() -> None:
    query = parse(unit="16342", kpi="document_signing", year="2025")
    rows = [(date(2025, 3, 2), 29, 30), (date(2025, 6, 30), 10, 10), (date(2025, 9, 1), 5, 8)]
    body = history.answer(query, rows)
    assert body["restated"] is True
    assert body["restated_from"] == ["16342", "16351", "16360"] and body["left_out"] == []
    assert [(i["day"], i["restated"]) for i in body["items"]] == [
        ("2025-03-02", True),
        ("2025-06-30", True),
        ("2025-09-01", False),
    ]
    assert body["items"][0]["rate_bp"] == 9667  # 29/30, rounded half up from the counts
    [year] = body["years"]
    assert (year["year"], year["numerator"], year["denominator"]) == (2025, 44, 48)
    assert year["restated"] is True and year["rate_bp"] == 9167
    after = history.answer(parse(unit="16342", kpi="document_signing", days="30"), [])
    assert after["restated"] is False and after["restated_from"] == []


def test_backfilled_days_of_the_old_era_never_reach_the_live_figures() -> None:
    """A code reused since the reform: a backfilled 2024-era event under it is stored (and
    read as history), never added to the new unit's live figures."""
    now = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
    old = datetime(2025, 3, 2, 3, 0, tzinfo=UTC)  # Xã Thăng Long's day
    figures = Figures()
    figures.assign(("t", 0), PartitionFigures())
    figures.apply(
        ("t", 0),
        Deltas.of([c(now, units=("16342", "38")), c(old, units=("16342", "404", "38"))]),
        Periods.at(now),
    )
    totals = figures.totals()
    assert totals[("16342", "document_signing")].denominator == 1
    assert ("404", "document_signing") not in totals  # nothing of the old era held


async def test_history_queries_beyond_the_slots_are_told_to_retry() -> None:
    """One slot: a second request waiting longer than its bound is a 503 problem, and the
    first one's answer is whole once its query returns."""
    query = parse(unit="16342", kpi="document_signing", days="30")
    slots = asyncio.Semaphore(1)
    release = asyncio.Event()

    async def slow_read(_: HistoryQuery) -> list[tuple[date, int, int]]:
        await release.wait()
        return [(TODAY, 2, 3)]

    first = asyncio.create_task(history_answer(query, slow_read, slots, 5.0))
    await asyncio.sleep(0)  # the first holds the slot
    refused = await history_answer(query, slow_read, slots, 0.01)
    assert refused.status == 503 and refused.headers["Retry-After"] == "1"
    assert orjson.loads(refused.body)["type"].endswith("/busy")  # type: ignore[arg-type]
    release.set()
    answered = await first
    assert answered.status == 200
    assert [i["numerator"] for i in orjson.loads(answered.body)["items"]] == [2]  # type: ignore[arg-type]
    # The slot is free again.
    assert (await history_answer(query, slow_read, slots, 0.01)).status == 200
