"""Every word the wall shows, in Vietnamese and English, and how numbers are written.

Vietnamese writes 11.703 and 99,9 %; English writes 11,703 and 99.9 %. Unit and KPI
names come from the registry and the catalogue (``name`` / ``name_en``), never from here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

from services.common.figures import Standing
from services.common.units import VN_TZ
from services.metrics.wall.settings import Lang

LANGS: Final[tuple[Lang, ...]] = ("vi", "en")

STRINGS: Final[dict[Lang, dict[str, str]]] = {
    "vi": {
        "title": "Bảng điều hành chuyển đổi số",
        "province": "Tỉnh, thành phố",
        "choose_province": "Chọn tỉnh, thành phố",
        "no_data_yet": "Chưa có số liệu nào từ các worker số liệu.",
        "kpis": "Chỉ tiêu",
        "kpi": "Chỉ tiêu",
        "today": "Hôm nay",
        "month": "Tháng này",
        "target": "Chỉ tiêu đặt ra",
        "counts": "Đạt / tổng",
        "rate": "Tỷ lệ",
        "unit": "Đơn vị",
        "units": "Đơn vị trực thuộc",
        "below_list": "Đơn vị dưới chỉ tiêu, kém nhất trước",
        "none_below": "Không có đơn vị nào dưới chỉ tiêu hôm nay.",
        "more": "và {n} mục khác",
        "status_below": "Dưới chỉ tiêu",
        "status_meets": "Đạt chỉ tiêu",
        "status_low_volume": "Ít số liệu",
        "status_no_data": "Chưa có số liệu",
        "silent": "Im lặng",
        "silent_units": "Đơn vị không gửi sự kiện",
        "silent_for": "không có sự kiện trong {minutes} phút",
        "silent_never": "chưa từng gửi sự kiện",
        "none_silent": "Mọi đơn vị đều đang gửi sự kiện.",
        "last_event": "Sự kiện cuối",
        "alerts": "Cảnh báo đang mở",
        "no_alerts": "Không có cảnh báo đang mở.",
        "alerts_unavailable": "Không đọc được cảnh báo.",
        "severity_critical": "Nghiêm trọng",
        "severity_warning": "Cảnh báo",
        "severity_info": "Thông tin",
        "state_firing": "Đang báo",
        "state_pending": "Đang chờ",
        "acked_by": "Đã xác nhận bởi {who} lúc {at}",
        "not_acked": "Chưa ai xác nhận",
        "trend": "Xu hướng {days} ngày gần đây",
        "trend_none": "Chưa có số liệu theo ngày.",
        "trend_unavailable": "Không đọc được số liệu theo ngày.",
        "trend_pick": "Chọn một tỷ lệ để xem xu hướng.",
        "day": "Ngày",
        "drill": "Xem chi tiết {name}",
        "show_trend": "Xem xu hướng",
        "breadcrumb": "Vị trí",
        "updated": "Cập nhật lúc {time}",
        "live": "Trực tiếp",
        "connecting": "Đang kết nối…",
        "lost": "Mất kết nối với máy chủ — đang thử kết nối lại. Số liệu có thể đã cũ.",
        "stale": "Số liệu không được cập nhật từ {time}.",
        "stale_never": "Chưa đọc được số liệu.",
        "sources_failed": "Nguồn lỗi: {sources}",
        "sources_ok": "Mọi nguồn số liệu đều trả lời.",
        "language": "Ngôn ngữ",
        "switch_lang": "English",
        "level_province": "Tỉnh",
        "level_district": "Huyện",
        "level_commune": "Xã, phường",
        "level_department": "Sở, ngành",
        "level_": "Đơn vị",
    },
    "en": {
        "title": "Digital transformation operations wall",
        "province": "Province",
        "choose_province": "Choose a province",
        "no_data_yet": "No figures from the metrics workers yet.",
        "kpis": "KPIs",
        "kpi": "KPI",
        "today": "Today",
        "month": "This month",
        "target": "Target",
        "counts": "Met / total",
        "rate": "Rate",
        "unit": "Unit",
        "units": "Units within",
        "below_list": "Units below target, worst first",
        "none_below": "No unit is below target today.",
        "more": "and {n} more",
        "status_below": "Below target",
        "status_meets": "Meets target",
        "status_low_volume": "Low volume",
        "status_no_data": "No data",
        "silent": "Silent",
        "silent_units": "Units sending no events",
        "silent_for": "no events for {minutes} min",
        "silent_never": "never sent an event",
        "none_silent": "Every unit is sending events.",
        "last_event": "Last event",
        "alerts": "Open alerts",
        "no_alerts": "No open alerts.",
        "alerts_unavailable": "Alerts could not be read.",
        "severity_critical": "Critical",
        "severity_warning": "Warning",
        "severity_info": "Info",
        "state_firing": "Firing",
        "state_pending": "Pending",
        "acked_by": "Acknowledged by {who} at {at}",
        "not_acked": "Not acknowledged",
        "trend": "Trend of the last {days} days",
        "trend_none": "No daily figures yet.",
        "trend_unavailable": "Daily figures could not be read.",
        "trend_pick": "Choose a rate to see its trend.",
        "day": "Day",
        "drill": "Open {name}",
        "show_trend": "Show trend",
        "breadcrumb": "Location",
        "updated": "Updated at {time}",
        "live": "Live",
        "connecting": "Connecting…",
        "lost": "Connection to the server lost — reconnecting. Figures may be out of date.",
        "stale": "Figures not updated since {time}.",
        "stale_never": "No figures could be read yet.",
        "sources_failed": "Failing sources: {sources}",
        "sources_ok": "Every source answers.",
        "language": "Language",
        "switch_lang": "Tiếng Việt",
        "level_province": "Province",
        "level_district": "District",
        "level_commune": "Commune",
        "level_department": "Department",
        "level_": "Unit",
    },
}

STATUS_ICONS: Final[dict[Standing, str]] = {
    Standing.BELOW: "▼",
    Standing.LOW_VOLUME: "◌",
    Standing.NO_DATA: "–",
    Standing.MEETS: "▲",
}
"""A shape for each status, so that colour is never the only signal."""

CLIENT_KEYS: Final[tuple[str, ...]] = (
    "live",
    "connecting",
    "lost",
    "stale",
    "stale_never",
    "sources_failed",
    "sources_ok",
    "updated",
)
"""Strings the browser script needs (connection state); sent to it as JSON."""


def text(lang: Lang, key: str, **values: object) -> str:
    template = STRINGS[lang][key]
    return template.format(**values) if values else template


def status_label(lang: Lang, status: Standing) -> str:
    return text(lang, f"status_{status.value}")


def fmt_int(value: int, lang: Lang) -> str:
    plain = f"{value:,}"
    return plain.replace(",", ".") if lang == "vi" else plain


def fmt_pct(ratio: float | None, lang: Lang, digits: int = 1) -> str:
    """A ratio 0..1 as a percentage; never rounds 99.96 % up to a misleading 100 %."""
    if ratio is None:
        return "–"
    scale = 10**digits
    value = int(ratio * 100 * scale) / scale  # floor: 99.96 % is not 100 %
    plain = f"{value:.{digits}f}"
    return (plain.replace(".", ",") if lang == "vi" else plain) + " %"


def fmt_time(at: datetime | None, lang: Lang) -> str:
    """Wall-clock time in Vietnam, whatever the server's zone."""
    if at is None:
        return "–"
    return at.astimezone(VN_TZ).strftime("%H:%M:%S")


def fmt_day(day: str, lang: Lang) -> str:
    """``2026-11-22`` as 22/11 (vi) or 22 Nov (en)."""
    _year, month, dom = day.split("-")
    if lang == "vi":
        return f"{int(dom)}/{int(month)}"
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    return f"{int(dom)} {months[int(month) - 1]}"


def client_strings(lang: Lang) -> dict[str, str]:
    return {key: STRINGS[lang][key] for key in CLIENT_KEYS}
