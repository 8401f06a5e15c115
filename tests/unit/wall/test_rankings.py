"""Rankings: low volume listed apart, exact rates, shared ranks, the 766 score."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.figures import Figure
from services.common.scorecard import Period, Scorecard
from services.wall.rankings import SCORE, Entry, levels_of, rank_kpi, rank_score

PROVINCE = "38"


def commune(
    code: str,
    n: int,
    d: int,
    kpi: str = "document_signing",
    window: str = "day",
    min_volume: int = 20,
) -> Figure:
    return Figure(
        kpi, code, window, n, d, 9500, min_volume,
        unit_name=f"Xã {code}", unit_name_en=f"Commune {code}", level="commune",
        province=PROVINCE, parent=PROVINCE,
    )  # fmt: skip


def province_figure() -> Figure:
    return Figure("document_signing", PROVINCE, "day", 5, 6, 9500, 20, level="province",
                  province=PROVINCE)  # fmt: skip


def codes(entries: tuple[Entry, ...]) -> list[str]:
    return [e.unit.code for e in entries]


def test_one_of_one_never_tops_990_of_1000() -> None:
    r = rank_kpi([commune("a", 1, 1), commune("b", 990, 1000)], "document_signing",
                 PROVINCE, "commune", "day")  # fmt: skip
    assert codes(r.ranked) == ["b"] and r.ranked[0].rank == 1
    assert codes(r.apart) == ["a"] and r.apart[0].rank is None and r.apart[0].low_volume
    assert r.min_volume == 20


def test_listed_apart_highest_rate_first() -> None:
    figures = [commune("a", 5, 10), commune("b", 1, 1), commune("c", 18, 19), commune("d", 0, 3)]
    r = rank_kpi(figures, "document_signing", PROVINCE, "commune", "day")
    assert codes(r.apart) == ["b", "c", "a", "d"] and r.ranked == ()


def test_exactly_at_the_minimum_volume_is_ranked() -> None:
    r = rank_kpi([commune("a", 20, 20), commune("b", 18, 19)], "document_signing",
                 PROVINCE, "commune", "day")  # fmt: skip
    assert codes(r.ranked) == ["a"] and codes(r.apart) == ["b"]


def test_rates_are_compared_exactly_not_as_shown() -> None:
    # Both read 66,67 %; 6,667 of 10,000 is above 2 of 3 by 1/30,000.
    r = rank_kpi([commune("a", 20, 30), commune("b", 6667, 10_000)], "document_signing",
                 PROVINCE, "commune", "day")  # fmt: skip
    assert codes(r.ranked) == ["b", "a"]
    assert [e.rank for e in r.ranked] == [1, 2]


def test_equal_rates_share_a_rank_larger_volume_first() -> None:
    r = rank_kpi(
        [commune("a", 27, 30), commune("b", 90, 100), commune("c", 50, 100)],
        "document_signing", PROVINCE, "commune", "day",
    )  # fmt: skip
    assert codes(r.ranked) == ["b", "a", "c"]
    assert [e.rank for e in r.ranked] == [1, 1, 3]
    assert r.ranked[0].value == Fraction(9, 10)


def test_units_without_a_figure_or_with_nothing_counted_are_no_data() -> None:
    figures = [
        commune("a", 30, 30),
        commune("b", 0, 0),
        commune("c", 5, 40, kpi="document_electronic"),
        province_figure(),
    ]
    r = rank_kpi(figures, "document_signing", PROVINCE, "commune", "day")
    assert codes(r.ranked) == ["a"] and codes(r.no_data) == ["b", "c"]
    assert r.apart == ()


def test_only_the_level_province_and_window_asked_for() -> None:
    other = Figure("document_signing", "x", "day", 9, 9, 9500, 1, level="commune",
                   province="19", parent="19")  # fmt: skip
    figures = [commune("a", 25, 30), commune("a", 1, 100, window="month"), other]
    r = rank_kpi(figures, "document_signing", PROVINCE, "commune", "day")
    assert codes(r.ranked) == ["a"] and r.ranked[0].numerator == 25
    assert levels_of([*figures, province_figure()], PROVINCE) == ["commune"]


@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.integers(0, 200), st.integers(1, 50)),
        min_size=1,
        max_size=25,
    )
)
def test_ranked_rates_never_rise_and_every_ranked_unit_has_the_volume(
    rows: list[tuple[int, int, int]],
) -> None:
    figures = [
        commune(f"{i:03d}", min(a, b), max(a, b), min_volume=m) for i, (a, b, m) in enumerate(rows)
    ]
    r = rank_kpi(figures, "document_signing", PROVINCE, "commune", "day")
    assert len(r.ranked) + len(r.apart) + len(r.no_data) == len(rows)
    for e in r.ranked:
        assert e.denominator >= e.min_volume and e.denominator > 0
    for e in r.apart:
        assert 0 < e.denominator < e.min_volume and e.rank is None
    for above, below in zip(r.ranked, r.ranked[1:], strict=False):
        assert above.value is not None and below.value is not None
        assert above.value >= below.value
        assert above.rank is not None and below.rank is not None
        if above.value == below.value:
            assert above.rank == below.rank and above.denominator >= below.denominator
        else:
            assert below.rank > above.rank


@pytest.fixture(scope="module")
def card() -> Scorecard:
    return Scorecard.load()


def test_by_score_the_measured_share_and_low_volume_apart(card: Scorecard) -> None:
    figures = [
        commune("a", 9, 9, kpi="dossier_on_time", window="month", min_volume=10),
        commune("b", 95, 100, kpi="dossier_on_time", window="month", min_volume=10),
        commune("c", 40, 50, kpi="dossier_on_time", window="month", min_volume=10),
        commune("d", 50, 60, kpi="document_signing", window="month"),
    ]
    r = rank_score(card, figures, PROVINCE, "commune", Period("month", 2026, 12))
    assert r.key == SCORE and r.window == "month"
    assert codes(r.ranked) == ["b", "c"] and [e.rank for e in r.ranked] == [1, 2]
    # 95 of 100 on time: 19 of the 20 measured points.
    top = r.ranked[0]
    assert top.score is not None and top.score.points == 19 and top.value == Fraction(19, 20)
    assert (top.numerator, top.denominator) == (95, 100)
    assert codes(r.apart) == ["a"] and r.apart[0].min_volume == 10
    assert codes(r.no_data) == ["d"]
