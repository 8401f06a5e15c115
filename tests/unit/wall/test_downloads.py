"""The wall's downloads: which rows a unit's file holds, its tables, names and links."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import openpyxl  # type: ignore[import-untyped]  # no stubs installed
import pytest

from services.common.export_requests import ExportAsk, ExportQueryError
from services.common.figures import Figure
from services.common.scorecard import Scorecard
from services.wall.downloads import export_file, rows_of
from services.wall.export_links import download_links
from services.wall.overview import build_overview
from services.wall.render import overview_html
from tests.unit.wall.factories import NOW, fig, snapshot

CARD = Scorecard.load()
NAMES = {
    "19": ("Thái Nguyên", "Thai Nguyen", "province", None, "19"),
    "01843": ("Phường Bắc Kạn", "Bac Kan Ward", "commune", "19", "19"),
    "01850": ("Xã Phong Quang", "Phong Quang Commune", "commune", "19", "19"),
    "38": ("Thanh Hóa", "Thanh Hoa", "province", None, "38"),
    "404": ("Huyện Nông Cống", "Nong Cong District", "district", "38", "38"),
    "16342": ("Xã Thăng Long", "Thang Long Commune", "commune", "404", "38"),
}


def month(unit: str, num: int, den: int, kpi: str = "document_signing") -> Figure:
    return counted(fig(unit, num, den, kpi=kpi, window="month", names=NAMES))


def counted(figure: Figure) -> Figure:
    """``figure`` with its period's start, as a worker sends it: a file is named from it."""
    start = {"day": NOW.replace(hour=0, minute=0), "month": NOW.replace(day=1, hour=0, minute=0)}
    return figure._replace(period_start=start[figure.window])


FIGURES = [
    month("01850", 20, 20),
    month("19", 1170, 1171),
    month("01843", 60, 80),
    month("19", 177, 200, kpi="dossier_on_time"),
    month("38", 11_703, 11_710),
    month("404", 11_703, 11_710),  # Thanh Hóa's district
    month("16342", 5, 9),  # a commune of 404: a grandchild of 38
]


def ask(fmt: str, window: str = "month", lang: str = "vi") -> ExportAsk:
    return ExportAsk.parse({"format": [fmt], "window": [window], "lang": [lang]}, "month")


