"""Judging one rate: target, minimum volume, silence, worst-first order, alerts' JSON."""

from __future__ import annotations

from datetime import datetime

import pytest

from services.common.calendar import VN_TZ, WorkingCalendar
from services.common.figures import Standing as Status
from services.common.figures import classify
from services.wall.model import alert_from_json, is_silent, worst_first_key
from tests.unit.wall.factories import NOW, fig, recent


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
    assert classify(num, den, target_bp=9500, min_volume=20) is expected


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


def test_silence_counts_working_time_only_as_the_alerts_do() -> None:
    calendar = WorkingCalendar()
    friday_1650 = datetime(2026, 11, 20, 16, 50, tzinfo=VN_TZ)
    saturday_night = datetime(2026, 11, 21, 23, 0, tzinfo=VN_TZ)
    monday_0815 = datetime(2026, 11, 23, 8, 15, tzinfo=VN_TZ)
    assert not is_silent(friday_1650, saturday_night, 30, calendar)  # 10 working minutes
    assert is_silent(friday_1650, monday_0815, 30, calendar)  # 10 + 45 working minutes
    always = WorkingCalendar(always=True)
    assert is_silent(friday_1650, saturday_night, 30, always)
