"""The HTML: figures and words on the page, language attributes, escaping, the trend chart."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from services.common.broker import free_port
from services.wall.api import overview_json
from services.wall.model import Alert
from services.wall.overview import build_overview
from services.wall.render import overview_html, page_html, trend_section
from services.wall.snapshot import SourceState
from services.wall.sources import Sources
from services.wall.trend import TrendPoint, points_from_json
from tests.unit.wall.factories import NOW, fig, recent, snapshot


def figures() -> list:
    return [
        fig("19", 1170, 1171, last_event=recent(1)),
        fig("01843", 60, 80, last_event=recent(1)),
        fig("01850", 20, 20, last_event=recent(120)),
    ]


def test_page_in_vietnamese_by_default_with_registry_names() -> None:
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    html = page_html("vi", ov, NOW, {}, "", 2.0)
    assert '<html lang="vi">' in html
    assert "Phường Bắc Kạn" in html and "Thái Nguyên" in html
    # 1,170 of 1,171 is 99.9146 %: two decimals, rounded from the counts.
    assert "1.170 / 1.171" in html and "99,91 %" in html
    assert "Chưa đạt mục tiêu" in html and "▼" in html  # words and shape, not colour alone
    assert '<td class="target">95 %</td>' in html and '<th scope="col">Mục tiêu</th>' in html
    assert 'hreflang="en"' in html and "lang=en" in html


def test_page_in_english_uses_english_registry_names() -> None:
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    html = page_html("en", ov, NOW, {}, "", 2.0)
    assert '<html lang="en">' in html
    assert "Bac Kan Ward" in html and "1,170 / 1,171" in html and "99.91%" in html
    assert "Below target" in html and "Not sending" in html
    assert '<td class="target">95%</td>' in html
    assert "Phường Bắc Kạn" not in html


def test_tables_have_header_scopes() -> None:
    html = overview_html("en", build_overview(snapshot(figures()), None, None, NOW, 30), NOW)
    assert html.count("<table") == html.count("<thead>")
    assert 'scope="col"' in html and 'scope="row"' in html


def test_values_from_sources_are_escaped() -> None:
    names = {"19": ("<script>alert(1)</script>", "x&y", "province", None, "19")}
    ov = build_overview(snapshot([fig("19", 1, 2, names=names)]), None, None, NOW, 30)
    html = page_html("vi", ov, NOW, {}, "", 2.0)
    assert "<script>alert(1)" not in html and "&lt;script&gt;" in html


def test_config_json_cannot_close_its_script_element() -> None:
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    html = page_html("vi", ov, NOW, {}, "", 2.0)
    config = re.search(r'id="wall-config">(.*?)</script>', html, re.S)
    assert config is not None and "/wall/stream?" in config.group(1)


def test_failed_sources_do_not_hide_the_page() -> None:
    failed = (SourceState("metrics", "http://w2", False, "timeout"),)
    ov = build_overview(snapshot(figures(), sources=failed), None, None, NOW, 30)
    assert ov.stale
    assert "Phường Bắc Kạn" in overview_html("vi", ov, NOW)


def test_trend_draws_a_gap_for_a_day_without_data_and_marks_days_below_target() -> None:
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    points = [
        TrendPoint("2026-11-19", 99, 100),
        TrendPoint("2026-11-20", 98, 100),
        TrendPoint("2026-11-21", 0, 0),
        TrendPoint("2026-11-22", 50, 100),
        TrendPoint("2026-11-23", 97, 100),
    ]
    html = trend_section("en", "01843", "document_signing", ov, points, 9500, 14)
    assert html.count("<polyline") == 2  # broken at the empty day, not dropped to 0
    assert html.count('class="pt below"') == 1
    assert "Bac Kan Ward" in html and "<table>" in html and 'role="img"' in html
    assert '<th scope="row">22 Nov 2026</th><td>50.00%</td><td>50 / 100</td>' in html
    assert "Target 95%" in html


def test_a_day_just_under_its_target_is_marked_below_though_it_reads_the_target() -> None:
    # 24,374 of 25,000 reads 97,50 % but misses a 97,5 % target: the mark says so.
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    points = [TrendPoint("2026-11-22", 24_374, 25_000), TrendPoint("2026-11-23", 24_375, 25_000)]
    html = trend_section("vi", "01843", "document_signing", ov, points, 9750, 14)
    assert html.count('class="pt below"') == 1
    assert '<th scope="row">22/11/2026</th><td>97,50 %</td><td>24.374 / 25.000</td>' in html
    assert "Mục tiêu 97,5 %" in html


def test_trend_without_history_says_so() -> None:
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    assert "could not be loaded" in trend_section("en", "19", "k", ov, None, None, 14)
    assert "No daily figures" in trend_section("en", "19", "k", ov, [], None, 14)


def acknowledged(by: str | None) -> Alert:
    """An alert acknowledged at 03:10 UTC (10:10 in Vietnam), by ``by`` or by a name the
    alerts service withheld."""
    return Alert(
        id="a1",
        alertname="KpiBelowTarget",
        kpi="document_signing",
        unit="01843",
        window="day",
        severity="warning",
        state="firing",
        province="19",
        summary_vi="",
        summary_en="",
        since=None,
        acknowledged_by=by,
        acknowledged_at=datetime(2026, 11, 23, 3, 10, tzinfo=UTC),
    )


def test_an_acknowledgement_shows_its_date_and_time_in_vietnam() -> None:
    # 10:10 in Vietnam, with the date (it may be another day than UTC's).
    ack = acknowledged("lan.nt")
    ov = build_overview(snapshot(figures(), alerts=[ack]), None, None, NOW, 30)
    assert "lan.nt đã tiếp nhận lúc 23/11/2026 10:10" in overview_html("vi", ov, NOW)
    assert "Acknowledged by lan.nt at 23 Nov 2026 10:10" in overview_html("en", ov, NOW)


def test_an_acknowledgement_without_the_name_still_shows_as_acknowledged() -> None:
    # The alerts service hides who acknowledged from readers without an operator token
    # (the wall is one): the alert is still acknowledged, only the name is withheld.
    ack = acknowledged(None)
    ov = build_overview(snapshot(figures(), alerts=[ack]), None, None, NOW, 30)
    page = overview_html("vi", ov, NOW)
    assert "Đã tiếp nhận lúc 23/11/2026 10:10" in page
    assert "Chưa có người tiếp nhận" not in page
    assert "Acknowledged at 23 Nov 2026 10:10" in overview_html("en", ov, NOW)


def test_a_history_day_counted_above_its_total_is_refused_not_drawn() -> None:
    # The view turns this into "could not be loaded" rather than a rate above 100 %.
    good = {"day": "2026-11-22", "numerator": 2, "denominator": 2}
    assert points_from_json([good]) == [TrendPoint("2026-11-22", 2, 2)]
    with pytest.raises(ValueError, match=r"numerator 3 outside 0\.\.2"):
        points_from_json([good, {"day": "2026-11-23", "numerator": 3, "denominator": 2}])


def test_a_silent_unit_says_since_when_and_for_how_long_today() -> None:
    # 01850 last sent 120 minutes before NOW, the same Vietnam day (review 55: the moment).
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    assert "không gửi dữ liệu từ 23/11/2026 08:15 (2 giờ)" in overview_html("vi", ov, NOW)
    assert "no data since 23 Nov 2026 08:15 (2 h)" in overview_html("en", ov, NOW)


def test_the_page_links_to_the_wall_screens_of_its_province() -> None:
    ov = build_overview(snapshot(figures()), "19", None, NOW, 30)
    html = page_html("en", ov, NOW, {}, "", 2.0)
    assert '<a href="/wall/province?province=19&amp;lang=en">Province overview</a>' in html
    assert '<a href="/wall/rankings?province=19&amp;lang=en">Rankings</a>' in html
    assert '<a href="/wall/kiosk?provinces=19&amp;lang=en">Kiosk</a>' in html


def test_a_wall_without_alerts_source_has_no_alerts_panel_at_all() -> None:
    # EGOV_ALERTS_URL empty: docs/wall.md, "no alerts panel". It read no alerts, so it must
    # not say "no open alerts"; with a source, read and none open, it says so.
    none_read = build_overview(snapshot(figures(), alerts_configured=False), "19", None, NOW, 30)
    assert none_read.alerts is None and not none_read.alerts_configured
    for lang in ("en", "vi"):
        html = overview_html(lang, none_read, NOW)
        assert "panel alerts" not in html and "h-alerts" not in html
        assert "No open alerts" not in html and "Hiện không có cảnh báo" not in html
    none_open = build_overview(snapshot(figures(), alerts=[]), "19", None, NOW, 30)
    assert "No open alerts." in overview_html("en", none_open, NOW)
    unread = build_overview(snapshot(figures(), alerts=None), "19", None, NOW, 30)
    assert "could not be loaded" in overview_html("en", unread, NOW)


def test_the_overview_json_tells_no_alerts_source_from_none_open() -> None:
    def alerts_of(**kwargs: Any) -> tuple[Any, Any]:
        ov = build_overview(snapshot(figures(), **kwargs), "19", None, NOW, 30)
        body = overview_json(ov)
        return body["alerts"], body["alerts_configured"]

    assert alerts_of(alerts_configured=False) == (None, False)
    assert alerts_of(alerts=[]) == ([], True)
    assert alerts_of(alerts=None) == (None, True)


async def test_sources_without_alerts_url_read_no_alerts_and_say_so() -> None:
    sources = Sources([f"http://127.0.0.1:{free_port()}"], "", timeout_s=1.0)
    try:
        snap = await sources.read()
    finally:
        await sources.aclose()
    assert snap.alerts is None and not snap.alerts_configured
    assert [s.kind for s in snap.sources] == ["metrics"]  # not a failing alerts source


def test_a_publisher_keys_rejection_alert_is_named_in_words() -> None:
    from dataclasses import replace

    alert = replace(
        acknowledged("lan.nt"), alertname="IngestRejectionsHigh", kpi="", unit="3f2a9c01b7e4",
        window="10m", summary_en="Publisher (tdoffice, key 3f2a9c01b7e4) had 80.00% …",
    )  # fmt: skip
    ov = build_overview(snapshot(figures(), alerts=[alert]), None, None, NOW, 30)
    vi, en = overview_html("vi", ov, NOW), overview_html("en", ov, NOW)
    assert "Khóa gửi dữ liệu 3f2a9c01b7e4</strong> — Bản tin bị từ chối" in vi
    assert "Publisher key 3f2a9c01b7e4</strong> — Events refused" in en
    assert "IngestRejectionsHigh" not in vi + en
