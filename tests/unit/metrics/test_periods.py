"""Window arithmetic in Vietnam time, with explicit timestamps around period ends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from services.metrics.periods import VN_TZ, Periods, bucket_of, local_day, month_of


def test_local_midnight_is_17_00_utc() -> None:
    assert local_day(datetime(2026, 11, 22, 16, 59, 59, tzinfo=UTC)) == date(2026, 11, 22)
    assert local_day(datetime(2026, 11, 22, 17, 0, 0, tzinfo=UTC)) == date(2026, 11, 23)


def test_an_offset_in_the_event_time_does_not_change_the_local_day() -> None:
    same_instant = datetime(2026, 11, 23, 0, 30, tzinfo=VN_TZ)
    assert local_day(same_instant.astimezone(UTC)) == date(2026, 11, 23)
    new_york = timezone(timedelta(hours=-5))
    assert local_day(same_instant.astimezone(new_york)) == date(2026, 11, 23)


def test_month_end_and_year_end() -> None:
    last = Periods.at(datetime(2026, 12, 31, 16, 59, 59, tzinfo=UTC))  # 23:59:59 local
    first = Periods.at(datetime(2026, 12, 31, 17, 0, 0, tzinfo=UTC))  # 00:00:00 local
    assert (last.day, last.year) == (date(2026, 12, 31), 2026)
    assert (first.day, first.year) == (date(2027, 1, 1), 2027)
    assert first.month == last.month + 1
    assert first.start("month") == datetime(2027, 1, 1, tzinfo=VN_TZ)
    assert first.start("year").isoformat() == "2027-01-01T00:00:00+07:00"
    assert last.start("month").isoformat() == "2026-12-01T00:00:00+07:00"


def test_day_start_is_local_midnight() -> None:
    periods = Periods.at(datetime(2026, 11, 23, 3, 15, tzinfo=UTC))
    assert periods.start("day").isoformat() == "2026-11-23T00:00:00+07:00"
    assert periods.start("day").astimezone(UTC) == datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


def test_february_of_a_leap_year_ends_on_the_29th() -> None:
    end = Periods.at(datetime(2028, 2, 29, 16, 59, tzinfo=UTC))
    after = Periods.at(datetime(2028, 2, 29, 17, 0, tzinfo=UTC))
    assert end.day == date(2028, 2, 29)
    assert after.day == date(2028, 3, 1)
    assert month_of(after.day) == month_of(end.day) + 1


def test_rolling_hour_sums_twelve_five_minute_buckets() -> None:
    now = datetime(2026, 11, 23, 3, 17, 30, tzinfo=UTC)
    periods = Periods.at(now)
    current = bucket_of(now.timestamp())
    assert current == datetime(2026, 11, 23, 3, 15, tzinfo=UTC).timestamp()
    assert periods.first_bucket("1h") == current - 11 * 300
    assert periods.first_bucket("5m") == current
    assert periods.first_bucket("6h") == current - 71 * 300


def test_late_means_after_its_local_day_ended() -> None:
    periods = Periods.at(datetime(2026, 11, 22, 17, 0, 5, tzinfo=UTC))  # 00:00:05 local
    assert periods.is_late(date(2026, 11, 22))
    assert not periods.is_late(date(2026, 11, 23))
