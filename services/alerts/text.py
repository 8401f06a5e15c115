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

from services.common.rates import (
    NO_RATE,
    Lang,
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
) -> tuple[str, str]:
    vi = (
        f"{unit_name} ({unit}): {kpi_vi} {period(window, 'vi')} đạt "
        f"{format_rate(numerator, denominator, 'vi')} "
        f"({format_fraction(numerator, denominator, 'vi')}), thấp hơn mục tiêu "
        f"{_target(target_bp, 'vi')}."
    )
    en = (
        f"{unit_name_en or unit_name} ({unit}): {kpi_en} {period(window, 'en')} is "
        f"{format_rate(numerator, denominator, 'en')} "
        f"({format_fraction(numerator, denominator, 'en')}), below the "
        f"{_target(target_bp, 'en')} target."
    )
    return vi, en


def burn(
    unit_name: str,
    unit: str,
    kpi_vi: str,
    kpi_en: str,
    long_w: str,
    short_w: str,
    burn_long: float,
    burn_short: float,
    factor: float,
    target_bp: int | None,
    numerator: int,
    denominator: int,
    unit_name_en: str = "",
) -> tuple[str, str]:
    # "Error budget" has no Vietnamese an operator uses ("ngân sách lỗi" is a calque):
    # say what it means, the share missed against the share the target allows.
    vi = (
        f"{unit_name} ({unit}): {kpi_vi} đang giảm nhanh: tỷ lệ chưa đạt "
        f"{period(long_w, 'vi')} gấp {_times(burn_long, 'vi')} lần và "
        f"{period(short_w, 'vi')} gấp {_times(burn_short, 'vi')} lần mức mục tiêu "
        f"{_target(target_bp, 'vi')} cho phép (ngưỡng cảnh báo: gấp "
        f"{_times(factor, 'vi')} lần); {period(long_w, 'vi')}: "
        f"{format_rate(numerator, denominator, 'vi')} "
        f"({format_fraction(numerator, denominator, 'vi')})."
    )
    en = (
        f"{unit_name_en or unit_name} ({unit}): {kpi_en} is falling fast: the share missed "
        f"{period(long_w, 'en')} is {_times(burn_long, 'en')} times and "
        f"{period(short_w, 'en')} {_times(burn_short, 'en')} times what the "
        f"{_target(target_bp, 'en')} target allows (alert at "
        f"{_times(factor, 'en')} times); {period(long_w, 'en')}: "
        f"{format_rate(numerator, denominator, 'en')} "
        f"({format_fraction(numerator, denominator, 'en')})."
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


def _times(factor: float, lang: Lang) -> str:
    """A multiple with one decimal at most: "14,4" (vi), "14.4" (en); "6" not "6.0"."""
    plain = f"{factor:.1f}".removesuffix(".0")
    return plain.replace(".", ",") if lang == "vi" else plain
