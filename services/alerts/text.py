"""Bilingual (Vietnamese, English) summaries of verdicts, for on-call staff. Pure.

Written as a provincial IOC operator writes a notice: the unit, the figure with its
counts, the target it is judged against, and the period in words ("hôm nay", "trong
1 giờ qua"), never a window code. Every rate, count, target and time goes through
:mod:`services.common.rates`, so the pager reads exactly what the wall and Grafana show
(11,703 of 11,710 is "99,94 %" here too). Functions take the integer counts and the
target in basis points: the texts round from the counts, never from a float.
"""

from __future__ import annotations

import math
from datetime import datetime
from fractions import Fraction
from typing import Final

from services.alerts.model import Status
from services.common.citations import cite
from services.common.figures import Standing, TargetBasis
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


_ROLLING_S: Final[dict[float, str]] = {300: "5m", 1800: "30m", 3600: "1h", 21600: "6h"}
"""The rolling windows of :data:`PERIOD` by their length: a span of one of them reads as
it does in the burn texts ("over the last hour", not "over the last 1 h")."""


def last(seconds: float, lang: Lang) -> str:
    """A rolling span given in seconds, in words ("trong 10 phút qua", "over the last 10
    min"), whatever its length: a window setting is seconds, never a code to show."""
    if seconds in _ROLLING_S:
        return period(_ROLLING_S[seconds], lang)
    if seconds < 60:  # the duration formatter counts whole minutes: "0 min" says nothing
        span = f"{format_count(int(seconds), lang)} {'giây' if lang == 'vi' else 's'}"
    else:
        span = format_duration(seconds, lang)
    return f"trong {span} qua" if lang == "vi" else f"over the last {span}"


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
    standing: Standing = Standing.BELOW,
) -> tuple[str, str]:
    """The figure as it stands (``standing``, the shared judgement) against its target.

    Below: the breach. Meets: the alert recovered, or, with ``clear_bp``, is still firing
    and clears only at that rate (the hysteresis margin); either way not "below the
    target", which a resolution carried to the pager until review 31. Low volume or no
    data: too few items to judge, said so, never "below" either.
    """
    name_en = unit_name_en or unit_name
    rate_vi, rate_en = (
        f"{format_rate(numerator, denominator, lang)} "
        f"({format_fraction(numerator, denominator, lang)})"
        for lang in ("vi", "en")
    )
    head_vi = f"{unit_name} ({unit}): {kpi_vi} {period(window, 'vi')}"
    head_en = f"{name_en} ({unit}): {kpi_en} {period(window, 'en')}"
    target_vi, target_en = _cited(target_bp, basis, "vi"), _cited(target_bp, basis, "en")
    if standing is Standing.MEETS:
        vi = f"{head_vi} đạt {rate_vi}, đã đạt mục tiêu {target_vi}"
        en = f"{head_en} is {rate_en}, meeting the {target_en} target"
        if clear_bp is None:
            return f"{vi}.", f"{en}."
        return (
            f"{vi}; cảnh báo kết thúc khi đạt {format_target(clear_bp, 'vi')}.",
            f"{en}; the alert clears at {format_target(clear_bp, 'en')}.",
        )
    if standing is Standing.NO_DATA:
        return (
            f"{head_vi} chưa có số liệu, chưa đủ để đánh giá so với mục tiêu {target_vi}.",
            f"{head_en}: nothing counted, too few items to judge against the {target_en} target.",
        )
    if standing is Standing.LOW_VOLUME:
        return (
            f"{head_vi} đạt {rate_vi}, chưa đủ số lượng để đánh giá so với mục tiêu {target_vi}.",
            f"{head_en} is {rate_en}: too few items to judge against the {target_en} target.",
        )
    return (
        f"{head_vi} đạt {rate_vi}, thấp hơn mục tiêu {target_vi}.",
        f"{head_en} is {rate_en}, below the {target_en} target.",
    )


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
    status: Status = Status.BREACH,
) -> tuple[str, str]:
    """Each window's share missed as a multiple of the share the target allows, from
    its counts (numerator, denominator), quoted beside the alert's threshold
    (:func:`quoted_hundredths`); a window that counted nothing says so, never "0 times".
    A target that allows nothing (100 %) has no allowance to burn: said so, never
    "nothing counted" (review 88).

    ``status`` is the pair's verdict: only a BREACH "is falling fast". A CLEAR (the text
    a resolution carries) is no longer falling fast; a HOLD has too few items to judge.
    """
    numerator, denominator = long_counts
    tail_vi, tail_en = (
        f"{period(long_w, lang)}: {format_rate(numerator, denominator, lang)} "
        f"({format_fraction(numerator, denominator, lang)})."
        for lang in ("vi", "en")
    )
    head_vi = f"{unit_name} ({unit}): {kpi_vi}"
    head_en = f"{unit_name_en or unit_name} ({unit}): {kpi_en}"
    if target_bp is None or target_bp >= BP_SCALE:
        return (
            f"{head_vi}: mục tiêu {_cited(target_bp, basis, 'vi')} không cho phép mục nào "
            f"chưa đạt, nên không còn đánh giá tốc độ giảm; {tail_vi}",
            f"{head_en}: the {_cited(target_bp, basis, 'en')} target allows no item missed, "
            f"so there is no allowance to burn and its pace is no longer judged; {tail_en}",
        )
    # "Error budget" has no Vietnamese an operator uses ("ngân sách lỗi" is a calque):
    # say what it means, the share missed against the share the target allows.
    windows = ((long_w, long_counts), (short_w, short_counts))
    quoted = {
        w: quoted_hundredths(missed_multiple(n, d, target_bp), factor_tenths)
        for w, (n, d) in windows
        if d > 0
    }
    counted = [w for w, _ in windows if w in quoted]
    empty = [w for w, _ in windows if w not in quoted]
    parts_vi = " và ".join(
        f"{period(w, 'vi')} gấp {_multiple(quoted[w], 'vi')} lần" for w in counted
    )
    pace_vi, pace_en = _BURN_PACE[status]
    vi = f"{head_vi} {pace_vi}: "
    en = f"{head_en} {pace_en}: "
    if counted:
        vi += f"tỷ lệ chưa đạt {parts_vi} mức mục tiêu {_cited(target_bp, basis, 'vi')} cho phép"
        en += (
            f"the share missed {_missed_en(counted, quoted)} what the "
            f"{_cited(target_bp, basis, 'en')} target allows"
        )
    else:
        vi += f"mục tiêu {_cited(target_bp, basis, 'vi')}"
        en += f"the {_cited(target_bp, basis, 'en')} target"
    note_vi = f"ngưỡng cảnh báo: gấp {_multiple(10 * factor_tenths, 'vi')} lần"
    note_en = f"alert at {_multiple(10 * factor_tenths, 'en')} times"
    if empty:
        note_vi = f"{' và '.join(period(w, 'vi') for w in empty)} chưa có số liệu; {note_vi}"
        note_en = f"nothing counted {' or '.join(period(w, 'en') for w in empty)}; {note_en}"
    return f"{vi} ({note_vi}); {tail_vi}", f"{en} ({note_en}); {tail_en}"


