"""The one display rule: rates from integer counts, counts, targets and dates in vi and en."""

from __future__ import annotations

from datetime import UTC, date, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.rates import (
    format_count,
    format_date,
    format_datetime,
    format_duration,
    format_fraction,
    format_rate,
    format_target,
    meets,
    rate_bp,
    to_bp,
)
from services.common.units import VN_TZ


def test_nong_cong_signing_rate_reads_99_94() -> None:
    # Nông Cống, 29/11/2023: 11,703 signed documents sent on TD-Office, 99.94 %.
    assert rate_bp(11_703, 11_710) == 9994
    assert format_rate(11_703, 11_710, "vi") == "99,94 %"
    assert format_rate(11_703, 11_710, "en") == "99.94%"


def test_29_of_100_is_not_truncated_through_a_float() -> None:
    # 0.29 * 100 is 28.999999999999996 in binary floating point.
    assert format_rate(29, 100, "vi") == "29,00 %"
    assert format_rate(29, 100, "en") == "29.00%"


def test_an_item_missing_is_never_100() -> None:
    # 99.995 % rounds half up to 100.00 %, which would claim every item counts.
    assert rate_bp(19_999, 20_000) == 9999
    assert format_rate(19_999, 20_000, "vi") == "99,99 %"
    assert format_rate(999_999, 1_000_000, "en") == "99.99%"
    assert format_rate(7, 7, "vi") == "100,00 %"


def test_an_item_counted_is_never_0() -> None:
    # The symmetric end: 0,00 % means no item counts, so 1 of 20,001 shows 0,01 %.
    assert rate_bp(1, 20_001) == 1
    assert format_rate(1, 1_000_000, "vi") == "0,01 %"
    assert format_rate(0, 1_000_000, "vi") == "0,00 %"


def test_half_up_exactly_at_the_half_from_integers() -> None:
    # 1/32 is 312.5 bp exactly: half up gives 313 (Python's round() would give 312).
    assert rate_bp(1, 32) == 313
    assert rate_bp(1, 64) == 156  # 156.25 -> 156
    assert rate_bp(3, 64) == 469  # 468.75 -> 469
    assert rate_bp(1, 80_000) == 1  # 0.125 bp, kept off 0 (an item counts)
    assert rate_bp(5, 80_000) == 1  # 0.625 -> 1
    assert rate_bp(3, 20_000) == 2  # 1.5 -> 2, half up
    assert rate_bp(5, 20_000) == 3  # 2.5 -> 3, half up (not to even)
    assert format_rate(5, 20_000, "en") == "0.03%"


def test_0_of_n_and_0_of_0() -> None:
    assert rate_bp(0, 12) == 0
    assert format_rate(0, 12, "vi") == "0,00 %"
    assert rate_bp(0, 0) is None
    assert format_rate(0, 0, "vi") == "–"
    assert format_rate(0, 0, "en") == "–"


def test_a_numerator_beyond_its_denominator_is_a_counting_bug() -> None:
    with pytest.raises(ValueError, match="outside"):
        rate_bp(11, 10)
    with pytest.raises(ValueError, match="outside"):
        rate_bp(-1, 10)


def test_targets_trim_trailing_zeros() -> None:
    assert to_bp(0.975) == 9750
    assert format_target(to_bp(0.975), "vi") == "97,5 %"
    assert format_target(9750, "en") == "97.5%"
    assert format_target(9000, "vi") == "90 %"
    assert format_target(10_000, "en") == "100%"
    assert format_target(9925, "vi") == "99,25 %"
    assert format_target(5, "vi") == "0,05 %"


