"""Arranging a snapshot for one page: province choice, drill-down, worst first, silence, alerts."""

from __future__ import annotations

from dataclasses import replace

from services.common.figures import Activity
from services.common.figures import Standing as Status
from services.wall.model import Alert
from services.wall.overview import build_overview
from tests.unit.wall.factories import NOW, fig, recent, snapshot


def alert(
    unit: str, state: str = "firing", acked: str | None = None, sev: str = "warning"
) -> Alert:
    return Alert(
        id=f"{unit}-{state}-{acked}",
        alertname="KpiBelowTarget",
        kpi="document_signing",
        unit=unit,
        window="day",
        severity=sev,
        state=state,
        province="19",
        summary_vi="",
        summary_en="",
        since=None,
        acknowledged_by=acked,
        acknowledged_at=recent(5) if acked else None,
    )


def province_19() -> list:
    return [
        fig("19", 180, 200, last_event=recent(1)),
        fig("19", 3000, 3100, window="month", last_event=recent(1)),
        fig("01843", 100, 100, last_event=recent(1)),
        fig("01850", 60, 80, last_event=recent(2)),  # 75 %: below
        fig("01860", 20, 20, last_event=recent(90)),  # meets, but silent
        fig("38", 5, 5, last_event=recent(1)),
    ]


def test_defaults_to_the_first_province_with_data() -> None:
    ov = build_overview(snapshot(province_19()), None, None, NOW, 30)
    assert ov.focus is not None and ov.focus.code == "19"
    assert [p.code for p in ov.provinces] == ["19", "38"]
    assert build_overview(snapshot(province_19()), "99", None, NOW, 30).focus.code == "19"


def test_focus_kpis_carry_today_and_this_month() -> None:
    ov = build_overview(snapshot(province_19()), "19", None, NOW, 30)
    [line] = ov.kpis
    assert (line.day.numerator, line.day.denominator) == (180, 200)
    assert (line.month.numerator, line.month.denominator) == (3000, 3100)


def test_units_below_target_first_then_silent_then_the_rest() -> None:
    ov = build_overview(snapshot(province_19()), "19", None, NOW, 30)
    assert [r.unit.code for r in ov.rows] == ["01850", "01860", "01843"]
    assert [r.status for r in ov.rows] == [Status.BELOW, Status.MEETS, Status.MEETS]
    assert [f.unit for f in ov.below] == ["01850"]
    assert [r.unit.code for r in ov.silent] == ["01860"]


def test_activity_overrides_stale_figure_times_for_silence() -> None:
    acts = [Activity("01860", "documents", recent(3))]
    ov = build_overview(snapshot(province_19(), activity=acts), "19", None, NOW, 30)
    assert ov.silent == []


def test_drill_down_through_a_2024_district_to_its_communes() -> None:
    names = {
        "06": ("Bắc Kạn", "Bac Kan", "province", None, "06"),
        "061": ("Huyện Chợ Đồn", "Cho Don District", "district", "06", "06"),
        "01900": ("Xã Quảng Bạch", "Quang Bach Commune", "commune", "061", "06"),
        "01901": ("Xã Nghĩa Tá", "Nghia Ta Commune", "commune", "061", "06"),
    }
    figures = [
        fig(code, n, 100, names=names, last_event=recent(1))
        for code, n in [("06", 95), ("061", 90), ("01900", 99), ("01901", 81)]
    ]
    top = build_overview(snapshot(figures), "06", None, NOW, 30)
    assert [r.unit.code for r in top.rows] == ["061"] and top.rows[0].has_children
    assert [f.unit for f in top.below] == ["01901", "061"]  # worst first, every level
    district = build_overview(snapshot(figures), "06", "061", NOW, 30)
    assert [u.code for u in district.path] == ["06", "061"]
    assert [r.unit.code for r in district.rows] == ["01901", "01900"]


def test_a_unit_of_another_province_falls_back_to_the_province() -> None:
    ov = build_overview(snapshot(province_19()), "19", "38", NOW, 30)
    assert ov.focus is not None and ov.focus.code == "19"


def test_open_alerts_of_the_province_unacknowledged_and_critical_first() -> None:
    alerts = [
        alert("01843", acked="lan.nt"),
        alert("01850"),
        alert("01843", sev="critical"),
        alert("01850", state="resolved"),
    ]
    ov = build_overview(snapshot(province_19(), alerts=alerts), "19", None, NOW, 30)
    assert ov.alerts is not None
    assert [(a.unit, a.severity, a.acknowledged_by) for a in ov.alerts] == [
        ("01843", "critical", None),
        ("01850", "warning", None),
        ("01843", "warning", "lan.nt"),
    ]


def test_unreadable_alerts_differ_from_no_alerts() -> None:
    assert build_overview(snapshot(province_19(), alerts=None), "19", None, NOW, 30).alerts is None
    assert build_overview(snapshot(province_19(), alerts=[]), "19", None, NOW, 30).alerts == []


def test_no_figures_at_all() -> None:
    ov = build_overview(snapshot([]), None, None, NOW, 30)
    assert ov.focus is None and ov.rows == [] and ov.provinces == []


def test_a_districts_page_lists_the_district_itself_and_only_its_alerts() -> None:
    names = {
        "06": ("Bắc Kạn", "Bac Kan", "province", None, "06"),
        "061": ("Huyện Chợ Đồn", "Cho Don District", "district", "06", "06"),
        "062": ("Huyện Ba Bể", "Ba Be District", "district", "06", "06"),
        "01900": ("Xã Quảng Bạch", "Quang Bach Commune", "commune", "061", "06"),
    }
    figures = [
        fig("06", 95, 100, names=names, last_event=recent(1)),
        # Chợ Đồn below target (its own office's documents), its commune meets.
        fig("061", 80, 100, names=names, last_event=recent(1)),
        fig("062", 99, 100, names=names, last_event=recent(1)),
        fig("01900", 99, 100, names=names, last_event=recent(1)),
    ]
    alerts = [
        replace(a, province="06")
        for a in (alert("061"), alert("062", sev="critical"), alert("01900"))
    ]
    district = build_overview(snapshot(figures, alerts=alerts), "06", "061", NOW, 30)
    assert [f.unit for f in district.below] == ["061"]
    assert district.alerts is not None
    assert sorted(a.unit for a in district.alerts) == ["01900", "061"]  # not Ba Bể's
    province = build_overview(snapshot(figures, alerts=alerts), "06", None, NOW, 30)
    assert province.alerts is not None and len(province.alerts) == 3
    assert "06" not in [f.unit for f in province.below]  # the root's lists name its units
