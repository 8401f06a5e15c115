"""The metrics workers' figures: parsing /v1/kpis and /v1/activity, merging, judging."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
import pytest

from services.common.figures import (
    Activity,
    AnswerFormatError,
    Figure,
    merge_activity,
    merge_figures,
    parse_activity,
    parse_figures,
)
from services.common.figures import Standing as Status
from services.common.units import VN_TZ

DOC_ITEM = {
    "kpi": "document_signing",
    "kpi_name_vi": "Tỷ lệ văn bản điện tử được ký số",
    "kpi_name_en": "Digital-signing rate",
    "unit": "01843",
    "unit_name": "Phường Bắc Kạn",
    "unit_name_en": "Bac Kan Ward",
    "level": "commune",
    "parent": "19",
    "province": "19",
    "window": "day",
    "period_start": "2026-11-23T00:00:00+07:00",
    "numerator": 1170,
    "denominator": 1171,
    "ratio": 0.99915,
    "target": 0.95,
    "min_volume": 20,
    "meets_target": True,
    "last_event_time": "2026-11-23T10:14:58+07:00",
}
AT = datetime(2026, 11, 23, 10, 15, tzinfo=VN_TZ)


def answer(*items: dict[str, object]) -> bytes:
    return orjson.dumps({"worker": "w", "items": list(items)})


def figure_from_json(item: dict[str, object]) -> Figure:
    (figure,) = parse_figures(answer(item))
    return figure


def fig(unit: str, num: int, den: int, window: str = "day") -> Figure:
    return Figure("document_signing", unit, window, num, den, 0.95, 20, province="19")


def test_figure_from_the_documented_item() -> None:
    f = figure_from_json(DOC_ITEM)
    assert (f.unit, f.unit_name_en, f.parent, f.province) == ("01843", "Bac Kan Ward", "19", "19")
    assert (f.numerator, f.denominator, f.status) == (1170, 1171, Status.MEETS)
    assert f.last_event_time is not None and f.last_event_time.utcoffset() is not None


def test_figure_with_a_missing_count_is_refused_with_the_reason() -> None:
    broken = {k: v for k, v in DOC_ITEM.items() if k != "denominator"}
    with pytest.raises(AnswerFormatError, match="denominator"):
        figure_from_json(broken)


def test_an_item_without_a_target_is_left_out_not_a_failure() -> None:
    unplaced = {**DOC_ITEM, "unit": "99999", "target": None, "unit_name": None}
    assert [f.unit for f in parse_figures(answer(unplaced, DOC_ITEM))] == ["01843"]


def test_names_fall_back_to_codes_and_the_province_to_the_unit() -> None:
    bare = {"kpi": "k1", "unit": "19", "window": "month", "numerator": 1, "denominator": 2,
            "target": 0.9}  # fmt: skip
    f = figure_from_json(bare)
    assert (f.unit_name, f.unit_name_en, f.kpi_name_vi, f.kpi_name_en) == ("19", "19", "k1", "k1")
    assert (f.province, f.parent, f.min_volume, f.last_event_time) == ("19", None, 0, None)


def test_an_answer_that_is_not_the_documented_shape_is_refused() -> None:
    with pytest.raises(AnswerFormatError, match="kpis"):
        parse_figures(b"<html>")
    with pytest.raises(AnswerFormatError, match="items"):
        parse_figures(b'{"worker": "w"}')
    with pytest.raises(AnswerFormatError, match="activity"):
        parse_activity(b"[1, 2]")


def test_activity_keeps_items_with_a_readable_time_with_offset() -> None:
    body = orjson.dumps(
        {
            "items": [
                {"unit": "01843", "family": "documents", "last_event_time": AT.isoformat()},
                {"unit": "01850", "family": "documents", "last_event_time": None},
                {"unit": "01860", "family": "documents", "last_event_time": "yesterday"},
                {"unit": "01870", "family": "documents", "last_event_time": "2026-11-23T10:00"},
            ]
        }
    )
    assert parse_activity(body) == [Activity("01843", "documents", AT)]


def test_a_unit_two_workers_answer_for_is_counted_once_the_fresher_wins() -> None:
    # During a rebalance the old owner still answers with what it had counted.
    old, new, other = fig("01843", 10, 12), fig("01843", 11, 13), fig("01850", 1, 1)
    merged = merge_figures([[old, other], [new]])
    assert sorted(merged) == sorted([new, other])
    assert sum(f.denominator for f in merged) == 14


def test_equal_volumes_keep_the_larger_numerator_and_windows_stay_apart() -> None:
    a, b = fig("01843", 10, 20), fig("01843", 11, 20)
    month = fig("01843", 100, 200, window="month")
    assert sorted(merge_figures([[b], [a, month]])) == sorted([b, month])


def test_one_worker_is_taken_as_it_answered() -> None:
    only = [fig("01843", 1, 2), fig("01850", 3, 4)]
    assert merge_figures([only]) == only


def test_activity_merge_keeps_the_latest_event_per_unit_and_family() -> None:
    early, late = AT - timedelta(hours=1), AT
    w1 = [Activity("01843", "documents", late), Activity("01843", "dossiers", early)]
    w2 = [Activity("01843", "documents", early), Activity("01843", "dossiers", late)]
    assert merge_activity([w1, w2]) == [
        Activity("01843", "documents", late),
        Activity("01843", "dossiers", late),
    ]
