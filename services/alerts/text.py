"""Bilingual (Vietnamese, English) summaries of verdicts, for on-call staff. Pure.

Written as a provincial IOC operator writes a notice: the unit, the figure with its
counts, the target it is judged against, and the period in words ("hôm nay", "trong
1 giờ qua"), never a window code. Every rate, count, target and time goes through
:mod:`services.common.rates`, so the pager reads exactly what the wall and Grafana show
(11,703 of 11,710 is "99,94 %" here too). Functions take the integer counts and the
target in basis points: the texts round from the counts, never from a float.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from services.common.citations import cite
from services.common.figures import TargetBasis
from services.common.rates import (
    BP_SCALE,
    NO_RATE,
    Lang,
    format_count,
    format_datetime,
    format_duration,
    format_fraction,
    format_rate,
    format_target,
)

PERIOD: Final[dict[str, tuple[str, str]]] = {
    "day": ("hôm nay", "today"),
    "month": ("tháng này", "this month"),
    "year": ("từ đầu năm đến nay", "so far this year"),
    "5m": ("trong 5 phút qua", "over the last 5 minutes"),
    "30m": ("trong 30 phút qua", "over the last 30 minutes"),
    "1h": ("trong 1 giờ qua", "over the last hour"),
    "6h": ("trong 6 giờ qua", "over the last 6 hours"),
}
"""A window as a sentence says it (vi, en); an unknown window is shown as its code."""

SYSTEM: Final[dict[str, tuple[str, str]]] = {
    "documents": ("quản lý văn bản", "document-management"),
    "dossiers": ("một cửa điện tử", "one-stop-shop"),
    "meetings": ("họp trực tuyến", "video-conference"),
}
"""The system a family's events come from (vi, en): what the on-call person calls."""


def period(window: str, lang: Lang) -> str:
    vi, en = PERIOD.get(window, (window, window))
    return vi if lang == "vi" else en


def below_target(
    unit_name: str,
    unit: str,
    kpi_vi: str,
    kpi_en: str,
    window: str,
    numerator: int,
    denominator: int,
    target_bp: int | None,
    unit_name_en: str = "",
    clear_bp: int | None = None,
    basis: TargetBasis | None = None,
) -> tuple[str, str]:
    """``clear_bp``: the figure meets its target, and its alert, still firing, clears
    only at this rate (the hysteresis margin): said so, not "below the target"."""
    rate_vi, rate_en = (
        f"{format_rate(numerator, denominator, lang)} "
        f"({format_fraction(numerator, denominator, lang)})"
        for lang in ("vi", "en")
    )
    if clear_bp is not None:
        vi = (
            f"{unit_name} ({unit}): {kpi_vi} {period(window, 'vi')} đạt {rate_vi}, đã đạt "
            f"mục tiêu {_cited(target_bp, basis, 'vi')}; cảnh báo kết thúc khi đạt "
            f"{format_target(clear_bp, 'vi')}."
        )
        en = (
            f"{unit_name_en or unit_name} ({unit}): {kpi_en} {period(window, 'en')} is "
            f"{rate_en}, meeting the {_cited(target_bp, basis, 'en')} target; the alert clears "
            f"at {format_target(clear_bp, 'en')}."
        )
        return vi, en
    vi = (
        f"{unit_name} ({unit}): {kpi_vi} {period(window, 'vi')} đạt {rate_vi}, thấp hơn "
        f"mục tiêu {_cited(target_bp, basis, 'vi')}."
    )
    en = (
        f"{unit_name_en or unit_name} ({unit}): {kpi_en} {period(window, 'en')} is "
        f"{rate_en}, below the {_cited(target_bp, basis, 'en')} target."
    )
    return vi, en


def burn(
    unit_name: str,
    unit: str,
    kpi_vi: str,
    kpi_en: str,
    long_w: str,
    short_w: str,
    long_counts: tuple[int, int],
    short_counts: tuple[int, int],
    factor_tenths: int,
    target_bp: int | None,
    unit_name_en: str = "",
    basis: TargetBasis | None = None,
) -> tuple[str, str]:
    """Each window's share missed as a multiple of the share the target allows, from
    its counts (numerator, denominator), rounded half up to a tenth ("14,5": 2,775 of
    10,000 missed against 95 % is 14.45 times, which a float made "14,4"); a window that
    counted nothing says so, never "0 times"."""
    # "Error budget" has no Vietnamese an operator uses ("ngân sách lỗi" is a calque):
    # say what it means, the share missed against the share the target allows.
    windows = ((long_w, long_counts), (short_w, short_counts))
    times = {w: missed_multiple_tenths(n, d, target_bp) for w, (n, d) in windows}
    counted = [w for w, _ in windows if times[w] is not None]
    empty = [w for w, _ in windows if times[w] is None]
    numerator, denominator = long_counts
    parts_vi = " và ".join(f"{period(w, 'vi')} gấp {_tenths(times[w], 'vi')} lần" for w in counted)
    vi = f"{unit_name} ({unit}): {kpi_vi} đang giảm nhanh: "
    en = f"{unit_name_en or unit_name} ({unit}): {kpi_en} is falling fast: "
    if counted:
        vi += f"tỷ lệ chưa đạt {parts_vi} mức mục tiêu {_cited(target_bp, basis, 'vi')} cho phép"
        en += (
            f"the share missed {_missed_en(counted, times)} what the "
            f"{_cited(target_bp, basis, 'en')} target allows"
        )
    else:
        vi += f"mục tiêu {_cited(target_bp, basis, 'vi')}"
        en += f"the {_cited(target_bp, basis, 'en')} target"
    note_vi = f"ngưỡng cảnh báo: gấp {_tenths(factor_tenths, 'vi')} lần"
    note_en = f"alert at {_tenths(factor_tenths, 'en')} times"
    if empty:
        note_vi = f"{' và '.join(period(w, 'vi') for w in empty)} chưa có số liệu; {note_vi}"
        note_en = f"nothing counted {' or '.join(period(w, 'en') for w in empty)}; {note_en}"
    vi += (
        f" ({note_vi}); {period(long_w, 'vi')}: {format_rate(numerator, denominator, 'vi')} "
        f"({format_fraction(numerator, denominator, 'vi')})."
    )
    en += (
        f" ({note_en}); {period(long_w, 'en')}: {format_rate(numerator, denominator, 'en')} "
        f"({format_fraction(numerator, denominator, 'en')})."
    )
    return vi, en


