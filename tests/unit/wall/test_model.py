"""Judging one rate: target, minimum volume, silence, worst-first order, and parsing."""

from __future__ import annotations

import pytest

from services.metrics.wall.model import (
    SourceFormatError,
    Status,
    alert_from_json,
    classify,
    figure_from_json,
    is_silent,
    worst_first_key,
)
from tests.unit.wall.factories import NOW, fig, recent

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


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [
        (0, 0, Status.NO_DATA),
        (1, 2, Status.LOW_VOLUME),  # 50 % of two documents says nothing
        (0, 19, Status.LOW_VOLUME),
        (18, 20, Status.BELOW),  # min volume reached: judged
        (19, 20, Status.MEETS),  # exactly on target meets it
        (20, 20, Status.MEETS),
    ],
)
def test_classify_volume_before_target(num: int, den: int, expected: Status) -> None:
    assert classify(num, den, target=0.95, min_volume=20) is expected


def test_worst_first_orders_below_by_gap_then_low_volume_then_meets() -> None:
    meets = fig("01843", 100, 100)
    slightly_below = fig("01850", 90, 100)  # gap 0.05
    far_below = fig("01860", 10, 100)  # gap 0.85
    low_volume = fig("19", 0, 5)
    ordered = sorted([meets, low_volume, slightly_below, far_below], key=worst_first_key)
    assert ordered == [far_below, slightly_below, low_volume, meets]


def test_gap_is_zero_unless_judged_below() -> None:
    assert fig("01843", 0, 5).gap == 0.0  # low volume: not judged
    assert fig("01843", 100, 100).gap == 0.0
    assert fig("01843", 50, 100).gap == pytest.approx(0.45)


def test_silence_after_the_threshold_and_for_units_never_heard() -> None:
    assert not is_silent(recent(29), NOW, silence_minutes=30)
    assert is_silent(recent(30), NOW, silence_minutes=30)
    assert is_silent(None, NOW, silence_minutes=30)


def test_figure_from_the_documented_item() -> None:
    f = figure_from_json(DOC_ITEM)
    assert (f.unit, f.unit_name_en, f.parent, f.province) == ("01843", "Bac Kan Ward", "19", "19")
    assert (f.numerator, f.denominator, f.status) == (1170, 1171, Status.MEETS)
    assert f.last_event_time is not None and f.last_event_time.utcoffset() is not None


def test_figure_with_a_missing_count_is_refused_with_the_reason() -> None:
    broken = {k: v for k, v in DOC_ITEM.items() if k != "denominator"}
    with pytest.raises(SourceFormatError, match="denominator"):
        figure_from_json(broken)


def test_alert_fields_read_from_the_top_or_from_labels() -> None:
    flat = alert_from_json(
        {
            "id": "a1",
            "alertname": "KpiBelowTarget",
            "kpi": "document_signing",
            "unit": "01843",
            "window": "day",
            "severity": "critical",
            "state": "firing",
            "acknowledged_by": "lan.nt",
            "acknowledged_at": "2026-11-23T10:00:00+07:00",
        }
    )
    nested = alert_from_json(
        {
            "id": "a2",
            "state": "pending",
            "labels": {"alertname": "UnitSilent", "unit": "01850", "severity": "warning"},
            "annotations": {"summary_vi": "Im lặng", "summary_en": "Silent"},
        }
    )
    assert (flat.alertname, flat.acknowledged_by) == ("KpiBelowTarget", "lan.nt")
    assert flat.is_open
    assert (nested.alertname, nested.unit, nested.summary_en) == ("UnitSilent", "01850", "Silent")
    assert nested.acknowledged_by is None
    assert not alert_from_json({"id": "a3", "state": "resolved"}).is_open


def test_alert_in_the_alerts_service_shape() -> None:
    a = alert_from_json(
        {
            "id": "7f1c",
            "condition": "KpiBelowTarget",
            "kpi": "document_signing",
            "unit": "01843",
            "window": "day",
            "state": "firing",
            "severity": "critical",
            "province": "19",
            "labels": {"alertname": "KpiBelowTarget"},
            "annotations": {"summary_vi": "Dưới chỉ tiêu", "summary_en": "Below target"},
            "fired_at": "2026-11-23T09:00:00+07:00",
            "acked_at": "2026-11-23T09:05:00+07:00",
            "acked_by": "lan.nt",
        }
    )
    assert (a.alertname, a.province, a.severity, a.acknowledged_by) == (
        "KpiBelowTarget",
        "19",
        "critical",
        "lan.nt",
    )
    assert a.acknowledged_at is not None and a.since is not None and a.is_open