_BURN_PACE: Final[dict[Status, tuple[str, str]]] = {
    Status.BREACH: ("đang giảm nhanh", "is falling fast"),
    Status.CLEAR: ("đã ngừng giảm nhanh", "is no longer falling fast"),
    Status.HOLD: (
        "chưa đủ số lượng để đánh giá tốc độ giảm",
        "has too few items to judge how fast it falls",
    ),
}
"""How a burn text opens, by the pair's verdict (vi, en)."""


def missed_multiple(numerator: int, denominator: int, target_bp: int) -> Fraction:
    """The share missed, (d - n) / d, over the share a target below 100 % allows,
    (1 - target), exactly from the counts (``denominator`` > 0)."""
    return Fraction((denominator - numerator) * BP_SCALE, denominator * (BP_SCALE - target_bp))


def quoted_hundredths(multiple: Fraction, factor_tenths: int) -> int:
    """A burn multiple as quoted beside its alert threshold, in hundredths.

    To a tenth, rounded half up (2,775 of 10,000 missed against 95 % is 14.45 times:
    "14,5", which a float made "14,4"), unless that lands on the other side of the
    threshold than the exact multiple: then to the hundredth, towards the side it is on,
    so 14.38 under 14.4 reads "14,38", never "14,4" (review 88: a resolution quoted the
    hour "gấp 14,4 lần" beside "ngưỡng cảnh báo: gấp 14,4 lần").
    """
    tenths = math.floor(multiple * 10 + Fraction(1, 2))
    over = multiple * 10 >= factor_tenths
    if (tenths >= factor_tenths) == over:
        return 10 * tenths
    return math.ceil(multiple * 100) if over else math.floor(multiple * 100)


