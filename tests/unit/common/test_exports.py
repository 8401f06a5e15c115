"""Exports: the KPI table and the 766 scorecard as CSV and Excel, read back as a user would."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import openpyxl
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from services.common.exports import (
    KPI_COLUMNS,
    SCORECARD_COLUMNS,
    Title,
    kpi_table,
    render,
    scorecard_table,
    to_csv,
    to_xlsx,
)
from services.common.figures import Figure
from services.common.scorecard import Period, Scorecard, score

NOV = Period("month", 2026, 11)
AS_OF = datetime(2026, 12, 4, 3, 15, tzinfo=UTC)  # 10:15 in Vietnam
TITLE = Title("Huyện Nông Cống (404)", NOV, AS_OF)


def fig(kpi: str, n: int, d: int, target_bp: int = 9000) -> Figure:
    names = {
        "document_signing": ("Tỷ lệ văn bản điện tử được ký số", "Digital-signing rate"),
        "dossier_on_time": ("Tỷ lệ hồ sơ giải quyết đúng hạn", "On-time resolution rate"),
    }[kpi]
    return Figure(
        kpi, "404", "month", n, d, target_bp, 10, "Huyện Nông Cống", "Nong Cong District",
        *names, level="district", province="38",
    )  # fmt: skip


FIGURES = [
    fig("document_signing", 11_703, 11_710),  # Nông Cống's published 99.94 %
    fig("document_signing", 11_709, 11_710),  # one missing: 99.99 %, never 100 %
    fig("dossier_on_time", 885, 1_000),
]


def read_csv(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def read_xlsx(data: bytes) -> dict[str, Worksheet]:
    book = openpyxl.load_workbook(io.BytesIO(data))
    return {ws.title: ws for ws in book.worksheets}


def test_csv_starts_with_a_bom_so_excel_reads_utf8() -> None:
    data = to_csv(kpi_table(FIGURES, "vi"), TITLE, "vi")
    assert data.startswith(b"\xef\xbb\xbf")
    assert "Huyện Nông Cống" in data[3:].decode("utf-8")


def test_csv_kpi_table_holds_the_figures_counts_and_shown_rates() -> None:
    rows = read_csv(to_csv(kpi_table(FIGURES, "vi"), TITLE, "vi"))
    assert rows[0] == [
        "Bảng chỉ số — Huyện Nông Cống (404) — Tháng 11/2026 — số liệu lúc 04/12/2026 10:15"
    ]
    assert rows[1] == [c.vi for c in KPI_COLUMNS]
    body = rows[2:]
    assert len(body) == len(FIGURES)
    for row, f in zip(body, FIGURES, strict=True):
        assert (int(row[6]), int(row[7])) == (f.numerator, f.denominator)
        assert Decimal(row[8]) * 10_000 == f.rate_bp
        assert Decimal(row[9]) * 10_000 == f.target_bp
        assert row[1] == "Huyện Nông Cống" and row[2] == "Huyện"
    assert [r[8] for r in body] == ["0.9994", "0.9999", "0.8850"]
    assert [r[10] for r in body] == ["Đạt", "Đạt", "Không đạt"]


def test_the_english_variant_has_english_headers_and_names() -> None:
    rows = read_csv(to_csv(kpi_table(FIGURES, "en"), TITLE, "en"))
    assert rows[0][0].endswith("Nov 2026 — figures as of 4 Dec 2026 10:15")
    assert rows[0][0].startswith("KPI table — ")
    assert rows[1] == [c.en for c in KPI_COLUMNS]
    assert rows[2][1:3] == ["Nong Cong District", "District"]
    assert rows[2][4] == "Digital-signing rate"
    assert rows[4][10] == "Below"


def test_xlsx_kpi_table_numbers_are_numbers_formatted_as_counts_and_percentages() -> None:
    sheets = read_xlsx(to_xlsx([kpi_table(FIGURES, "vi")], TITLE, "vi"))
    ws = sheets["Chỉ số"]
    assert ws["A1"].value.startswith("Bảng chỉ số — Huyện Nông Cống (404) — Tháng 11/2026")
    assert [c.value for c in ws[2]] == [c.vi for c in KPI_COLUMNS]
    for r, f in enumerate(FIGURES, start=3):
        numerator, denominator, rate = ws.cell(r, 7), ws.cell(r, 8), ws.cell(r, 9)
        assert type(numerator.value) is int and numerator.value == f.numerator
        assert type(denominator.value) is int and denominator.value == f.denominator
        assert numerator.number_format == "#,##0"
        assert isinstance(rate.value, float) and round(rate.value * 10_000) == f.rate_bp
        assert rate.number_format == "0.00%"
        assert ws.cell(r, 10).number_format == "0.00%"
    assert ws.cell(3, 2).value == "Huyện Nông Cống"


@pytest.fixture(scope="module")
def card() -> Scorecard:
    return Scorecard.load()


def test_csv_scorecard_shows_points_measured_and_not_measured(card: Scorecard) -> None:
    s = score(card, FIGURES[2:], "404", NOV)
    rows = read_csv(to_csv(scorecard_table(s, "vi"), TITLE, "vi"))
    assert rows[0][0].startswith("Bộ chỉ số 766/QĐ-TTg — Huyện Nông Cống (404)")
    assert rows[1] == [c.vi for c in SCORECARD_COLUMNS]
    by_id = {r[1]: r for r in rows[2:] if r[1]}
    assert len(by_id) == len(card.indicators)
    on_time = by_id["2.1"]
    assert (Decimal(on_time[3]), Decimal(on_time[4]), Decimal(on_time[5])) == (
        Decimal(20),
        Decimal("17.70"),
        Decimal("2.30"),
    )
    assert (int(on_time[6]), int(on_time[7]), on_time[8]) == (885, 1_000, "0.8850")
    assert on_time[9] == "Đo được" and "Mất nhiều điểm nhất" in on_time[10]
    assert on_time[10].startswith("dossier_on_time không tính hồ sơ đang xử lý còn trong hạn")
    sync = by_id["1.4"]
    assert (sync[3], sync[4], sync[9]) == ("6", "", "Chưa đo ở đây")
    assert sync[10] == card_reason(card, "1.4")
    publicity = next(r for r in rows[2:] if r[0].startswith("1.") and r[2] == "Cộng")
    assert (publicity[3], publicity[4], publicity[10]) == ("18", "", "Đo được 0/18 điểm")
    total = rows[-1]
    assert (total[0], Decimal(total[3]), Decimal(total[4])) == ("Tổng", 100, Decimal("17.70"))
    assert total[10] == "Đo được 20/100 điểm"


def card_reason(card: Scorecard, ind_id: str) -> str:
    return next(i.not_measured_vi for i in card.indicators if i.id == ind_id)


def test_points_round_half_up_to_hundredths_in_the_file(card: Scorecard) -> None:
    # 20 x 1/4000 = 0.005 points exactly: 0.01, where a float or half-even gives 0.00
    s = score(card, [fig("dossier_on_time", 1, 4_000)], "404", NOV)
    rows = read_csv(to_csv(scorecard_table(s, "en"), TITLE, "en"))
    on_time = next(r for r in rows[1:] if r[1] == "2.1")
    assert on_time[4] == "0.01"


def test_xlsx_scorecard_points_are_numbers_and_text_is_vietnamese(card: Scorecard) -> None:
    s = score(card, FIGURES[2:], "404", NOV)
    data = to_xlsx([kpi_table(FIGURES, "vi"), scorecard_table(s, "vi")], TITLE, "vi")
    sheets = read_xlsx(data)
    assert list(sheets) == ["Chỉ số", "Bảng điểm 766"]
    ws = sheets["Bảng điểm 766"]
    rows = {ws.cell(r, 2).value: r for r in range(3, ws.max_row + 1) if ws.cell(r, 2).value}
    r = rows["2.1"]
    assert ws.cell(r, 5).value == pytest.approx(17.7) and ws.cell(r, 5).number_format == "0.00"
    assert ws.cell(r, 9).value == pytest.approx(0.885) and ws.cell(r, 9).number_format == "0.00%"
    assert ws.cell(r, 3).value == "Tỷ lệ hồ sơ xử lý trước hạn, đúng hạn"
    numeric = [i for i, c in enumerate(SCORECARD_COLUMNS, start=1) if c.kind != "text"]
    for row in range(3, ws.max_row + 1):
        for col in numeric:
            value = ws.cell(row, col).value
            assert value is None or isinstance(value, int | float), (row, col, value)


def test_english_workbook_names_its_sheets_and_headers_in_english(card: Scorecard) -> None:
    s = score(card, FIGURES[2:], "404", NOV)
    sheets = read_xlsx(to_xlsx([kpi_table(FIGURES, "en"), scorecard_table(s, "en")], TITLE, "en"))
    assert list(sheets) == ["KPIs", "Scorecard 766"]
    ws = sheets["Scorecard 766"]
    assert [c.value for c in ws[2]] == [c.en for c in SCORECARD_COLUMNS]
    assert ws["A1"].value.endswith("figures as of 4 Dec 2026 10:15")


def test_render_gives_the_body_media_type_and_a_safe_file_name(card: Scorecard) -> None:
    tables = [kpi_table(FIGURES, "vi"), scorecard_table(score(card, FIGURES[2:], "404", NOV), "vi")]
    as_csv = render("csv", tables, TITLE, "chỉ-tiêu 404/2026-11", "vi")
    assert as_csv.content_type == "text/csv; charset=utf-8"
    assert as_csv.filename == "ch--ti-u-404-2026-11.csv"
    assert read_csv(as_csv.body)[1] == [c.vi for c in KPI_COLUMNS]
    as_xlsx = render("xlsx", tables, TITLE, "kpis-404-2026-11", "vi")
    assert as_xlsx.filename == "kpis-404-2026-11.xlsx"
    assert as_xlsx.content_type.endswith("spreadsheetml.sheet")
    assert list(read_xlsx(as_xlsx.body)) == ["Chỉ số", "Bảng điểm 766"]
    with pytest.raises(ValueError, match="unknown export format"):
        render("pdf", tables, TITLE, "x", "vi")  # type: ignore[arg-type]


def test_a_text_cell_never_starts_a_formula_in_csv() -> None:
    odd = fig("document_signing", 1, 2)._replace(unit_name="=HYPERLINK(1)", kpi_name_vi="@x")
    row = read_csv(to_csv(kpi_table([odd], "vi"), TITLE, "vi"))[2]
    assert (row[1], row[4]) == ("'=HYPERLINK(1)", "'@x")
    assert row[6:8] == ["1", "2"]  # numbers untouched
