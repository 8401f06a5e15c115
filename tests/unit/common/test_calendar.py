"""Working time in Vietnam: hours, weekends, holidays, working Saturdays."""

import json
from datetime import date, datetime

from services.common.calendar import HOLIDAYS_FILE, VN_TZ, load_calendar

CAL = load_calendar(HOLIDAYS_FILE)


def vn(*args: int) -> datetime:
    return datetime(*args, tzinfo=VN_TZ)


def test_working_hours_on_a_weekday() -> None:
    assert CAL.is_working(vn(2026, 11, 23, 7, 30))
    assert not CAL.is_working(vn(2026, 11, 23, 7, 29))
    assert not CAL.is_working(vn(2026, 11, 23, 17, 0))


def test_weekend_tet_and_culture_day_are_off() -> None:
    assert not CAL.is_working(vn(2026, 11, 21, 10))  # Saturday
    assert not CAL.is_working(vn(2026, 2, 17, 10))  # Tết Bính Ngọ
    assert not CAL.is_working(vn(2026, 11, 24, 10))  # Ngày Văn hóa Việt Nam
    assert not CAL.is_working(vn(2025, 9, 2, 10))  # Quốc khánh


def test_a_swapped_saturday_is_a_working_day() -> None:
    assert CAL.is_working(vn(2025, 4, 26, 9))
    assert not CAL.is_working(vn(2025, 5, 2, 9))


def test_silence_over_a_weekend_counts_only_working_time() -> None:
    friday_16 = vn(2026, 11, 20, 16)
    monday_8 = vn(2026, 11, 23, 8)
    assert CAL.working_seconds(friday_16, monday_8) == 3600 + 1800


def test_utc_instants_are_read_in_vietnam_time() -> None:
    # 01:00 UTC is 08:00 in Hanoi.
    start = datetime.fromisoformat("2026-11-23T01:00:00+00:00")
    end = datetime.fromisoformat("2026-11-23T02:00:00+00:00")
    assert CAL.working_seconds(start, end) == 3600


def test_working_days_back_skips_weekends_and_holidays() -> None:
    # Monday 23/11/2026: one working day back is Friday 20/11.
    assert CAL.working_days_back(vn(2026, 11, 23, 9), 1) == vn(2026, 11, 20)
    # Wednesday 25/11: Tuesday 24/11 is Vietnam Culture Day, so Monday 23/11.
    assert CAL.working_days_back(vn(2026, 11, 25, 9), 1) == vn(2026, 11, 23)


def test_the_file_covers_2025_to_2027_and_names_its_source() -> None:
    years = {d.year for d in CAL.days_off}
    assert years == {2025, 2026, 2027}
    assert "Bộ luật Lao động" in HOLIDAYS_FILE.read_text("utf-8")


def test_2_january_2026_is_off_and_saturday_10_january_is_worked() -> None:
    """12729/VPCP-KGVX: Friday 2/1/2026 swapped with Saturday 10/1/2026."""
    assert not CAL.is_working(vn(2026, 1, 2, 9))
    assert CAL.is_working(vn(2026, 1, 10, 9))
    assert CAL.break_around(date(2026, 1, 1)) == (date(2026, 1, 1), date(2026, 1, 4))


def _entries() -> list[dict[str, str]]:
    raw = json.loads(HOLIDAYS_FILE.read_text("utf-8"))
    return [*raw["days_off"], *raw["working_saturdays"]]


def test_tet_2025_days_carry_their_lunar_labels() -> None:
    """Month 12 of Giáp Thìn had 29 days: 28/1/2025 is 29 tháng Chạp (the eve), not 30."""
    names = {e["date"]: e["name_vi"] for e in _entries()}
    assert "28 tháng Chạp" in names["2025-01-27"]
    assert "29 tháng Chạp" in names["2025-01-28"]
    assert "mùng 1" in names["2025-01-29"]
    assert not any("30 tháng Chạp" in name for name in names.values())


def test_every_entry_cites_a_notice_of_the_file() -> None:
    raw = json.loads(HOLIDAYS_FILE.read_text("utf-8"))
    for entry in _entries():
        assert entry["basis"] in raw["notices"], entry
        assert entry["kind"], entry
    culture = [e for e in _entries() if e["date"] == "2026-11-24"]
    assert [e["basis"] for e in culture] == ["80-NQ/TW"]  # the Politburo's, not the Assembly's
    assert "2026-12-04" in raw["source"]


def test_days_off_are_weekdays_and_worked_days_saturdays() -> None:
    raw = json.loads(HOLIDAYS_FILE.read_text("utf-8"))
    assert all(date.fromisoformat(e["date"]).weekday() < 5 for e in raw["days_off"])
    assert all(date.fromisoformat(e["date"]).weekday() == 5 for e in raw["working_saturdays"])


def test_the_longest_tet_break_is_computed_from_the_file() -> None:
    # Tết Ất Tỵ 25/1-2/2/2025 and Tết Bính Ngọ 14/2-22/2/2026: nine days each.
    assert CAL.break_around(date(2026, 2, 17)) == (date(2026, 2, 14), date(2026, 2, 22))
    assert CAL.longest_break("tet") == 9
    assert CAL.longest_break("no-such-kind") == 0
