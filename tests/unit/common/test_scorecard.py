"""Decision 766's scorecard: the cited data file, exact points, states, what costs most."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.figures import Figure
from services.common.kpis import KpiCatalogue
from services.common.scorecard import (
    SCORECARD_766,
    Group,
    Indicator,
    Period,
    PointsRule,
    Scorecard,
    ScorecardDataError,
    State,
    format_points,
    points_hundredths,
    score,
)
from services.common.units import VN_TZ

NOV = Period("month", 2026, 11)


@pytest.fixture(scope="module")
def card() -> Scorecard:
    return Scorecard.load(kpi_ids=KpiCatalogue.load().ids)


def on_time(n: int, d: int, unit: str = "404", window: str = "month", **kw: object) -> Figure:
    return Figure("dossier_on_time", unit, window, n, d, 9000, 10, **kw)  # type: ignore[arg-type]


def test_the_file_has_five_groups_of_the_decision_adding_to_100(card: Scorecard) -> None:
    assert [(g.id, g.max_points) for g in card.groups] == [
        ("publicity", 18),
        ("timeliness", 20),
        ("online", 22),
        ("digitisation", 22),
        ("satisfaction", 18),
    ]
    assert card.decision == "766/QĐ-TTg"


def test_every_indicator_cites_known_sources_and_says_why_when_not_measured() -> None:
    raw = json.loads(SCORECARD_766.read_text(encoding="utf-8"))
    sources = set(raw["sources"])
    for group in raw["groups"]:
        for ind in group["indicators"]:
            cited = {ind["formula_source"], ind["max_points_source"], ind["points"]["source"]}
            assert cited <= sources, ind["id"]
            assert "766/QĐ-TTg" in ind["citation"]
            if ind["kpi"] is None or ind["points"]["rule"] == "not_given":
                assert ind["not_measured_en"] and ind["not_measured_vi"], ind["id"]


def test_timeliness_digitisation_and_satisfaction_are_measured_by_their_kpis(
    card: Scorecard,
) -> None:
    measured = [(i.id, i.kpi, i.max_points) for i in card.indicators if i.measured]
    assert measured == [
        ("2.1", "dossier_on_time", 20),
        ("4.1", "dossier_electronic_result", 6),
        ("4.2", "dossier_digitised", 4),
        ("4.5b", "dossier_population_data", 2),
        ("5.4", "dossier_satisfaction", 6),
    ]
    # each of them counts a rate that is not exactly the portal's, and says how
    assert all(i.deviation_en and i.deviation_vi for i in card.indicators if i.measured)


def test_the_new_indicators_score_with_their_thresholds(card: Scorecard) -> None:
    def fig(kpi: str, n: int, d: int) -> Figure:
        return Figure(kpi, "404", "month", n, d, 9000, 10)

    figures = [
        on_time(885, 1_000),  # 17.7 of 20
        fig("dossier_electronic_result", 50, 100),  # 3 of 6: in proportion
        fig("dossier_digitised", 80, 100),  # 4 of 4: full from 80 %
        fig("dossier_population_data", 1, 4),  # 0.5 of 2
        fig("dossier_satisfaction", 45, 100),  # 3 of 6: 45 % of the 90 % for full
    ]
    s = score(card, figures, "404", NOV)
    points = {i.indicator.id: i.points for i in s.indicators if i.state is State.MEASURED}
    assert points == {
        "2.1": Fraction(177, 10),
        "4.1": 3,
        "4.2": 4,
        "4.5b": Fraction(1, 2),
        "5.4": 3,
    }
    assert s.measured_max == 38
    assert s.points == Fraction(177, 10) + Fraction(21, 2)
    low = next(i for i in s.indicators if i.indicator.id == "4.5b")
    assert low.low_volume  # 4 dossiers, below the KPI's 10


def test_proportional_points_are_exact_fractions_of_the_counts() -> None:
    rule = PointsRule(True)
    points = rule.points(20, 11_703, 11_710)
    assert points == Fraction(20 * 11_703, 11_710)
    assert isinstance(points, Fraction)
    assert rule.points(20, 0, 5) == 0
    assert rule.points(20, 5, 5) == 20


def test_a_threshold_earns_the_maximum_from_it_and_a_share_below() -> None:
    rule = PointsRule(True, full_at_bp=8000)
    assert rule.points(4, 80, 100) == 4
    assert rule.points(4, 100, 100) == 4
    assert rule.points(4, 40, 100) == 2
    assert rule.points(4, 7_999, 10_000) == Fraction(4 * 7_999, 8_000)


@given(
    max_points=st.integers(0, 22),
    full_at_bp=st.integers(1, 10_000),
    d=st.integers(1, 10**9),
    data=st.data(),
)
def test_points_stay_within_the_maximum_and_grow_with_the_rate(
    max_points: int, full_at_bp: int, d: int, data: st.DataObject
) -> None:
    n = data.draw(st.integers(0, d))
    rule = PointsRule(True, full_at_bp)
    points = rule.points(max_points, n, d)
    assert points is not None and 0 <= points <= max_points
    reached = n * 10_000 >= full_at_bp * d
    assert (points == max_points) is (reached or max_points == 0)
    if n < d:
        more = rule.points(max_points, n + 1, d)
        assert more is not None and more >= points


def test_an_empty_period_claims_nothing_unless_the_source_scores_it_full() -> None:
    assert PointsRule(True).points(20, 0, 0) is None
    assert PointsRule(True, full_when_none=True).points(6, 0, 0) == 6
    with pytest.raises(ValueError, match="outside"):
        PointsRule(True).points(20, 6, 5)


def test_points_round_half_up_from_the_fraction() -> None:
    assert points_hundredths(Fraction(1, 200)) == 1  # 0.005 is 0.01
    assert points_hundredths(Fraction(1, 201)) == 1  # earned, so never "0,00"
    assert points_hundredths(Fraction(0)) == 0
    assert points_hundredths(Fraction(19_999, 1_000), 20) == 1999  # not "20,00" of 20
    assert points_hundredths(Fraction(20), 20) == 2000
    assert points_hundredths(Fraction(19_999, 1_000)) == 2000  # no maximum, no end kept
    assert points_hundredths(Fraction(20 * 2_9, 100)) == 580  # 5.8 exactly (0.29 * 20)
    assert format_points(Fraction(177, 10), "vi") == "17,70"
    assert format_points(Fraction(177, 10), "en") == "17.70"
    assert format_points(Fraction(123_456, 100), "vi") == "1.234,56"


def test_a_unit_scores_its_measured_points_and_says_how_many_of_100_are_measured(
    card: Scorecard,
) -> None:
    s = score(card, [on_time(885, 1_000)], "404", NOV)
    assert s.points == Fraction(177, 10)
    assert s.measured_max == 20
    timeliness = next(g for g in s.groups if g.group.id == "timeliness")
    assert (timeliness.points, timeliness.measured_max) == (Fraction(177, 10), 20)
    publicity = next(g for g in s.groups if g.group.id == "publicity")
    assert (publicity.points, publicity.measured_max, publicity.group.max_points) == (0, 0, 18)
    states = {i.indicator.id: i.state for i in s.indicators}
    assert states["2.1"] is State.MEASURED
    assert states["1.4"] is State.NOT_MEASURED
    assert all(i.points is None for i in s.indicators if i.state is State.NOT_MEASURED)


def test_only_the_unit_and_the_period_window_count(card: Scorecard) -> None:
    figures = [on_time(1, 1, unit="405"), on_time(1, 1, window="year"), on_time(50, 100)]
    s = score(card, figures, "404", NOV)
    assert s.points == 10
    ytd = Period("ytd", 2026, through=date(2026, 12, 4))
    assert score(card, figures, "404", ytd).points == 20


def test_figures_of_another_period_do_not_count(card: Scorecard) -> None:
    october = datetime(2026, 10, 1, tzinfo=VN_TZ)
    november = datetime(2026, 10, 31, 17, tzinfo=UTC)  # 1 Nov 00:00 in Vietnam
    stale = score(card, [on_time(1, 2, period_start=october)], "404", NOV)
    assert next(i for i in stale.indicators if i.indicator.id == "2.1").state is State.NO_DATA
    assert score(card, [on_time(1, 2, period_start=november)], "404", NOV).points == 10
    q4 = Period("quarter", 2026, 4)
    assert q4.start == date(2026, 10, 1)
    assert score(card, [on_time(1, 2, "404", "quarter", period_start=october)], "404", q4).points


def test_two_figures_of_one_kpi_are_refused(card: Scorecard) -> None:
    with pytest.raises(ValueError, match="two month figures"):
        score(card, [on_time(1, 2), on_time(2, 2)], "404", NOV)


def test_nothing_counted_is_no_data_not_zero_points(card: Scorecard) -> None:
    for figures in ([], [on_time(0, 0)]):
        s = score(card, figures, "404", NOV)
        timeliness = next(i for i in s.indicators if i.indicator.id == "2.1")
        assert timeliness.state is State.NO_DATA
        assert (s.points, s.measured_max, s.costliest()) == (0, 0, None)


def test_low_volume_is_flagged_beside_the_points(card: Scorecard) -> None:
    few = score(card, [on_time(3, 4)], "404", NOV).indicators
    many = score(card, [on_time(30, 40)], "404", NOV).indicators
    assert next(i for i in few if i.indicator.id == "2.1").low_volume
    assert not next(i for i in many if i.indicator.id == "2.1").low_volume


def test_the_time_of_the_figures_is_their_newest_event(card: Scorecard) -> None:
    at = datetime(2026, 11, 30, 17, 5, tzinfo=VN_TZ)
    assert score(card, [on_time(1, 2, last_event_time=at)], "404", NOV).as_of == at


def _synthetic() -> Scorecard:
    def ind(id_: str, kpi: str, max_points: int) -> Indicator:
        return Indicator(id_, "g", id_, id_, max_points, "", "", PointsRule(True), "", kpi)

    group = Group("g", 1, "g", "g", 100, (ind("a", "k1", 60), ind("b", "k2", 40)))
    return Scorecard("766/QĐ-TTg", (group,))


def test_the_costliest_indicator_is_the_one_losing_most_points() -> None:
    card = _synthetic()

    def fig(kpi: str, n: int, d: int) -> Figure:
        return Figure(kpi, "u", "month", n, d, 9000, 0)

    # a: 60 * 90% = 54 (loses 6); b: 40 * 80% = 32 (loses 8): b costs more at a higher rate
    s = score(card, [fig("k1", 9, 10), fig("k2", 8, 10)], "u", NOV)
    worst = s.costliest()
    assert worst is not None and worst.indicator.id == "b" and worst.lost == 8
    tie = score(card, [fig("k1", 9, 10), fig("k2", 17, 20)], "u", NOV).costliest()
    assert tie is not None and tie.indicator.id == "a"  # 6 each: the decision's order
    assert score(card, [fig("k1", 1, 1), fig("k2", 1, 1)], "u", NOV).costliest() is None


def _broken(tmp_path: Path, change: str) -> Path:
    raw = json.loads(SCORECARD_766.read_text(encoding="utf-8"))
    first = raw["groups"][1]["indicators"][0]
    if change == "max":
        first["max_points"] = 19
    elif change == "kpi":
        first["kpi"] = "dossier_nope"
    elif change == "reason":
        raw["groups"][0]["indicators"][0]["not_measured_en"] = ""
    path = tmp_path / "scorecard.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [("max", "add to 19"), ("kpi", "no KPI"), ("reason", "no reason")],
)
def test_a_malformed_file_is_refused(tmp_path: Path, change: str, message: str) -> None:
    with pytest.raises(ScorecardDataError, match=message):
        Scorecard.load(_broken(tmp_path, change), kpi_ids=KpiCatalogue.load().ids)


def test_periods_are_labelled_and_checked() -> None:
    assert (NOV.label("vi"), NOV.label("en"), NOV.window) == ("Tháng 11/2026", "Nov 2026", "month")
    q4 = Period("quarter", 2026, 4)
    assert (q4.label("vi"), q4.label("en"), q4.window) == ("Quý 4/2026", "Q4 2026", "quarter")
    ytd = Period("ytd", 2026, through=date(2026, 12, 4))
    assert ytd.label("vi") == "Năm 2026 đến 04/12/2026"
    assert ytd.label("en") == "2026 to 4 Dec 2026"
    with pytest.raises(ValueError):
        Period("month", 2026, 13)
    with pytest.raises(ValueError):
        Period("ytd", 2026)
