"""Rates, counts, targets and dates as people read them: one rule from integer counts.

Every figure shown to a person (the wall, alert texts, Grafana, exports, display fields
of /v1/kpis) goes through this module, so that the wall, the pager and the dashboards
never disagree. Pure: no I/O, no clock.

- A rate is computed in basis points (1/10,000) from the integer counts, rounded half up
  by integer arithmetic (never through a float: 0.29 is 0.28999… in binary), and shown
  with two decimals: 11,703 of 11,710 is "99,94 %" in Vietnamese and "99.94%" in English.
- The ends are kept for the counts that earn them: 100 % means every item counts and
  0 % means no item counts. A rate that would round to 10000 while an item is missing is
  shown as 99,99 %; a rate that would round to 0 while an item counts is shown as 0,01 %
  (symmetry: neither end is ever claimed by rounding).
- Whether a rate meets its target is judged exactly on the counts (``meets``), not on the
  shown, rounded rate: 9,749.6 bp shows as 97,50 % yet misses a 97,5 % target.
- Targets are basis points; shown with trailing zeros trimmed ("97,5 %", "90 %").
- Vietnamese writes thousands with "." and decimals with "," and puts a space before
  "%"; English writes "11,703" and "99.94%".
- Dates and times are shown in Vietnam time (Asia/Ho_Chi_Minh) whatever the server's zone:
  "04/12/2026 10:15" in Vietnamese, "4 Dec 2026 10:15" in English.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final, Literal

from services.common.units import VN_TZ

Lang = Literal["vi", "en"]

BP_SCALE: Final = 10_000
"""Basis points in one whole (100 %)."""

NO_RATE: Final = "–"
"""What is shown for a rate with no item to count (0 of 0)."""

_MONTHS_EN: Final = tuple("Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split())


def rate_bp(numerator: int, denominator: int) -> int | None:
    """The rate in basis points, rounded half up; None when nothing is counted.

    Never 10000 unless every item counts, never 0 unless no item counts (see the module
    docstring). A numerator outside 0..denominator is a counting bug, refused loudly.
    """
    if denominator <= 0:
        return None
    if not 0 <= numerator <= denominator:
        raise ValueError(f"numerator {numerator} outside 0..{denominator}")
    # half up: floor(n * 10000 / d + 1/2) = floor((2 * n * 10000 + d) / (2 * d))
    bp = (2 * numerator * BP_SCALE + denominator) // (2 * denominator)
    if bp == BP_SCALE and numerator < denominator:
        return BP_SCALE - 1
    if bp == 0 and numerator > 0:
        return 1
    return bp


def meets(numerator: int, denominator: int, target_bp: int) -> bool:
    """Whether numerator / denominator >= target_bp / 10000, exactly: on the target meets it.

    Nothing counted (denominator 0) meets no target: the caller says "no data" before asking.
    """
    if denominator <= 0:
        return False
    return numerator * BP_SCALE >= target_bp * denominator


def to_bp(ratio: float) -> int:
    """A ratio 0..1 given as a float (a target such as 0.975) in basis points, half up.

    Read through the float's shortest decimal form, so 0.975 is 9750 and not 9749.
    """
    try:
        exact = Decimal(repr(float(ratio)))
        bp = int((exact * BP_SCALE).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except (InvalidOperation, ValueError, OverflowError):
        raise ValueError(f"not a ratio: {ratio!r}") from None
    if not 0 <= bp <= BP_SCALE:
        raise ValueError(f"ratio {ratio!r} outside 0..1")
    return bp


def format_count(n: int, lang: Lang) -> str:
    """A whole number with thousands separators: "11.703" (vi), "11,703" (en)."""
    plain = f"{n:,}"
    return plain.replace(",", ".") if lang == "vi" else plain


def format_fraction(numerator: int, denominator: int, lang: Lang) -> str:
    """Counted of total: "11.703 / 11.710" (vi), "11,703 / 11,710" (en)."""
    return f"{format_count(numerator, lang)} / {format_count(denominator, lang)}"


def format_rate(numerator: int, denominator: int, lang: Lang) -> str:
    """The rate with two decimals: "99,94 %" (vi), "99.94%" (en); "–" for 0 of 0."""
    bp = rate_bp(numerator, denominator)
    return NO_RATE if bp is None else format_bp(bp, lang)


def format_bp(bp: int, lang: Lang) -> str:
    """Basis points with two decimals ("99,94 %"), for a rate already in basis points."""
    whole, hundredths = divmod(bp, 100)
    return _percent(f"{format_count(whole, lang)}{_decimal_mark(lang)}{hundredths:02d}", lang)


def format_target(bp: int, lang: Lang) -> str:
    """A target with trailing zeros trimmed: 9750 is "97,5 %" (vi) / "97.5%" (en); 9000 "90 %"."""
    whole, hundredths = divmod(bp, 100)
    if hundredths == 0:
        return _percent(format_count(whole, lang), lang)
    digits = f"{hundredths:02d}".rstrip("0")
    return _percent(f"{format_count(whole, lang)}{_decimal_mark(lang)}{digits}", lang)


def format_date(d: date, lang: Lang) -> str:
    """A calendar day: "04/12/2026" (vi), "4 Dec 2026" (en).

    An aware datetime is first taken to Vietnam time (its local day is the one meant); a
    naive datetime has no place in time and is refused.
    """
    if isinstance(d, datetime):
        d = _in_vietnam(d).date()
    if lang == "vi":
        return f"{d.day:02d}/{d.month:02d}/{d.year}"
    return f"{d.day} {_MONTHS_EN[d.month - 1]} {d.year}"


def format_datetime(dt: datetime, lang: Lang) -> str:
    """An instant in Vietnam time: "04/12/2026 10:15" (vi), "4 Dec 2026 10:15" (en)."""
    local = _in_vietnam(dt)
    return f"{format_date(local.date(), lang)} {local:%H:%M}"


def format_duration(seconds: float, lang: Lang) -> str:
    """A duration in whole minutes, as hours and minutes: "2 giờ 5 phút" (vi), "2 h 5 min" (en).

    Whole minutes, rounded down: a silence of 59 min 59 s has not yet lasted an hour.
    """
    hours, minutes = divmod(int(seconds // 60), 60)
    hour_word, minute_word = ("giờ", "phút") if lang == "vi" else ("h", "min")
    if hours == 0:
        return f"{minutes} {minute_word}"
    text = f"{format_count(hours, lang)} {hour_word}"
    return f"{text} {minutes} {minute_word}" if minutes else text


def _in_vietnam(dt: datetime) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"a time without offset cannot be placed in Vietnam time: {dt!r}")
    return dt.astimezone(VN_TZ)


def _decimal_mark(lang: Lang) -> str:
    return "," if lang == "vi" else "."


def _percent(number: str, lang: Lang) -> str:
    # Vietnamese typography (and the provinces' published reports) puts a space before %.
    return f"{number} %" if lang == "vi" else f"{number}%"