def test_to_bp_reads_the_float_as_written() -> None:
    assert [to_bp(x) for x in (0.95, 0.98, 0.83, 0.29, 1.0, 0.0)] == [
        9500,
        9800,
        8300,
        2900,
        10_000,
        0,
    ]
    assert to_bp(0.99995) == 10_000  # half up
    for bad in (1.01, -0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            to_bp(bad)


def test_meets_is_exact_on_the_counts() -> None:
    assert meets(95, 100, 9500)  # on the target meets it
    assert not meets(94, 100, 9500)
    # 9,749.6 bp shows as 97,50 % but is under a 97,5 % target.
    assert format_rate(24_374, 25_000, "vi") == "97,50 %"
    assert not meets(24_374, 25_000, 9750)
    # 0.85 in floats is under 0.95 - 0.10; in integers 85 of 100 meets 8500.
    assert meets(85, 100, 9500 - 1000)
    assert not meets(0, 0, 0)
    # One item in a trillion under the target is under it: no tolerance.
    assert not meets(999_899_999_999, 10**12, 9999)
    assert meets(999_900_000_000, 10**12, 9999)


def test_thousands_separators() -> None:
    assert format_count(11_703, "vi") == "11.703"
    assert format_count(11_703, "en") == "11,703"
    assert format_count(1_234_567, "vi") == "1.234.567"
    assert format_count(999, "vi") == "999"
    assert format_fraction(11_703, 11_710, "vi") == "11.703 / 11.710"
    assert format_fraction(11_703, 11_710, "en") == "11,703 / 11,710"


def test_dates_in_vietnam_time() -> None:
    # 03:15 UTC is 10:15 in Vietnam; 20:00 UTC on the 3rd is already the 4th there.
    at = datetime(2026, 12, 4, 3, 15, tzinfo=UTC)
    assert format_datetime(at, "vi") == "04/12/2026 10:15"
    assert format_datetime(at, "en") == "4 Dec 2026 10:15"
    evening = datetime(2026, 12, 3, 20, 0, tzinfo=UTC)
    assert format_date(evening, "vi") == "04/12/2026"
    assert format_date(date(2026, 12, 4), "vi") == "04/12/2026"
    assert format_date(date(2026, 1, 2), "en") == "2 Jan 2026"
    assert format_datetime(datetime(2026, 1, 2, 9, 5, tzinfo=VN_TZ), "vi") == "02/01/2026 09:05"


def test_a_time_without_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="offset"):
        format_datetime(datetime(2026, 12, 4, 10, 15), "vi")


counts = st.integers(min_value=1, max_value=10**9).flatmap(
    lambda den: st.tuples(st.integers(min_value=0, max_value=den), st.just(den))
)


@given(counts)
def test_rate_bp_is_the_exact_rate_rounded_half_up(nd: tuple[int, int]) -> None:
    num, den = nd
    exact = Fraction(num, den) * 10_000
    half_up = int(exact + Fraction(1, 2))  # floor for non-negative values
    expected = 9999 if half_up == 10_000 and num < den else half_up
    expected = 1 if expected == 0 and num > 0 else expected
    assert rate_bp(num, den) == expected
    assert abs(Fraction(rate_bp(num, den) or 0) - exact) <= 1  # the ends move it by < 1 bp


@given(counts, st.integers(min_value=0, max_value=10_000))
def test_meets_agrees_with_fractions(nd: tuple[int, int], target_bp: int) -> None:
    num, den = nd
    assert meets(num, den, target_bp) == (Fraction(num, den) >= Fraction(target_bp, 10_000))


@given(counts)
def test_vi_and_en_say_the_same_number(nd: tuple[int, int]) -> None:
    vi, en = format_rate(*nd, "vi"), format_rate(*nd, "en")
    assert vi.endswith(" %") and en.endswith("%") and not en.endswith(" %")
    assert vi[:-2].replace(",", ".") == en[:-1]
    whole, _, decimals = en[:-1].partition(".")
    assert len(decimals) == 2 and 0 <= int(whole) <= 100


def test_durations_in_hours_and_whole_minutes() -> None:
    assert format_duration(7_500, "vi") == "2 giờ 5 phút"
    assert format_duration(7_500, "en") == "2 h 5 min"
    assert format_duration(3_599.9, "vi") == "59 phút"  # not yet an hour
    assert format_duration(7_200, "en") == "2 h"
    assert format_duration(3_600 * 1_200, "vi") == "1.200 giờ"
    assert format_duration(0, "en") == "0 min"
