"""The HTML: figures and words on the page, language attributes, escaping, the trend chart."""

from __future__ import annotations

import re

from services.metrics.wall.overview import build_overview
from services.metrics.wall.render import overview_html, page_html, trend_section
from services.metrics.wall.snapshot import SourceState
from services.metrics.wall.trend import TrendPoint
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
    assert "1.170 / 1.171" in html and "99,9 %" in html
    assert "Dưới chỉ tiêu" in html and "▼" in html  # words and shape, not colour alone
    assert 'hreflang="en"' in html and "lang=en" in html


def test_page_in_english_uses_english_registry_names() -> None:
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    html = page_html("en", ov, NOW, {}, "", 2.0)
    assert '<html lang="en">' in html
    assert "Bac Kan Ward" in html and "1,170 / 1,171" in html
    assert "Below target" in html and "Silent" in html
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
    html = trend_section("en", "01843", "document_signing", ov, points, 0.95, 14)
    assert html.count("<polyline") == 2  # broken at the empty day, not dropped to 0
    assert html.count('class="pt below"') == 1
    assert "Bac Kan Ward" in html and "<table>" in html and 'role="img"' in html


def test_trend_without_history_says_so() -> None:
    ov = build_overview(snapshot(figures()), None, None, NOW, 30)
    assert "could not be read" in trend_section("en", "19", "k", ov, None, None, 14)
    assert "No daily figures" in trend_section("en", "19", "k", ov, [], None, 14)
