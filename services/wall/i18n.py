"""Every word the wall shows, in Vietnamese and English.

Numbers, rates, targets and dates are written by :mod:`services.common.rates` (11.703,
99,94 %, 97,5 %, 04/12/2026 10:15 in Vietnamese; 11,703, 99.94%, 97.5% in English),
the one rule the alerts and Grafana share. Unit and KPI names come from the registry
and the catalogue (``name`` / ``name_en``), never from here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Final

from services.common.figures import Standing
from services.common.rates import format_datetime
from services.common.units import VN_TZ
from services.wall.model import Alert
from services.wall.settings import Lang

LANGS: Final[tuple[Lang, ...]] = ("vi", "en")

STRINGS: Final[dict[Lang, dict[str, str]]] = {
    "vi": {
        # Written as a provincial IOC writes its reports. What is measured is a "chỉ số"
        # and the figure to reach is its "mục tiêu": "chỉ tiêu" is used in reports for
        # both (the indicator and the planned figure), so it labels neither column here,
        # and "đạt / chưa đạt mục tiêu" says the judgement without ambiguity. Words from
        # the software ("worker", "sự kiện", "im lặng") are said as the operator says
        # them: figures, data received, a unit that stopped sending.
        "title": "Bảng điều hành chuyển đổi số",
        "province": "Tỉnh, thành phố",
        "choose_province": "Chọn tỉnh, thành phố",
        "no_data_yet": "Chưa nhận được số liệu từ hệ thống tổng hợp chỉ số.",
        "kpis": "Các chỉ số",
        "kpi": "Chỉ số",
        "today": "Hôm nay",
        "month": "Tháng này",
        "target": "Mục tiêu",
        "target_bases": "Căn cứ mục tiêu",
        "counts": "Số đạt / tổng số",
        "rate": "Tỷ lệ",
        "unit": "Đơn vị",
        "units": "Đơn vị trực thuộc",
        "below_list": "Đơn vị chưa đạt mục tiêu (thấp nhất lên đầu)",
        "none_below": "Hôm nay không có đơn vị nào chưa đạt mục tiêu.",
        "more": "và {n} đơn vị khác",
        "status_below": "Chưa đạt mục tiêu",
        "status_meets": "Đạt mục tiêu",
        "status_low_volume": "Chưa đủ số liệu để đánh giá",
        "status_no_data": "Chưa có số liệu",
        "silent": "Ngừng gửi dữ liệu",
        "silent_units": "Đơn vị ngừng gửi dữ liệu",
        "silent_since": "không gửi dữ liệu từ {at}",
        "silent_since_today": "không gửi dữ liệu từ {at} ({duration})",
        "silent_never": "chưa từng gửi dữ liệu",
        "none_silent": "Tất cả đơn vị đều đang gửi dữ liệu.",
        "last_event": "Lần gửi dữ liệu cuối",
        "alerts": "Cảnh báo chưa kết thúc",
        "no_alerts": "Hiện không có cảnh báo nào.",
        "alerts_unavailable": "Không lấy được danh sách cảnh báo.",
        "severity_critical": "Nghiêm trọng",
        "severity_warning": "Cảnh báo",
        "severity_info": "Thông tin",
        "state_firing": "Đang cảnh báo",
        "state_pending": "Đang theo dõi",
        "state_since": "{state} từ {at}",
        "acked_by": "{who} đã tiếp nhận lúc {at}",
        "acked_at": "Đã tiếp nhận lúc {at}",
        "not_acked": "Chưa có người tiếp nhận",
        "publisher_key": "Khóa gửi dữ liệu {code}",
        "refused_events": "Bản tin bị từ chối",
        "trend": "Diễn biến {days} ngày gần nhất",
        "trend_low_volume": "◌ Điểm rỗng: chưa đủ số liệu để đánh giá (dưới {min} mục trong ngày)",
        "standing": "Đánh giá",
        "trend_none": "Chưa có số liệu theo ngày.",
        "trend_unavailable": "Không lấy được số liệu theo ngày.",
        "trend_pick": "Chọn một chỉ số để xem diễn biến.",
        # A report a commune sends upward is "số liệu" to download ("tải"), as a file.
        "downloads": "Tải số liệu",
        "download_of": "Tải số liệu của {unit}",
        "download_year": "Từ đầu năm",
        "download_scorecard": "Bảng điểm 766 (CSV)",
        "trend_restated": "Số liệu trước ngày {date} được tính lại theo đơn vị hành chính hiện nay "
        "(cộng số liệu của các đơn vị cũ đã sáp nhập vào).",
        "trend_left_out": "Số liệu tính lại không gồm {units}: đơn vị cũ chỉ sáp nhập một phần, "
        "không tách được số liệu.",
        "day": "Ngày",
        "drill": "Xem chi tiết {name}",
        "show_trend": "Xem diễn biến",
        "breadcrumb": "Vị trí",
        "updated": "Cập nhật lúc {time}",
        "live": "Trực tiếp",
        "connecting": "Đang kết nối…",
        "lost": "Mất kết nối với máy chủ, đang kết nối lại. Số liệu có thể chưa cập nhật.",
        "stale": "Số liệu chưa được cập nhật kể từ {time}.",
        "stale_never": "Chưa lấy được số liệu.",
        "sources_failed": "Nguồn số liệu bị lỗi: {sources}",
        "sources_ok": "Tất cả nguồn số liệu đều hoạt động.",
        "language": "Ngôn ngữ",
        "switch_lang": "English",
        "level_province": "Tỉnh",
        "level_district": "Huyện",
        "level_commune": "Xã, phường",
        "level_department": "Sở, ngành",
        "level_": "Đơn vị",
        # Screens of a wall (province overview, rankings, unit page, kiosk).
        "score_title": "Chỉ số phục vụ người dân, doanh nghiệp (Quyết định 766) — {period}",
        "score_measured": "điểm, trên {measured} điểm đo được ở đây (tổng {total} điểm)",
        "score_none": "Chưa đo được chỉ số nào trong kỳ này.",
        "score_group": "Nhóm",
        "score_points": "Điểm đạt",
        "score_not_measured": "Chưa đo ở đây",
        "score_not_measured_list": "Chưa đo ở đây: {points} điểm",
        "score_costliest": "Mất nhiều điểm nhất: {indicator} — mất {lost} điểm",
        "score_no_loss": "Không chỉ số đo được nào bị mất điểm.",
        "score_low_volume": "ít hồ sơ, cần thận trọng",
        "score_no_data": "chưa có số liệu",
        "points_of": "{points} / {max}",
        "tiles_title": "Hồ sơ thủ tục hành chính — {period}",
        "tile_received": "Tiếp nhận",
        "tile_received_note": "thủ tục trực tuyến toàn trình",
        "tile_resolved": "Đã giải quyết",
        "tile_early": "Trước hạn",
        "tile_on_time": "Đúng hạn",
        "tile_late": "Trễ hạn",
        "tile_open_overdue": "Quá hạn đang xử lý",
        "kpis_month": "Các chỉ số của tỉnh — {period}",
        "worst_title": "Đơn vị thấp nhất so với mục tiêu — {period}",
        "worst_others": "+{n} chỉ số khác chưa đạt",
        "worst_none": "Không có đơn vị nào chưa đạt mục tiêu trong kỳ này.",
        "more_units": "và {n} đơn vị khác chưa đạt (xem bảng xếp hạng)",
        "more_alerts": "và {n} cảnh báo khác",
        "more_kpis": "và {n} chỉ số khác (xem trang đơn vị, bảng xếp hạng)",
        "rankings_title": "Xếp hạng {level} — {what}",
        "rank": "Hạng",
        "by_score": "Điểm Quyết định 766",
        "volume": "Số lượng",
        "items_n": "{n} mục",
        "rankings_rule": "Đơn vị có dưới {min} mục trong kỳ được liệt kê riêng, không xếp hạng "
        "(số liệu ít chưa đủ để so sánh). Tỷ lệ bằng nhau thì cùng hạng.",
        "rankings_apart": "Chưa đủ số liệu để xếp hạng",
        "rankings_no_data": "Chưa có số liệu: {n} đơn vị",
        "rankings_empty": "Chưa có đơn vị nào đủ số liệu để xếp hạng.",
        "page_of": "Trang {page}/{pages}",
        "unit_title": "{unit} — diễn biến và so sánh cùng kỳ",
        "this_month": "Tháng này",
        "previous_month": "Tháng trước",
        "same_month_last_year": "Cùng tháng năm trước",
        "ytd": "Từ đầu năm",
        "last_year_to_date": "Cùng kỳ năm trước",
        "last_days": "{n} ngày gần nhất",
        "last_months": "{n} tháng gần nhất",
        "years": "Theo năm",
        "history_unavailable": "Không lấy được số liệu theo ngày.",
        "kiosk_stop": "Màn hình {n}/{total}, chuyển sau {every} giây",
        "kiosk_empty": "Chưa có tỉnh nào có số liệu để trình chiếu.",
        "screens": "Màn hình",
        "screen_province": "Tổng quan tỉnh",
        "screen_rankings": "Xếp hạng",
        "screen_kiosk": "Trình chiếu",
        "level_commune_plural": "xã, phường",
        "level_district_plural": "huyện, thị xã, thành phố",
        "level_department_plural": "sở, ngành",
    },
    "en": {
        "title": "Digital transformation operations wall",
        "province": "Province",
        "choose_province": "Choose a province",
        "no_data_yet": "No figures received yet.",
        "kpis": "Indicators",
        "kpi": "Indicator",
        "today": "Today",
        "month": "This month",
        "target": "Target",
        "target_bases": "What the targets rest on",
        "counts": "Counted / total",
        "rate": "Rate",
        "unit": "Unit",
        "units": "Units within",
        "below_list": "Units below target, lowest first",
        "none_below": "No unit is below target today.",
        "more": "and {n} more units",
        "status_below": "Below target",
        "status_meets": "Meets target",
        "status_low_volume": "Too few to judge",
        "status_no_data": "No data yet",
        "silent": "Not sending",
        "silent_units": "Units not sending data",
        "silent_since": "no data since {at}",
        "silent_since_today": "no data since {at} ({duration})",
        "silent_never": "never sent any data",
        "none_silent": "Every unit is sending data.",
        "last_event": "Last data received",
        "alerts": "Open alerts",
        "no_alerts": "No open alerts.",
        "alerts_unavailable": "The alert list could not be loaded.",
        "severity_critical": "Critical",
        "severity_warning": "Warning",
        "severity_info": "Info",
        "state_firing": "Active",
        "state_pending": "Pending",
        "state_since": "{state} since {at}",
        "acked_by": "Acknowledged by {who} at {at}",
        "acked_at": "Acknowledged at {at}",
        "not_acked": "Not acknowledged yet",
        "publisher_key": "Publisher key {code}",
        "refused_events": "Events refused",
        "trend": "Last {days} days",
        "trend_low_volume": "◌ Hollow points: too few to judge (under {min} items that day)",
        "standing": "Status",
        "trend_none": "No daily figures yet.",
        "trend_unavailable": "The daily figures could not be loaded.",
        "trend_pick": "Choose an indicator to see its last days.",
        "downloads": "Download figures",
        "download_of": "Download the figures of {unit}",
        "download_year": "Year to date",
        "download_scorecard": "Scorecard 766 (CSV)",
        "trend_restated": "Figures before {date} are restated on today's unit "
        "(the former units merged into it, summed).",
        "trend_left_out": "The restated figures leave out {units}: former units only partly "
        "merged into it, whose figures cannot be split.",
        "day": "Day",
        "drill": "Open {name}",
        "show_trend": "Show the last days",
        "breadcrumb": "Location",
        "updated": "Updated at {time}",
        "live": "Live",
        "connecting": "Connecting…",
        "lost": "Connection to the server lost; reconnecting. Figures may be out of date.",
        "stale": "Figures not updated since {time}.",
        "stale_never": "No figures could be loaded yet.",
        "sources_failed": "Sources failing: {sources}",
        "sources_ok": "Every source is answering.",
        "language": "Language",
        "switch_lang": "Tiếng Việt",
        "level_province": "Province",
        "level_district": "District",
        "level_commune": "Commune",
        "level_department": "Department",
        "level_": "Unit",
        "score_title": "Service index for citizens and businesses (Decision 766) — {period}",
        "score_measured": "points, of the {measured} points measured here (of {total})",
        "score_none": "No indicator is measured in this period yet.",
        "score_group": "Group",
        "score_points": "Points",
        "score_not_measured": "Not measured here",
        "score_not_measured_list": "Not measured here: {points} points",
        "score_costliest": "Costs the most: {indicator} — {lost} points lost",
        "score_no_loss": "No measured indicator loses points.",
        "score_low_volume": "few dossiers, read with care",
        "score_no_data": "no data yet",
        "points_of": "{points} / {max}",
        "tiles_title": "Dossiers — {period}",
        "tile_received": "Received",
        "tile_received_note": "full-process online procedures",
        "tile_resolved": "Resolved",
        "tile_early": "Early",
        "tile_on_time": "On time",
        "tile_late": "Late",
        "tile_open_overdue": "Open, overdue",
        "kpis_month": "The province's indicators — {period}",
        "worst_title": "Units furthest below target — {period}",
        "worst_others": "+{n} other indicators below target",
        "worst_none": "No unit is below target in this period.",
        "more_units": "and {n} more units below target (see the rankings)",
        "more_alerts": "and {n} more alerts",
        "more_kpis": "and {n} more indicators (see the unit page, the rankings)",
        "rankings_title": "Ranking of {level} — {what}",
        "rank": "Rank",
        "by_score": "Decision 766 score",
        "volume": "Volume",
        "items_n": "{n} items",
        "rankings_rule": "Units with fewer than {min} items in the period are listed apart, "
        "unranked (too few to compare). Equal rates share a rank.",
        "rankings_apart": "Too few to rank",
        "rankings_no_data": "No data yet: {n} units",
        "rankings_empty": "No unit has enough figures to be ranked yet.",
        "page_of": "Page {page} of {pages}",
        "unit_title": "{unit} — trends and the same period last year",
        "this_month": "This month",
        "previous_month": "Previous month",
        "same_month_last_year": "Same month last year",
        "ytd": "Year to date",
        "last_year_to_date": "Last year, same dates",
        "last_days": "Last {n} days",
        "last_months": "Last {n} months",
        "years": "By year",
        "history_unavailable": "The daily figures could not be loaded.",
        "kiosk_stop": "Screen {n} of {total}, next in {every} s",
        "kiosk_empty": "No province has figures to show yet.",
        "screens": "Screens",
        "screen_province": "Province overview",
        "screen_rankings": "Rankings",
        "screen_kiosk": "Kiosk",
        "level_commune_plural": "communes",
        "level_district_plural": "districts",
        "level_department_plural": "departments",
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


def status_badge(lang: Lang, status: Standing) -> str:
    """Icon and words, never colour alone; the class only adds the colour."""
    return (
        f'<span class="badge st-{status.value}"><span aria-hidden="true">'
        f"{STATUS_ICONS[status]}</span> {escape(status_label(lang, status))}</span>"
    )


def alert_state(lang: Lang, alert: Alert) -> str:
    """The alert's state and since when, in Vietnam time: "Đang cảnh báo từ 20/11/2026
    09:40". Until 2026-12-05 no view said it, and a 3-day-old alert read as a new one
    (review 55)."""
    state = text(lang, "state_pending" if alert.state == "pending" else "state_firing")
    if alert.since is None:
        return state
    return text(lang, "state_since", state=state, at=format_datetime(alert.since, lang))


def fmt_time(at: datetime | None, lang: Lang) -> str:
    """Time of day in Vietnam, whatever the server's zone: the live "updated at" clock.

    Anything that may be from another day (an acknowledgement, a last event) is shown
    with :func:`services.common.rates.format_datetime` instead."""
    if at is None:
        return "–"
    return at.astimezone(VN_TZ).strftime("%H:%M:%S")


def fmt_since(at: datetime | None, lang: Lang, now: datetime | None = None) -> str:
    """When the figures shown were last read: the time of day when that was today (in
    Vietnam), else the date too. After midnight, "since 23:58:00" read as tonight's
    figures when they were yesterday's (review 48)."""
    if at is None:
        return "–"
    current = datetime.now(UTC) if now is None else now
    if at.astimezone(VN_TZ).date() == current.astimezone(VN_TZ).date():
        return fmt_time(at, lang)
    return format_datetime(at, lang)


def fmt_day(day: str, lang: Lang) -> str:
    """``2026-11-22`` as 22/11 (vi) or 22 Nov (en)."""
    _year, month, dom = day.split("-")
    if lang == "vi":
        return f"{int(dom)}/{int(month)}"
    months = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
    return f"{int(dom)} {months[int(month) - 1]}"


def client_strings(lang: Lang) -> dict[str, str]:
    return {key: STRINGS[lang][key] for key in CLIENT_KEYS}