def _missed_en(windows: list[str], quoted: dict[str, int]) -> str:
    first, *rest = windows
    text = f"{period(first, 'en')} is {_multiple(quoted[first], 'en')} times"
    for w in rest:
        text += f" and {period(w, 'en')} {_multiple(quoted[w], 'en')} times"
    return text


def _multiple(hundredths: int, lang: Lang) -> str:
    """A multiple in hundredths: "14,5" (vi), "14.38" (en); "20" not "20.0"; thousands
    grouped."""
    whole, part = divmod(hundredths, 100)
    digits = f"{part:02d}".rstrip("0")
    mark = "," if lang == "vi" else "."
    return format_count(whole, lang) + (f"{mark}{digits}" if digits else "")


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


SEVERITY_VI = {"info": "thông tin", "warning": "cảnh báo", "critical": "khẩn cấp"}


def escalated(severity: str) -> tuple[str, str]:
    """What an alert superseded by a graver one adds to its summary (vi, en): its
    resolution is no all-clear, and the new alert is the one to follow."""
    level = SEVERITY_VI.get(severity, severity)
    vi = f" Đã nâng lên mức {level} ({severity}): theo dõi cảnh báo mới."
    en = f" Escalated to {severity}: follow the new alert."
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


def silence_over(
    unit_name: str,
    unit: str,
    family: str,
    silent_s: float,
    after_s: float,
    last: datetime | None,
    unit_name_en: str = "",
    province_back: datetime | None = None,
) -> tuple[str, str]:
    """A UnitSilent that clears (an event arrived, or the unit's usual gap grew): no longer
    silent, with how long since its last event and after how long it would be. Until
    review 31 a resolution said "no data ... for 0 min of working time". With
    ``province_back`` its silence counts from when its province's system came back
    (:mod:`services.alerts.province`): "2 min ago" beside Friday's event misread."""
    sys_vi, sys_en = SYSTEM.get(family, (family, family))
    quiet_vi, quiet_en = format_duration(silent_s, "vi"), format_duration(silent_s, "en")
    if last is not None and province_back is not None:
        since_vi = (
            f"lần cuối: {format_datetime(last, 'vi')}; hệ thống của tỉnh hoạt động lại từ "
            f"{format_datetime(province_back, 'vi')}, cách đây {quiet_vi} làm việc"
        )
        since_en = (
            f"last received {format_datetime(last, 'en')}; the province's system is back "
            f"since {format_datetime(province_back, 'en')}, {quiet_en} of working time ago"
        )
    elif last is not None:
        since_vi = f"lần cuối: {format_datetime(last, 'vi')}, cách đây {quiet_vi} làm việc"
        since_en = f"last received {format_datetime(last, 'en')}, {quiet_en} of working time ago"
    else:
        since_vi = f"chưa từng nhận được, đã theo dõi {quiet_vi} làm việc"
        since_en = f"nothing received yet, watched for {quiet_en} of working time"
    vi = (
        f"{unit_name} ({unit}): hệ thống {sys_vi} không còn im lặng ({since_vi}; cảnh báo "
        f"sau {format_duration(after_s, 'vi')} làm việc không có dữ liệu)."
    )
    en = (
        f"{unit_name_en or unit_name} ({unit}): the {sys_en} system is no longer silent "
        f"({since_en}; alert after {format_duration(after_s, 'en')} of working time "
        "without data)."
    )
    return vi, en


