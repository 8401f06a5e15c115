"""Units of today's directory that never sent anything are on the overview, silent (review 65)."""

from __future__ import annotations

import pytest

from services.common.figures import Standing
from services.common.units import Unit
from services.wall.api import overview_json
from services.wall.directory import TodayUnits, shipped_units
from services.wall.model import Alert
from services.wall.overview import build_overview
from services.wall.render import overview_html
from tests.unit.wall.factories import NOW, fig, recent, snapshot


def _unit(code: str, level: str, parent: str | None, name: str) -> Unit:
    return Unit(code, level, name, name, name, f"{name} (en)", parent, "2025")  # type: ignore[arg-type]


TODAY = TodayUnits(
    [
        _unit("19", "province", None, "Tỉnh Thái Nguyên"),
        _unit("01843", "commune", "19", "Phường Bắc Kạn"),
        _unit("01850", "commune", "19", "Xã Phong Quang"),
        _unit("01860", "commune", "19", "Xã Bằng Thành"),
        _unit("01870", "commune", "19", "Xã Mới"),
        _unit("19-SNV", "department", "19", "Sở Nội vụ"),
        _unit("38", "province", None, "Tỉnh Thanh Hóa"),
        _unit("14797", "commune", "38", "Xã Thanh"),
    ]
)


def _silent_alert(unit: str, province: str = "19") -> Alert:
    return Alert("s1", "UnitSilent", "documents", unit, "working-hours", "warning", "firing",
                 province, "", "", recent(180), None, None)  # fmt: skip


def _figures() -> list:
    return [
        fig("19", 180, 200, last_event=recent(1)),
        fig("01843", 100, 100, last_event=recent(1)),
        fig("01850", 60, 80, last_event=recent(2)),  # 75 %: below target
        fig("38", 5, 5, last_event=recent(1)),
    ]


def test_a_commune_that_never_sent_is_a_silent_row_once_half_its_peers_send() -> None:
    ov = build_overview(snapshot(_figures()), "19", None, NOW, 30, today=TODAY)
    # 2 of the 4 communes send: the two others are expected, never heard from.
    assert [r.unit.code for r in ov.rows] == ["01850", "01860", "01870", "01843"]
    never = {r.unit.code: r for r in ov.rows if not r.figures}
    assert set(never) == {"01860", "01870"}
    assert all(r.silent and r.last_event is None for r in never.values())
    assert all(r.status is Standing.NO_DATA for r in never.values())  # never 100 %
    assert [r.unit.code for r in ov.silent] == ["01860", "01870"]
    assert never["01870"].unit.name == "Xã Mới"  # named by the directory
    assert never["01870"].unit.province == "19"
    # No department sends: the departments are not a column of silent rows.
    assert "19-SNV" not in {r.unit.code for r in ov.rows}
    # Another province's units are not read into this page.
    assert "14797" not in ov.unit_names


def test_the_page_says_it_never_received_anything() -> None:
    ov = build_overview(snapshot(_figures()), "19", None, NOW, 30, today=TODAY)
    html = overview_html("vi", ov, NOW)
    assert "Xã Mới</a> — chưa từng gửi dữ liệu" in html
    assert "never sent any data" in overview_html("en", ov, NOW)
    row = next(r for r in overview_json(ov)["rows"] if r["unit"] == "01870")
    assert row["silent"] is True and row["kpis"] == {} and row["last_event_time"] is None


def test_a_province_being_brought_on_lists_only_the_units_the_pager_pages() -> None:
    figures = [f for f in _figures() if f.unit != "01850"]  # 1 of 4 communes sends
    quiet = build_overview(snapshot(figures), "19", None, NOW, 30, today=TODAY)
    assert [r.unit.code for r in quiet.rows] == ["01843"]
    paged = build_overview(
        snapshot(figures, alerts=[_silent_alert("01870")]), "19", None, NOW, 30, today=TODAY
    )
    assert [r.unit.code for r in paged.silent] == ["01870"]
    assert [r.unit.code for r in paged.rows] == ["01870", "01843"]


def test_a_never_heard_commune_has_its_own_page() -> None:
    ov = build_overview(snapshot(_figures()), "19", "01870", NOW, 30, today=TODAY)
    assert ov.focus is not None and ov.focus.code == "01870"
    assert [u.code for u in ov.path] == ["19", "01870"]
    assert ov.kpis == [] and [r.unit.code for r in ov.silent] == ["01870"]


def test_a_2024_era_page_is_not_mixed_with_todays_communes() -> None:
    names = {
        "19": ("Thái Nguyên", "Thai Nguyen", "province", None, "19"),
        "164": ("Thành phố Thái Nguyên", "Thai Nguyen City", "district", "19", "19"),
        "05443": ("Phường Phan Đình Phùng", "Phan Dinh Phung", "commune", "164", "19"),
    }
    figures = [fig(c, 10, 10, names=names, last_event=recent(1)) for c in names]
    ov = build_overview(snapshot(figures), "19", None, NOW, 30, today=TODAY)
    assert [r.unit.code for r in ov.rows] == ["164"]
    assert ov.silent == []


def test_the_province_list_names_provinces_with_figures_only() -> None:
    ov = build_overview(snapshot(_figures()), "19", None, NOW, 30, today=shipped_units())
    assert [p.code for p in ov.provinces] == ["19", "38"]


def test_every_commune_of_a_province_half_connected_is_listed() -> None:
    communes = [c for c in shipped_units().under("19") if c.level == "commune"]
    assert len(communes) > 90
    figures = [fig("19", 180, 200, last_event=recent(1))]
    for c in communes[: len(communes) // 2 + 1]:  # half of them send
        names = {c.code: (c.name, c.name_en, "commune", "19", "19")}
        figures.append(fig(c.code, 99, 100, names=names, last_event=recent(1)))
    snap = snapshot(figures)
    ov = build_overview(snap, "19", None, NOW, 30)
    assert len(ov.rows) == len(communes)
    assert len(ov.silent) == len(communes) - (len(communes) // 2 + 1)


def test_the_wall_expects_units_by_the_pager_s_peer_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The wall lists as never heard what the pager pages: its peer share follows
    EGOV_ALERT_SILENT_PEER_SHARE unless the wall sets its own."""
    from services.wall.settings import WallSettings

    monkeypatch.setenv("EGOV_ALERT_SILENT_PEER_SHARE", "0.9")
    assert WallSettings().wall_silent_peer_share == 0.9
    monkeypatch.setenv("EGOV_WALL_SILENT_PEER_SHARE", "0.3")
    assert WallSettings().wall_silent_peer_share == 0.3
    communes = [c for c in shipped_units().under("19") if c.level == "commune"]
    figures = [fig("19", 180, 200, last_event=recent(1))]
    for c in communes[: len(communes) // 2 + 1]:  # a little over half of them send
        names = {c.code: (c.name, c.name_en, "commune", "19", "19")}
        figures.append(fig(c.code, 99, 100, names=names, last_event=recent(1)))
    snap = snapshot(figures)
    assert len(build_overview(snap, "19", None, NOW, 30).rows) == len(communes)
    strict = build_overview(snap, "19", None, NOW, 30, peer_share=0.9)
    assert len(strict.rows) == len(communes) // 2 + 1  # 90 % do not send: none expected