def missed_multiple_tenths(numerator: int, denominator: int, target_bp: int | None) -> int | None:
    """The share missed, (d - n) / d, over the share a target allows, (1 - target), in
    tenths rounded half up from the counts; None when nothing is counted or the target
    allows nothing (100 %)."""
    if denominator <= 0 or target_bp is None or target_bp >= BP_SCALE:
        return None
    missed = 10 * (denominator - numerator) * BP_SCALE
    allowed = denominator * (BP_SCALE - target_bp)
    return (2 * missed + allowed) // (2 * allowed)


def _missed_en(windows: list[str], times: dict[str, int | None]) -> str:
    first, *rest = windows
    text = f"{period(first, 'en')} is {_tenths(times[first], 'en')} times"
    for w in rest:
        text += f" and {period(w, 'en')} {_tenths(times[w], 'en')} times"
    return text


def _tenths(tenths: int | None, lang: Lang) -> str:
    """A multiple in tenths: "14,5" (vi), "14.5" (en); "20" not "20.0"; thousands grouped."""
    whole, tenth = divmod(tenths or 0, 10)
    mark = "," if lang == "vi" else "."
    return format_count(whole, lang) + (f"{mark}{tenth}" if tenth else "")


def held(since: datetime, until: datetime) -> tuple[str, str]:
    """What a firing burn alert kept firing after its pair stopped burning adds to its
    summary (vi, en): the on-call person sees it is no longer burning, and when it ends."""
    vi = (
        f" Đã ngừng giảm nhanh từ {format_datetime(since, 'vi')}; cảnh báo tự kết thúc lúc "
        f"{format_datetime(until, 'vi')} nếu không giảm nhanh trở lại."
    )
    en = (
        f" No longer falling fast since {format_datetime(since, 'en')}; resolves at "
        f"{format_datetime(until, 'en')} unless it falls fast again."
    )
    return vi, en


def silent(
    unit_name: str,
    unit: str,
    family: str,
    silent_s: float,
    last: datetime | None,
    unit_name_en: str = "",
) -> tuple[str, str]:
    sys_vi, sys_en = SYSTEM.get(family, (family, family))
    since_vi = f"lần cuối: {format_datetime(last, 'vi')}" if last else "chưa từng nhận được"
    since_en = f"last received {format_datetime(last, 'en')}" if last else "nothing received yet"
    vi = (
        f"{unit_name} ({unit}): không nhận được dữ liệu từ hệ thống {sys_vi} trong "
        f"{format_duration(silent_s, 'vi')} làm việc ({since_vi})."
    )
    en = (
        f"{unit_name_en or unit_name} ({unit}): no data from the {sys_en} system for "
        f"{format_duration(silent_s, 'en')} of working time ({since_en})."
    )
    return vi, en


def rejections(key_id: str, rejected: int, total: int, window: str) -> tuple[str, str]:
    who_vi = "mọi khóa" if key_id == "all" else f"khóa {key_id}"
    who_en = "all keys" if key_id == "all" else f"key {key_id}"
    vi = (
        f"Hệ thống gửi dữ liệu ({who_vi}) bị từ chối {format_rate(rejected, total, 'vi')} "
        f"bản tin {period(window, 'vi')} ({format_fraction(rejected, total, 'vi')}): "
        "cần kiểm tra kết nối tích hợp."
    )
    en = (
        f"Publisher ({who_en}) had {format_rate(rejected, total, 'en')} of its events "
        f"rejected {period(window, 'en')} ({format_fraction(rejected, total, 'en')}): "
        "check its integration."
    )
    return vi, en


def _target(target_bp: int | None, lang: Lang) -> str:
    # A figure the alerts judge always has a target; "–" rather than a made-up one.
    return NO_RATE if target_bp is None else format_target(target_bp, lang)


def _cited(target_bp: int | None, basis: TargetBasis | None, lang: Lang) -> str:
    """The target with what it rests on (a directive's 100 % and a province's own are
    not the same news to the person paged)."""
    cited = cite(basis, lang)
    return f"{_target(target_bp, lang)} ({cited})" if cited else _target(target_bp, lang)
