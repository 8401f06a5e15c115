"""The wall's screens as pure data and HTML: the province board, a unit's periods, kiosk."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.common.figures import DossierCounts, Figure
from services.common.scorecard import Period, Scorecard
from services.common.units import VN_TZ
from services.wall.board import (
    ALERT_LIMIT,
    KPI_STRIP_LIMIT,
    WORST_LIMIT,
    build_board,
    tiles,
    worst_units,
)
from services.wall.kiosk import EVERY_MIN_S, parse_kiosk, position
from services.wall.model import Alert
from services.wall.rankings import rank_kpi, rank_score
from services.wall.screens import ROWS_PER_COLUMN, board_html, rankings_html
from services.wall.trend import TrendPoint
from services.wall.unitpage import comparisons, history_days, trends
from tests.unit.wall.factories import snapshot

NOW = datetime(2026, 12, 4, 10, 15, tzinfo=VN_TZ)
MONTH_START = datetime(2026, 12, 1, tzinfo=VN_TZ)


def fig(unit: str, kpi: str, n: int, d: int, window: str = "month", **kw: object) -> Figure:
    level = "province" if unit == "38" else "commune"
    return Figure(
        kpi, unit, window, n, d, 9000, 10, unit_name=f"Xã {unit}", unit_name_en=f"C {unit}",
        kpi_name_vi=kpi, kpi_name_en=kpi, level=level, province="38",
        parent=None if unit == "38" else "38", **{"period_start": MONTH_START, **kw},  # type: ignore[arg-type]
    )  # fmt: skip


@pytest.fixture(scope="module")
def card() -> Scorecard:
    return Scorecard.load()


def alert(i: int, acked: bool = False, severity: str = "warning") -> Alert:
    return Alert(f"a{i}", "KpiBelowTarget", "dossier_on_time", f"c{i}", "month", severity,
                 "firing", "38", "vi", "en", None, "An" if acked else None,
                 NOW if acked else None)  # fmt: skip


def test_board_scores_the_province_month_and_tiles_its_dossiers(card: Scorecard) -> None:
    figures = [
        fig("38", "dossier_on_time", 885, 1000, dossiers=DossierCounts(600, 285, 90, 25)),
        fig("38", "dossier_online", 1100, 1234),
        # last month's on-time figure, still held by a reader: no points this month
        fig("38", "dossier_on_time", 10, 1000, period_start=MONTH_START - timedelta(days=30)),
    ]
    board = build_board(card, snapshot(figures), "38", NOW)
    assert board is not None and board.period.label("vi") == "Tháng 12/2026"
    assert board.score.points * 100 == 1770 and board.score.measured_max == 20
    assert board.tiles == tiles(figures[:2])
    assert (board.tiles.received, board.tiles.resolved, board.tiles.open_overdue) == (1234, 975, 25)
    html = board_html("vi", board)
    assert "17,70" in html and "1.234" in html and "88,50 %" in html and "885 / 1.000" in html
    assert "Mất nhiều điểm nhất: 2.1" in html and "mất 2,30 điểm" in html


def test_board_of_an_unknown_province_is_none(card: Scorecard) -> None:
    assert build_board(card, snapshot([fig("38", "dossier_online", 1, 2)]), "19", NOW) is None


def test_worst_units_once_each_at_their_worst_judged_rate() -> None:
    figures = [
        fig("a", "dossier_on_time", 40, 100),
        fig("a", "dossier_online", 80, 100),
        fig("b", "dossier_on_time", 1, 2),  # 50 % of 2: too few to judge, never "worst"
        fig("c", "dossier_online", 60, 100),
        fig("38", "dossier_online", 10, 100),  # the province itself is not its own unit
    ]
    rows = worst_units(figures, "38")
    assert [(r.unit.code, r.worst.kpi, r.below_count) for r in rows] == [
        ("a", "dossier_on_time", 2),
        ("c", "dossier_online", 1),
    ]


def test_board_cuts_its_lists_to_fit_and_counts_the_rest(card: Scorecard) -> None:
    units = [fig(f"{i:03d}", "dossier_online", i, 100) for i in range(WORST_LIMIT + 3)]
    alerts = [alert(i, acked=i == 0) for i in range(ALERT_LIMIT + 2)] + [
        alert(99, False, "critical")
    ]
    board = build_board(card, snapshot([fig("38", "dossier_online", 1, 2), *units], alerts=alerts),
                        "38", NOW)  # fmt: skip
    assert board is not None
    assert len(board.worst) == WORST_LIMIT and board.worst_total == WORST_LIMIT + 3
    assert board.alerts is not None and len(board.alerts) == ALERT_LIMIT
    assert board.alerts_total == ALERT_LIMIT + 3
    assert board.alerts[0].id == "a99"  # unacknowledged critical first
    assert "a0" not in {a.id for a in board.alerts}  # the acknowledged one is cut first
    html = board_html("en", board)
    assert "and 3 more units below target" in html and "and 3 more alerts" in html


def test_kpi_strip_holds_every_kpi_that_fits_and_counts_the_rest(card: Scorecard) -> None:
    fits = [fig("38", f"k{i:02d}", 95, 100) for i in range(KPI_STRIP_LIMIT)]
    board = build_board(card, snapshot(fits), "38", NOW)
    assert board is not None and [f.kpi for f in board.kpis] == [f.kpi for f in fits]
    assert board.kpis_total == KPI_STRIP_LIMIT and "more indicators" not in board_html("en", board)
    # One KPI too many: the most urgent stay (below target, largest gap first), in id order,
    # and the last cell says how many are not shown.
    grown = [*fits, fig("38", "z_below", 50, 100), fig("38", "a_below", 80, 100)]
    board = build_board(card, snapshot(grown), "38", NOW)
    assert board is not None and len(board.kpis) == KPI_STRIP_LIMIT - 1
    shown = [f.kpi for f in board.kpis]
    assert shown[0] == "a_below" and shown[-1] == "z_below" and shown == sorted(shown)
    assert board.kpis_total == KPI_STRIP_LIMIT + 2
    assert "and 3 more indicators" in board_html("en", board)


def test_alerts_unreadable_is_not_no_alerts(card: Scorecard) -> None:
    board = build_board(card, snapshot([fig("38", "dossier_online", 1, 2)], alerts=None), "38", NOW)
    assert board is not None and board.alerts is None
    assert "could not be loaded" in board_html("en", board)


def points(*rows: tuple[str, int, int]) -> list[TrendPoint]:
    return [TrendPoint(day, n, d) for day, n, d in rows]


def test_periods_compared_are_sums_of_their_days() -> None:
    pts = points(
        ("2026-12-01", 9, 10), ("2026-12-04", 1, 10), ("2026-12-05", 5, 5),  # after today
        ("2026-11-30", 3, 4), ("2026-11-01", 1, 1),
        ("2025-12-04", 2, 2), ("2025-12-31", 1, 3), ("2025-11-30", 7, 7),
        ("2026-01-01", 4, 4), ("2025-01-01", 5, 6),
    )  # fmt: skip
    got = {t.key: (t.numerator, t.denominator) for t in comparisons(pts, date(2026, 12, 4))}
    assert got == {
        "this_month": (10, 20),
        "previous_month": (4, 5),
        "same_month_last_year": (3, 5),
        "ytd": (18, 29),
        "last_year_to_date": (14, 15),
    }


def test_29_february_compares_with_28_february() -> None:
    got = {t.key: t for t in comparisons([], date(2028, 2, 29))}
    assert got["last_year_to_date"].last == date(2027, 2, 28)
    assert got["same_month_last_year"].last == date(2027, 2, 28)


def test_trends_fill_missing_days_with_gaps_and_say_restated() -> None:
    items = [
        {"day": "2025-06-30", "numerator": 1, "denominator": 2, "restated": True},
        {"day": "2026-12-03", "numerator": 3, "denominator": 4},
    ]
    t = trends("document_signing", items, date(2026, 12, 4))
    assert len(t.days) == 14 and t.days[-2].denominator == 4 and t.days[-1].denominator == 0
    assert [m.key for m in t.months][-2:] == ["2026-11", "2026-12"] and len(t.months) == 13
    assert [(y.key, y.denominator) for y in t.years] == [("2025", 2), ("2026", 4)]
    assert t.restated
    assert history_days(date(2026, 12, 4)) == 703 and history_days(date(2026, 12, 31)) <= 731


def test_kiosk_rotates_province_by_province_and_wraps() -> None:
    k = parse_kiosk({"provinces": "38,19,99", "every": "0", "screens": "rankings,x,province"},
                    ["19", "38"], "vi")  # fmt: skip
    assert k.provinces == ("38", "19") and k.screens == ("rankings", "province")
    assert k.every_s == EVERY_MIN_S
    stops = [(s.province, s.screen) for s in k.stops]
    assert stops == [("38", "rankings"), ("38", "province"), ("19", "rankings"), ("19", "province")]
    assert k.stop(5) == k.stops[1]
    assert "at=0" in k.url(4) and "every=1" in k.url(4)
    assert position({"at": "3"}) == 3 and position({"at": "x"}) == 0


def test_kiosk_defaults_to_every_province_with_figures() -> None:
    k = parse_kiosk({}, ["19", "38"], "en")
    assert k.provinces == ("19", "38") and k.every_s == 30 and k.lang == "en"
    assert parse_kiosk({}, [], "vi").stop(0) is None


def test_rankings_page_states_the_rule_and_pages_instead_of_scrolling() -> None:
    per_page = 2 * ROWS_PER_COLUMN
    figures = [
        fig(f"{i:03d}", "dossier_online", 50 + i % 50, 100) for i in range(2 * per_page + 10)
    ]
    figures.append(fig("one", "dossier_online", 1, 1))
    r = rank_kpi(figures, "dossier_online", "38", "commune", "month")
    first = rankings_html("vi", r, [("dossier_online", "Online")], 1)
    assert "dưới 10 mục" in first and "Trang 1/3" in first
    assert first.count('data-rank="') == per_page
    assert 'data-unit="one"' in first.split('class="apart-list"')[1]
    last = rankings_html("vi", r, [("dossier_online", "Online")], 9)
    assert "Trang 3/3" in last and last.count('data-rank="') == 10


def test_a_score_ranking_shows_points_and_items_never_a_rate_of_mixed_kpis(
    card: Scorecard,
) -> None:
    """By score, a unit's volume is its measured indicators' items, added across KPIs:
    a count beside its points, not a percentage (until 2026-12-04 it showed "89,38 %
    (143 / 160)", a rate of nothing; tests/unit/test_review_rates_display.py)."""
    figures = [
        fig("a", "dossier_on_time", 95, 100),
        fig("a", "document_signing", 48, 60),
        fig("b", "dossier_on_time", 9, 9),  # under its minimum volume: listed apart
    ]
    ranking = rank_score(card, figures, "38", "commune", Period("month", 2026, 12))
    for lang, items in (("vi", "mục"), ("en", "items")):
        html = rankings_html(lang, ranking, [("score", "766")], 1)
        row = html.split('data-unit="a"')[1].split("</tr>")[0]
        assert "%" not in row, row
        assert f"{ranking.ranked[0].denominator} {items}" in row, row
        apart = html.split('class="apart-list"')[1]
        assert "%" not in apart.split('data-unit="b"')[1].split("</li>")[0]
        assert f"9 {items}" in apart


def test_names_from_the_sources_are_escaped_on_the_screens(card: Scorecard) -> None:
    evil = "<script>alert(1)</script>"
    bad = Figure("dossier_online", "x", "month", 1, 100, 9000, 10, unit_name=evil,
                 kpi_name_vi=evil, level="commune", province="38", parent="38",
                 period_start=MONTH_START)  # fmt: skip
    board = build_board(card, snapshot([fig("38", "dossier_online", 1, 2), bad]), "38", NOW)
    assert board is not None
    html = board_html("vi", board)
    assert evil not in html and "&lt;script&gt;" in html
    ranked = rankings_html("vi", rank_kpi([bad], "dossier_online", "38", "commune", "month"),
                           [("k", evil)], 1)  # fmt: skip
    assert evil not in ranked and "&lt;script&gt;" in ranked


def test_an_acknowledged_alert_says_who_and_when(card: Scorecard) -> None:
    alerts = [alert(0, acked=True), alert(1)]
    board = build_board(card, snapshot([fig("38", "dossier_online", 1, 2)], alerts=alerts),
                        "38", NOW)  # fmt: skip
    assert board is not None
    html = board_html("vi", board)
    assert "An đã tiếp nhận lúc 04/12/2026 10:15" in html
    assert "Chưa có người tiếp nhận" in html


def test_no_alerts_source_means_no_alerts_panel_on_the_screens(card: Scorecard) -> None:
    # EGOV_ALERTS_URL empty: no panel at all, never "no open alerts" (it read none).
    figures = [fig("38", "dossier_online", 1, 2)]
    board = build_board(card, snapshot(figures, alerts_configured=False), "38", NOW)
    assert board is not None and board.alerts is None and not board.alerts_configured
    for lang in ("en", "vi"):
        html = board_html(lang, board)
        assert "panel alerts" not in html and "could not be loaded" not in html
        assert "No open alerts" not in html and "Hiện không có cảnh báo" not in html
    read = build_board(card, snapshot(figures, alerts=[]), "38", NOW)
    assert read is not None and "No open alerts." in board_html("en", read)


def test_an_alert_on_the_province_screen_says_since_when(card: Scorecard) -> None:
    from dataclasses import replace

    from services.wall.api import alert_json

    fired = datetime(2026, 11, 20, 2, 40, tzinfo=UTC)  # 09:40 in Vietnam
    old = replace(alert(1), since=fired)
    board = build_board(
        card, snapshot([fig("38", "dossier_online", 1, 2)], alerts=[old]), "38", NOW
    )
    assert board is not None
    assert "Đang cảnh báo từ 20/11/2026 09:40" in board_html("vi", board)
    assert "Active since 20 Nov 2026 09:40" in board_html("en", board)
    assert alert_json(old)["since"] == "2026-11-20T09:40:00+07:00"
    assert alert_json(alert(2))["since"] is None  # the alerts service did not say


def test_a_kiosk_keeps_the_provinces_it_was_asked_for_in_its_urls() -> None:
    k = parse_kiosk({"provinces": "19,<x>,19", "every": "30"}, ["38"], "vi")
    assert k.provinces == () and k.stop(0) is None  # none has figures: an empty stop
    assert "provinces=19&" in k.url(0)  # ...that comes back to 19, not to 38
    assert "provinces" not in parse_kiosk({}, ["38"], "vi").url(0)  # every province, then
