"""Alert texts as an IOC operator reads them: exact rates, separators, periods in words."""

from __future__ import annotations

from datetime import UTC, datetime

from services.alerts import conditions as c
from services.alerts import text
from services.common.figures import Figure

# Huyện Nông Cống (Thanh Hóa, code 404), 29/11/2023: 11,703 of 11,710 documents signed.
NONG_CONG = Figure(
    "document_signing",
    "404",
    "year",
    11_703,
    11_710,
    10_000,
    20,
    unit_name="Huyện Nông Cống",
    unit_name_en="Nong Cong District",
    kpi_name_vi="Tỷ lệ văn bản điện tử được ký số",
    kpi_name_en="Digital-signing rate",
    province="38",
)
CALQUES = ("(day)", "(month)", "(1h)", "worker", "ngân sách lỗi", "error budget", "T0", "+07:00")


def test_nong_cong_reads_99_94_in_the_alert_text() -> None:
    (verdict,) = c.kpi_below_target([NONG_CONG], ["year"], 0, 300)
    assert verdict.summary_vi == (
        "Huyện Nông Cống (404): Tỷ lệ văn bản điện tử được ký số từ đầu năm đến nay đạt "
        "99,94 % (11.703 / 11.710), thấp hơn mục tiêu 100 %."
    )
    assert verdict.summary_en == (
        "Nong Cong District (404): Digital-signing rate so far this year is 99.94% "
        "(11,703 / 11,710), below the 100% target."
    )


def test_a_target_with_a_half_point_keeps_it() -> None:
    vi, en = text.below_target("Xã Thăng Long", "15910", "Tỷ lệ", "Rate", "day", 29, 100, 9750)
    assert "hôm nay đạt 29,00 % (29 / 100), thấp hơn mục tiêu 97,5 %." in vi
    assert "today is 29.00% (29 / 100), below the 97.5% target." in en


def test_burn_says_what_the_budget_means_without_the_calque() -> None:
    vi, en = text.burn("Xã A", "1", "Tỷ lệ", "Rate", "1h", "5m", (2, 10), (1, 10), 144, 9000)
    assert "trong 1 giờ qua gấp 8 lần và trong 5 phút qua gấp 9 lần" in vi
    assert "mục tiêu 90 % cho phép (ngưỡng cảnh báo: gấp 14,4 lần)" in vi
    assert "trong 1 giờ qua: 20,00 % (2 / 10)." in vi
    assert "over the last hour is 8 times and over the last 5 minutes 9 times" in en
    for t in (vi, en):
        assert not any(word in t for word in CALQUES)


def test_silence_gives_the_system_the_duration_and_the_local_time() -> None:
    last = datetime(2026, 12, 4, 3, 15, tzinfo=UTC)  # 10:15 in Vietnam
    vi, en = text.silent("Xã Thăng Long", "15910", "documents", 7_500.0, last)
    assert vi == (
        "Xã Thăng Long (15910): không nhận được dữ liệu từ hệ thống quản lý văn bản trong "
        "2 giờ 5 phút làm việc (lần cuối: 04/12/2026 10:15)."
    )
    assert en == (
        "Xã Thăng Long (15910): no data from the document-management system for 2 h 5 min "
        "of working time (last received 4 Dec 2026 10:15)."
    )
    never_vi, never_en = text.silent("Xã A", "1", "meetings", 600.0, None)
    assert "họp trực tuyến trong 10 phút làm việc (chưa từng nhận được)" in never_vi
    assert "for 10 min of working time (nothing received yet)" in never_en


def test_rejections_with_thousands_separators_and_an_exact_share() -> None:
    vi, en = text.rejections("all", 1_250, 11_710, 300.0)
    assert "bị từ chối 10,67 % bản tin trong 5 phút qua (1.250 / 11.710)" in vi
    assert "had 10.67% of its events rejected over the last 5 minutes (1,250 / 11,710)" in en
