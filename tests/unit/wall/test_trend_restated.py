"""The wall's trend says when days before the 2025 reform are restated on today's unit
(issue 16, item 6): /v1/kpis/history marks them, the chart's caption says so."""

from __future__ import annotations

from services.wall.trend import points_from_json, trend_svg

ITEMS = [
    {"day": "2025-06-30", "numerator": 36, "denominator": 40, "restated": True},
    {"day": "2025-07-01", "numerator": 9, "denominator": 9, "restated": False},
]


def test_restated_days_are_read_from_the_history_answer() -> None:
    points = points_from_json(ITEMS)
    assert [(p.day, p.restated) for p in points] == [("2025-06-30", True), ("2025-07-01", False)]
    # An answer from a worker that does not mark days: nothing is restated.
    assert not any(
        p.restated
        for p in points_from_json([{k: v for k, v in ITEMS[0].items() if k != "restated"}])
    )


def test_the_caption_says_the_figures_are_restated_in_both_languages() -> None:
    points = points_from_json(ITEMS)
    vi = trend_svg("vi", "Xã Thăng Bình", points, 9500)
    assert "được tính lại theo đơn vị hành chính hiện nay" in vi and "01/07/2025" in vi
    en = trend_svg("en", "Thang Binh Commune", points, 9500)
    assert "restated on today&#x27;s unit" in en and "1 Jul 2025" in en


def test_no_note_when_no_day_is_restated() -> None:
    points = points_from_json([ITEMS[1]])
    assert "restated" not in trend_svg("en", "Thang Binh Commune", points, None)
    assert "tính lại" not in trend_svg("vi", "Xã Thăng Bình", points, None)
