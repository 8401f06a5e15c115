"""Bilingual (Vietnamese, English) summaries of verdicts, for on-call staff. Pure."""

from __future__ import annotations


def pct(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


def below_target(
    unit_name: str,
    unit: str,
    kpi_vi: str,
    kpi_en: str,
    window: str,
    ratio: float | None,
    target: float,
    numerator: int,
    denominator: int,
) -> tuple[str, str]:
    vi = (
        f"{unit_name} ({unit}): {kpi_vi} ({window}) là {pct(ratio)}, dưới chỉ tiêu "
        f"{pct(target)} ({numerator}/{denominator})."
    )
    en = (
        f"{unit_name} ({unit}): {kpi_en} ({window}) is {pct(ratio)}, below the target of "
        f"{pct(target)} ({numerator} of {denominator})."
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
    target: float,
    numerator: int,
    denominator: int,
) -> tuple[str, str]:
    vi = (
        f"{unit_name} ({unit}): {kpi_vi} tiêu hao ngân sách lỗi nhanh gấp {burn_long:.1f} lần "
        f"({long_w}) và {burn_short:.1f} lần ({short_w}), ngưỡng {factor:g}; chỉ tiêu "
        f"{pct(target)}; {long_w}: {numerator}/{denominator}."
    )
    en = (
        f"{unit_name} ({unit}): {kpi_en} burns its error budget {burn_long:.1f}x ({long_w}) "
        f"and {burn_short:.1f}x ({short_w}), threshold {factor:g}x; target {pct(target)}; "
        f"{long_w}: {numerator} of {denominator}."
    )
    return vi, en


FAMILY_VI = {"documents": "văn bản", "dossiers": "hồ sơ", "meetings": "cuộc họp"}


def silent(
    unit_name: str, unit: str, family: str, silent_s: float, last: str | None
) -> tuple[str, str]:
    minutes = silent_s / 60
    since_vi = f"lần cuối {last}" if last else "chưa từng gửi"
    since_en = f"last event {last}" if last else "never published"
    vi = (
        f"{unit_name} ({unit}) không gửi sự kiện {FAMILY_VI.get(family, family)} nào trong "
        f"{minutes:.0f} phút giờ hành chính ({since_vi})."
    )
    en = (
        f"{unit_name} ({unit}) has published no {family} events for {minutes:.0f} working "
        f"minutes ({since_en})."
    )
    return vi, en


def rejections(
    key_id: str, share: float, rejected: int, total: int, window: str
) -> tuple[str, str]:
    who = "mọi khóa" if key_id == "all" else f"khóa {key_id}"
    who_en = "all keys" if key_id == "all" else f"key {key_id}"
    vi = (
        f"Hệ thống tích hợp ({who}) bị từ chối {pct(share)} sự kiện trong {window} "
        f"({rejected}/{total}): kiểm tra tích hợp."
    )
    en = (
        f"Publisher ({who_en}) had {pct(share)} of its events rejected over {window} "
        f"({rejected} of {total}): its integration is broken."
    )
    return vi, en
