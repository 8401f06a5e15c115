"""The metrics workers' figures: parsing /v1/kpis and /v1/activity, merging, judging."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson
import pytest

from services.common.figures import (
    ITEM_VERSION,
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
    return Figure("document_signing", unit, window, num, den, 9500, 20, province="19")


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


NONG_CONG = Figure(
    "document_signing",
    "404",
    "year",
    11_703,
    11_710,
    9500,
    20,
    unit_name="Huyện Nông Cống",
    unit_name_en="Nong Cong District",
    kpi_name_vi="Tỷ lệ văn bản điện tử được ký số",
    kpi_name_en="Digital-signing rate",
    level="district",
    province="38",
    parent="38",
    last_event_time=AT,
    period_start=datetime(2026, 1, 1, tzinfo=VN_TZ),
)


def test_an_item_written_by_a_worker_is_read_back_as_the_same_figure() -> None:
    item = orjson.loads(orjson.dumps(NONG_CONG.to_json()))
    assert item["version"] == ITEM_VERSION
    assert (item["rate_bp"], item["target_bp"], item["target"]) == (9994, 9500, 0.95)
    assert item["meets_target"] is True
    assert figure_from_json(item) == NONG_CONG


def test_the_judgement_is_on_the_counts_not_on_the_shown_rate() -> None:
    # 24,374 of 25,000 is 97.496 %: shown "97,50 %", yet under a 97.5 % target.
    f = NONG_CONG._replace(numerator=24_374, denominator=25_000, target_bp=9750)
    assert (f.rate_bp, f.status) == (9750, Status.BELOW)
    assert f.to_json()["meets_target"] is False
    assert f._replace(numerator=24_375).status is Status.MEETS


def test_a_version_1_item_has_its_target_read_as_basis_points() -> None:
    # Workers not yet upgraded answer without "version" and "target_bp".
    assert "version" not in DOC_ITEM
    f = figure_from_json({**DOC_ITEM, "target": 0.975})
    assert f.target_bp == 9750


def test_an_item_of_an_unknown_version_refuses_the_whole_answer() -> None:
    newer = {**NONG_CONG.to_json(), "version": ITEM_VERSION + 1}
    with pytest.raises(AnswerFormatError, match="version"):
        parse_figures(answer(DOC_ITEM, newer))


def test_fields_a_newer_worker_adds_are_ignored_not_refused() -> None:
    item = {**NONG_CONG.to_json(), "target_source": "QĐ 942/QĐ-TTg (2021)", "late_open": 3}
    assert figure_from_json(item) == NONG_CONG


def test_a_retired_kpi_is_written_without_target_or_judgement_and_left_out() -> None:
    retired = NONG_CONG._replace(kpi="old_kpi", target_bp=None, retired=True)
    item = retired.to_json()
    assert (item["target"], item["target_bp"], item["min_volume"]) == (None, None, None)
    assert item["meets_target"] is None and item["rate_bp"] == 9994
    assert parse_figures(answer(item)) == []
    with pytest.raises(ValueError, match="no target"):
        _ = retired.status


def test_below_the_minimum_volume_meets_target_is_null() -> None:
    item = NONG_CONG._replace(numerator=1, denominator=2).to_json()
    assert (item["meets_target"], item["rate_bp"]) == (None, 5000)
    assert NONG_CONG._replace(numerator=0, denominator=0).to_json()["ratio"] is None


def test_a_numerator_above_its_denominator_refuses_the_answer() -> None:
    # Shown, it would read above 100 %; refused, the worker is reported as failing.
    with pytest.raises(AnswerFormatError, match=r"numerator 12 outside 0\.\.11"):
        parse_figures(answer(DOC_ITEM, {**DOC_ITEM, "numerator": 12, "denominator": 11}))
