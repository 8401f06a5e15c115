"""Working time in Vietnam: hours, weekends, holidays, working Saturdays."""

import json
import logging
import math
from datetime import date, datetime

import holidays
import pytest

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


def _listed() -> set[date]:
    raw = json.loads(HOLIDAYS_FILE.read_text("utf-8"))
    return {date.fromisoformat(d["date"]) for d in raw["days_off"]}


def test_the_file_covers_2025_to_2027_and_names_its_source() -> None:
    assert {d.year for d in _listed()} == {2025, 2026, 2027}
    assert "Bộ luật Lao động" in HOLIDAYS_FILE.read_text("utf-8")


def test_the_file_holds_every_day_off_the_law_fixes_in_the_years_it_lists() -> None:
    """The notices add swaps and extra Tết days to the Labour Code's; they never drop one:
    a day the law gives and the file lacks is a typo in the file."""
    listed = _listed()
    for year in {d.year for d in listed}:
        law = {d for d in holidays.country_holidays("VN", years=year) if d.weekday() < 5}
        assert law <= listed, sorted(law - listed)


def test_a_year_the_file_does_not_list_gets_the_law_s_days_off_and_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Review 68: from 2028 Tết counted as working time, and every commune paged UnitSilent."""
    with caplog.at_level(logging.WARNING):
        calendar = load_calendar(HOLIDAYS_FILE, today=date(2027, 12, 1))
    eve_closing, third_day_noon = vn(2028, 1, 25, 17), vn(2028, 1, 28, 12)
    assert calendar.working_seconds(eve_closing, third_day_noon) == 0.0  # mùng 1-3 Tết Mậu Thân
    assert calendar.kinds[date(2028, 1, 26)] == "tet"
    assert "by law" in calendar.names[date(2028, 1, 26)]
    assert calendar.is_working_day(date(2028, 2, 1))
    assert "lists no days off for 2028" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_calendar(HOLIDAYS_FILE, today=date(2026, 12, 6))  # 2026 and 2027 listed
    assert caplog.text == ""


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


def _new_moon_day(k: int) -> int:
    """Julian day number (Vietnam time, UTC+7) of the k-th new moon since 1900-01-01:
    the astronomical algorithm Hồ Ngọc Đức's Vietnamese lunar calendar uses (after Meeus)."""
    t = k / 1236.85
    rad = math.pi / 180
    jd = 2415020.75933 + 29.53058868 * k + 0.0001178 * t**2 - 0.000000155 * t**3
    jd += 0.00033 * math.sin((166.56 + 132.87 * t - 0.009173 * t**2) * rad)
    m = (359.2242 + 29.10535608 * k - 0.0000333 * t**2 - 0.00000347 * t**3) * rad
    mpr = (306.0253 + 385.81691806 * k + 0.0107306 * t**2 + 0.00001236 * t**3) * rad
    f = (21.2964 + 390.67050646 * k - 0.0016528 * t**2 - 0.00000239 * t**3) * rad
    c1 = (0.1734 - 0.000393 * t) * math.sin(m) + 0.0021 * math.sin(2 * m)
    c1 += -0.4068 * math.sin(mpr) + 0.0161 * math.sin(2 * mpr) - 0.0004 * math.sin(3 * mpr)
    c1 += 0.0104 * math.sin(2 * f) - 0.0051 * math.sin(m + mpr) - 0.0074 * math.sin(m - mpr)
    c1 += 0.0004 * math.sin(2 * f + m) - 0.0004 * math.sin(2 * f - m)
    c1 += -0.0006 * math.sin(2 * f + mpr) + 0.0010 * math.sin(2 * f - mpr)
    c1 += 0.0005 * math.sin(2 * mpr + m)
    delta_t = -0.000278 + 0.000265 * t + 0.000262 * t**2
    return int(jd + c1 - delta_t + 0.5 + 7 / 24)


def _lunar_day(day: date) -> tuple[int, int]:
    """(day of the lunar month, days in that month) of a Gregorian date, Vietnam time."""
    jd = day.toordinal() + 1721425
    k = int((jd - 2415021.076998695) / 29.530588853)
    while _new_moon_day(k + 1) <= jd:
        k += 1
    while _new_moon_day(k) > jd:
        k -= 1
    start = _new_moon_day(k)
    return jd - start + 1, _new_moon_day(k + 1) - start


def test_the_lunar_helper_knows_the_published_tet_days() -> None:
    assert _lunar_day(date(2025, 1, 29)) == (1, 30)  # mùng 1 Tết Ất Tỵ
    assert _lunar_day(date(2026, 2, 14))[0] == 27  # 27 tháng Chạp Ất Tỵ (9441/TB-BNV)
    assert _lunar_day(date(2026, 2, 22))[0] == 6  # mùng 6 Bính Ngọ


def test_every_tet_day_carries_its_lunar_label() -> None:
    """Each Tết label names the day's lunar date: "N tháng Chạp" before Tết (the last day
    of the month is the eve), "mùng N" after."""
    tet = [entry for entry in _entries() if entry.get("kind") == "tet"]
    assert len(tet) == 15  # five weekdays a year, 2025 to 2027
    for entry in tet:
        lunar, length = _lunar_day(date.fromisoformat(entry["date"]))
        label = entry["name_vi"]
        if lunar > 15:  # the 12th month, before Tết
            assert f"{lunar} tháng Chạp" in label, entry
            assert ("giao thừa" in label) == (lunar == length), entry
        else:
            assert f"mùng {lunar}" in label, entry