def read_csv(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def test_a_units_file_holds_the_unit_then_its_own_units() -> None:
    rows = rows_of(FIGURES, "19")
    assert [(f.unit, f.kpi) for f in rows] == [
        ("19", "document_signing"),
        ("19", "dossier_on_time"),
        ("01843", "document_signing"),
        ("01850", "document_signing"),
    ]
    # A district's file: the district and its communes, not the province's other units.
    assert [f.unit for f in rows_of(FIGURES, "404")] == ["404", "16342"]


def test_csv_of_a_month_holds_the_figures_as_numbers() -> None:
    file = export_file(ask("csv"), "kpis", FIGURES, "19", CARD, NOW)
    assert file.filename == "bao-cao-19-2026-11.csv"
    title, header, *rows = read_csv(file.body)
    assert title[0].startswith("Bảng chỉ số — Thái Nguyên (19) — Tháng 11/2026")
    assert header[6:9] == ["Tử số", "Mẫu số", "Tỷ lệ"]
    read = [(r[0], r[3], int(r[6]), int(r[7]), Decimal(r[8])) for r in rows]
    assert read == [
        ("19", "document_signing", 1170, 1171, Decimal("0.9991")),
        ("19", "dossier_on_time", 177, 200, Decimal("0.885")),
        ("01843", "document_signing", 60, 80, Decimal("0.75")),
        ("01850", "document_signing", 20, 20, Decimal("1")),
    ]


def test_workbook_of_a_month_holds_the_kpis_and_the_766_scorecard() -> None:
    file = export_file(ask("xlsx", lang="en"), "kpis", FIGURES, "19", CARD, NOW)
    assert file.filename == "report-19-2026-11.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(file.body))
    assert book.sheetnames == ["KPIs", "Scorecard 766"]
    kpis = [[c.value for c in row] for row in book["KPIs"].iter_rows(min_row=3)]
    assert [(r[0], r[6], r[7]) for r in kpis] == [
        ("19", 1170, 1171), ("19", 177, 200), ("01843", 60, 80), ("01850", 20, 20)
    ]  # fmt: skip
    card = {row[1].value: row for row in book["Scorecard 766"].iter_rows(min_row=3)}
    # 2.1 on-time resolution: 20 points × 177/200 = 17.70, from the province's own figure.
    on_time = card["2.1"]
    assert (on_time[4].value, on_time[6].value, on_time[7].value) == (17.7, 177, 200)


def test_csv_of_the_scorecard_alone() -> None:
    file = export_file(ask("csv"), "scorecard", FIGURES, "19", CARD, NOW)
    assert file.filename == "bang-diem-766-19-2026-11.csv"
    title, header, *rows = read_csv(file.body)
    assert title[0].startswith("Bộ chỉ số 766") and "Thái Nguyên (19)" in title[0]
    assert header[:3] == ["Nhóm", "Mã", "Chỉ số"]
    assert [r[4] for r in rows if r[1] == "2.1"] == ["17.70"]


def test_a_day_has_no_scorecard() -> None:
    day = [counted(fig("19", 10, 10, names=NAMES))]
    file = export_file(ask("xlsx", "day"), "kpis", day, "19", CARD, NOW)
    assert file.filename == "bao-cao-19-2026-11-23.xlsx"
    assert openpyxl.load_workbook(io.BytesIO(file.body)).sheetnames == ["Chỉ số"]
    with pytest.raises(ExportQueryError) as refused:
        export_file(ask("csv", "day"), "scorecard", day, "19", CARD, NOW)
    assert refused.value.parameter == "table"


def test_links_name_each_period_and_format_of_the_unit() -> None:
    html = download_links("en", "404", "Nong Cong District")
    hrefs = html.count("href=")
    assert hrefs == 8  # csv and xlsx of three periods, the scorecard of two
    assert 'href="/wall/export?unit=404&amp;window=day&amp;format=csv&amp;lang=en"' in html
    assert (
        'href="/wall/export?unit=404&amp;window=year&amp;format=csv&amp;lang=en'
        '&amp;table=scorecard"' in html
    )
    assert 'aria-label="Download the figures of Nong Cong District"' in html


def test_the_page_links_the_downloads_of_the_unit_it_shows() -> None:
    ov = build_overview(snapshot(FIGURES), "38", "404", NOW, 30)
    html = overview_html("vi", ov, NOW)
    assert 'href="/wall/export?unit=404&amp;window=month&amp;format=xlsx&amp;lang=vi"' in html
    assert "Tải số liệu" in html and "Bảng điểm 766 (CSV)" in html


async def test_a_download_waits_for_a_place_then_is_a_503_to_retry() -> None:
    import asyncio

    import httpx
    from starlette.applications import Starlette

    from services.wall.downloads import RETRY_AFTER_S, Downloads
    from services.wall.limits import Limits

    release = asyncio.Event()
    reads = 0

    class Slow:
        async def province_figures(self, window: str, province: str) -> list[Figure]:
            nonlocal reads
            reads += 1
            await release.wait()
            return FIGURES

    class OneHub:
        async def current(self):  # type: ignore[no-untyped-def]
            return snapshot(FIGURES)

    limits = Limits.build(exports_at_once=1, busy_wait_s=0.05)
    downloads = Downloads(OneHub(), Slow(), CARD, "vi", clock=lambda: NOW, limits=limits)  # type: ignore[arg-type]
    app = Starlette(routes=downloads.routes())
    params = {"unit": "38", "window": "month", "format": "csv"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://wall") as client:
        first = asyncio.ensure_future(client.get("/wall/export", params=params))
        await asyncio.sleep(0.01)
        busy = await client.get("/wall/export", params=params)
        release.set()
        made = await first
        again = await client.get("/wall/export", params={**params, "format": "xlsx"})
    assert busy.status_code == 503 and busy.headers["retry-after"] == str(RETRY_AFTER_S)
    assert "content-disposition" not in busy.headers
    assert made.status_code == 200 and again.status_code == 200
    assert reads == 1  # the workbook asked just after shares the CSV's read