def unit_gone(unit_name: str, unit: str, family: str, unit_name_en: str = "") -> tuple[str, str]:
    """A UnitSilent whose unit left the unit directory (a reform dissolved or merged it;
    its events arrive under its successor's code): nothing more is expected from it."""
    sys_vi, sys_en = SYSTEM.get(family, (family, family))
    vi = (
        f"{unit_name} ({unit}): không còn trong danh mục đơn vị (đã giải thể hoặc sáp nhập); "
        f"không còn chờ dữ liệu từ hệ thống {sys_vi}."
    )
    en = (
        f"{unit_name_en or unit_name} ({unit}): no longer in the unit directory (dissolved "
        f"or merged); no more data is expected from its {sys_en} system."
    )
    return vi, en


def kpi_unit_gone(unit_name: str, unit: str) -> tuple[str, str]:
    """A KPI alert whose unit left the unit directory (dissolved or merged by a reform):
    its figures now count under its successor, whose own alerts say how it does."""
    vi = (
        f"{unit_name} ({unit}): không còn trong danh mục đơn vị (đã giải thể hoặc sáp nhập); "
        "số liệu nay tính vào đơn vị kế thừa."
    )
    en = (
        f"{unit_name} ({unit}): no longer in the unit directory (dissolved or merged); its "
        "figures now count under its successor."
    )
    return vi, en


def kpi_retired(unit_name: str, unit: str, kpi: str) -> tuple[str, str]:
    """A KPI alert whose KPI the owners retired from the catalogue (data/kpis.json): it
    is no longer measured nor judged, so the alert ends without a verdict on the unit."""
    vi = (
        f"{unit_name} ({unit}): chỉ tiêu {kpi} không còn trong danh mục chỉ tiêu (đã ngừng "
        "áp dụng); cảnh báo kết thúc."
    )
    en = (
        f"{unit_name} ({unit}): the KPI {kpi} is no longer in the KPI catalogue (retired); "
        "the alert ends."
    )
    return vi, en


def rejections(
    key_id: str,
    rejected: int,
    total: int,
    window_s: float,
    cleared: bool = False,
    key_name: str = "",
) -> tuple[str, str]:
    """A publisher key's rejected share over the rejection window, its span in words from
    the setting's seconds (``last``), never the window label ("10m"). A window without a
    single event says so rather than "– (0 / 0)"; ``cleared`` (the text a resolution
    carries) drops the call to act. ``key_name`` (the key's name in ingest_api_keys, the
    system publishing through it) comes before the id when known."""
    who_vi = "mọi khóa" if key_id == "all" else f"khóa {key_id}"
    who_en = "all keys" if key_id == "all" else f"key {key_id}"
    if key_name:
        who_vi, who_en = f"{key_name}, {who_vi}", f"{key_name}, {who_en}"
    span_vi, span_en = last(window_s, "vi"), last(window_s, "en")
    if not total:
        return (
            f"Hệ thống gửi dữ liệu ({who_vi}) không gửi bản tin nào {span_vi}: không có "
            "bản tin bị từ chối.",
            f"Publisher ({who_en}) sent no events {span_en}: nothing rejected.",
        )
    act_vi, act_en = (
        ("đã trở lại bình thường", "back to normal")
        if cleared
        else ("cần kiểm tra kết nối tích hợp", "check its integration")
    )
    vi = (
        f"Hệ thống gửi dữ liệu ({who_vi}) bị từ chối {format_rate(rejected, total, 'vi')} "
        f"bản tin {span_vi} ({format_fraction(rejected, total, 'vi')}): {act_vi}."
    )
    en = (
        f"Publisher ({who_en}) had {format_rate(rejected, total, 'en')} of its events "
        f"rejected {span_en} ({format_fraction(rejected, total, 'en')}): {act_en}."
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
