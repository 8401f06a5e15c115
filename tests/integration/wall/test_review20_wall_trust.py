"""Review 20: whether the wall and its files can be trusted by the people who read them.

An IOC operator reads the wall (``/wall``, the screens); a province official downloads
``/wall/export``. Small volumes, units with no data, units that stopped sending, the
ends of the rate (never "100 %" while an item is missing), Vietnamese and English
numbers, the same figure on every surface, and a worker that stops answering.

The wall service runs as its own process (``egov-pulse wall``) reading fake metrics
workers (:class:`tests.integration.alerts.harness.FakeMetrics`) that answer the items a
worker writes (:meth:`Figure.to_json`). Units are real: Tỉnh Thái Nguyên (19) and its
communes of today's hierarchy (/work/shared/data/vn-units/units-2025-two-level.json),
Tỉnh Thanh Hoá (38) and Phường Hạc Thành (14797).

Three defects, each a strict xfail first, all fixed: the rankings screen ranked a commune
silent for days first at 100 % with no mark, and the files showed it like a commune that
sends (both now mark it "Ngừng gửi dữ liệu"); targets were shown as a bare percentage,
without the decision they rest on (now each /v1/kpis item carries its target's basis, and
the wall and the files cite it: 2026-12-05).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openpyxl  # type: ignore[import-untyped]  # no stubs installed
import pytest

from services.common.broker import free_port
from services.common.figures import Figure
from services.common.kpis import KpiCatalogue
from services.common.targets import OverrideIndex
from services.common.units import VN_TZ
from tests.integration.alerts.harness import FakeMetrics
from tests.integration.wall.test_wall_browser import wall

pytestmark = pytest.mark.integration

KPI = "document_signing"
KPI_VI, KPI_EN = "Tỷ lệ văn bản điện tử được ký số", "Digital-signing rate"
NOW = datetime.now(VN_TZ)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
MONTH = TODAY.replace(day=1)
RECENT = NOW - timedelta(minutes=2)
DAYS_AGO = NOW - timedelta(days=3)
"""Xã Phong Quang's last event: silent under any calendar."""

PROVINCE = ("19", "Tỉnh Thái Nguyên", "Thai Nguyen Province")
NEARLY_ALL = ("01843", "Phường Bắc Kạn", "Bac Kan Ward")
"""199,999 of 200,000 signed: 99,99 %, never 100 %."""
ONE_OF_TWO = ("01840", "Phường Đức Xuân", "Duc Xuan Ward")
"""1 of 2: 50 %, too few to judge."""
SILENT = ("01849", "Xã Phong Quang", "Phong Quang Commune")
"""500 of 500 this month, nothing today, no event for three days: not sending."""
ONE_THIRD = ("01864", "Xã Bằng Thành", "Bang Thanh Commune")
"""10 of 30: 33,33 %."""
TWO_THIRDS = ("01879", "Xã Cao Minh", "Cao Minh Commune")
"""20 of 30: 66,67 %."""
NOTHING = ("01882", "Xã Nghiên Loan", "Nghien Loan Commune")
"""Sends meetings (active) but no signed-document item counts: 0 of 0, no data."""


def figure(
    unit: tuple[str, str, str],
    window: str,
    numerator: int,
    denominator: int,
    last_event: datetime | None,
    *,
    level: str = "commune",
    province: str = "19",
    target_bp: int = 10_000,
) -> dict[str, Any]:
    code, name, name_en = unit
    start = TODAY if window == "day" else MONTH
    # The basis a worker gives the catalogue's default for the level (no override).
    kpi = KpiCatalogue.load().get(KPI)
    default = OverrideIndex().default(kpi, level, TODAY.date())
    return Figure(
        KPI,
        code,
        window,
        numerator,
        denominator,
        target_bp,
        20,
        unit_name=name,
        unit_name_en=name_en,
        kpi_name_vi=KPI_VI,
        kpi_name_en=KPI_EN,
        level=level,
        province=province,
        parent=None if level == "province" else province,
        last_event_time=last_event,
        period_start=start,
        target_basis=None if default is None else default.basis,
    ).to_json()


COUNTS: dict[tuple[str, str, str], tuple[tuple[int, int], tuple[int, int], datetime | None]] = {
    NEARLY_ALL: ((199_999, 200_000), (199_999, 200_000), RECENT),
    ONE_OF_TWO: ((1, 2), (1, 2), RECENT),
    SILENT: ((0, 0), (500, 500), DAYS_AGO),
    ONE_THIRD: ((10, 30), (10, 30), RECENT),
    TWO_THIRDS: ((20, 30), (20, 30), RECENT),
    NOTHING: ((0, 0), (0, 0), RECENT),
}


def seed(fake: FakeMetrics) -> None:
    for window in ("day", "month"):
        fake.items[(KPI, PROVINCE[0], window)] = figure(
            PROVINCE, window, 11_703, 11_710, RECENT, level="province"
        )
    for unit, (day, month, last) in COUNTS.items():
        fake.items[(KPI, unit[0], "day")] = figure(unit, "day", *day, last)
        fake.items[(KPI, unit[0], "month")] = figure(unit, "month", *month, last)
        fake.activity[(unit[0], "meetings" if unit is NOTHING else "documents")] = last or NOW


def wall_env(*metrics: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EGOV_WALL", "EGOV_ALERT"))}
    env.update(
        EGOV_WALL_PORT=str(free_port()),
        EGOV_METRICS_URLS=",".join(metrics),
        EGOV_ALERTS_URL="",
        EGOV_WALL_LANG="vi",
        EGOV_WALL_SILENCE_MINUTES="30",
        EGOV_WALL_SILENT_CALENDAR="always",  # the test does not depend on office hours
        EGOV_WALL_POLL_INTERVAL_S="0.2",
        EGOV_WALL_SOURCE_TIMEOUT_S="1",
        PYTHONUNBUFFERED="1",
    )
    return env


@dataclass
class Thai:
    base: str
    fake: FakeMetrics


@pytest.fixture(scope="module")
async def thai(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Thai]:
    log = tmp_path_factory.mktemp("review20") / "wall.log"
    async with FakeMetrics() as fake:
        seed(fake)
        async with wall(wall_env(fake.url), log) as (base, _):
            yield Thai(base, fake)


async def get(base: str, path: str, **params: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=20) as client:
        return await client.get(base + path, params=params)


def row_html(page: str, unit: str, table_class: str) -> str:
    """The ``<tr data-unit=…>`` of ``unit`` inside the first table of ``table_class``."""
    table = re.search(rf'<table class="{table_class}">(.*?)</table>', page, re.S)
    assert table is not None, f"no {table_class} table"
    row = re.search(rf'<tr data-unit="{unit}"[^>]*>(.*?)</tr>', table.group(1), re.S)
    assert row is not None, f"{unit} not in the {table_class} table"
    return row.group(1)


def cell_html(page: str, unit: str, window: str) -> str:
    found = re.search(
        rf'<td class="rate-cell [^"]*" data-unit="{unit}" data-kpi="{KPI}" '
        rf'data-window="{window}"[^>]*>(.*?)</td>',
        page,
        re.S,
    )
    assert found is not None, f"no {window} cell of {unit}"
    return found.group(1)


def words(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def csv_rows(body: bytes) -> dict[str, list[str]]:
    title, _header, *rows = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    assert title
    return {r[0]: r for r in rows if r[3] == KPI}


# ------------------------------------------------------------------ the wall page


async def test_small_volumes_ends_and_thirds_read_as_counted_in_both_languages(
    thai: Thai,
) -> None:
    vi = (await get(thai.base, "/wall", province="19")).text
    en = (await get(thai.base, "/wall", province="19", lang="en")).text

    # 199,999 of 200,000: 99,99 %, never 100 %; the count beside it with "." thousands.
    nearly = words(cell_html(vi, NEARLY_ALL[0], "day"))
    assert nearly.startswith("99,99 %") and "199.999 / 200.000" in nearly, nearly
    assert "Chưa đạt mục tiêu" in nearly  # under a 100 % target, judged on the counts
    nearly_en = words(cell_html(en, NEARLY_ALL[0], "day"))
    assert nearly_en.startswith("99.99%") and "199,999 / 200,000" in nearly_en, nearly_en
    # Thirds rounded half up from the counts.
    assert words(cell_html(vi, ONE_THIRD[0], "day")).startswith("33,33 %")
    assert words(cell_html(vi, TWO_THIRDS[0], "day")).startswith("66,67 %")
    assert words(cell_html(en, TWO_THIRDS[0], "day")).startswith("66.67%")
    # 1 of 2: 50 % shown with its count, too few to judge, never in the below-target list.
    small = words(cell_html(vi, ONE_OF_TWO[0], "day"))
    assert small.startswith("50,00 %") and "1 / 2" in small, small
    assert "Chưa đủ số liệu để đánh giá" in small
    below = re.search(r'<table class="below-table">(.*?)</table>', vi, re.S)
    assert below is not None and ONE_OF_TWO[1] not in below.group(1)
    # The province's own figure: Nông Cống's published 11,703 of 11,710.
    own = words(cell_html(vi, PROVINCE[0], "day"))
    assert own.startswith("99,94 %") and "11.703 / 11.710" in own, own
    assert "100,00 %" not in vi and "100.00%" not in en


async def test_no_data_and_silence_are_never_a_rate(thai: Thai) -> None:
    vi = (await get(thai.base, "/wall", province="19")).text
    # Nothing counted today (a commune that sends only meetings): "–", no data, 0 / 0.
    nothing = words(cell_html(vi, NOTHING[0], "day"))
    assert nothing.startswith("–") and "Chưa có số liệu" in nothing, nothing
    assert "0,00 %" not in nothing and "100" not in nothing
    # Xã Phong Quang stopped sending three days ago: its row says so, its day is no rate.
    silent_row = row_html(vi, SILENT[0], "unit-table")
    assert "Ngừng gửi dữ liệu" in words(silent_row)
    assert "0,00 %" not in silent_row and "100,00 %" not in silent_row
    listed = re.search(r'<ul class="silent-list">(.*?)</ul>', vi, re.S)
    assert listed is not None and SILENT[1] in listed.group(1)
    assert NOTHING[1] not in listed.group(1)  # active in another family: not silent
    # The JSON of the same page says the same.
    api = (await get(thai.base, "/wall/api/overview", province="19")).json()
    rows = {r["unit"]: r for r in api["rows"]}
    assert rows[SILENT[0]]["silent"] is True and rows[NOTHING[0]]["silent"] is False
    assert rows[NOTHING[0]]["kpis"][KPI]["rate_bp"] is None
    assert rows[NOTHING[0]]["kpis"][KPI]["status"] == "no_data"


async def test_one_figure_reads_the_same_on_the_page_the_api_and_both_files(
    thai: Thai,
) -> None:
    page = (await get(thai.base, "/wall", province="19")).text
    api = (await get(thai.base, "/wall/api/overview", province="19")).json()
    by_unit = {r["unit"]: r["kpis"][KPI] for r in api["rows"]}
    day_csv = await get(thai.base, "/wall/export", unit="19", window="day", format="csv")
    assert day_csv.status_code == 200, day_csv.text
    rows = csv_rows(day_csv.content)
    book = await get(thai.base, "/wall/export", unit="19", window="day", format="xlsx")
    assert book.status_code == 200, book.text
    sheet = openpyxl.load_workbook(io.BytesIO(book.content))["Chỉ số"]
    xlsx = {r[0]: r for r in sheet.iter_rows(min_row=3, values_only=True) if r[3] == KPI}

    for unit, (day, _, _) in COUNTS.items():
        code = unit[0]
        n, d = day
        item = by_unit[code]
        assert (item["numerator"], item["denominator"]) == (n, d), code
        cell = re.search(
            rf'data-unit="{code}" data-kpi="{KPI}" data-window="day" '
            r'data-numerator="(\d+)" data-denominator="(\d+)"',
            page,
        )
        assert cell is not None and (int(cell[1]), int(cell[2])) == (n, d), code
        assert (int(rows[code][6]), int(rows[code][7])) == (n, d), code
        assert (xlsx[code][6], xlsx[code][7]) == (n, d), code
        bp = item["rate_bp"]
        if bp is None:  # no data: an empty cell everywhere, never 0 nor 100 %
            assert rows[code][8] == "" and xlsx[code][8] is None, code
            assert rows[code][10] == "Không có số liệu" == xlsx[code][10], code
            continue
        assert Decimal(rows[code][8]) == Decimal(bp).scaleb(-4), code
        assert Decimal(str(xlsx[code][8])) == Decimal(bp).scaleb(-4), code
    assert by_unit[NEARLY_ALL[0]]["rate_bp"] == 9999
    assert rows[NEARLY_ALL[0]][8] == "0.9999" and rows[NEARLY_ALL[0]][10] == "Không đạt"
    assert rows[ONE_OF_TWO[0]][10] == "Ít số liệu"
    assert sheet.cell(row=3, column=9).number_format == "0.00%"


# ------------------------------------------------------------------ a unit that stopped


async def test_rankings_mark_a_commune_that_stopped_sending(thai: Thai) -> None:
    page = (await get(thai.base, "/wall/rankings", province="19", key=KPI, level="commune")).text
    silent = words(row_html(page, SILENT[0], "rank-table"))
    assert silent.startswith("1 ") and "100,00 %" in silent  # its figure, as counted
    assert "Ngừng gửi dữ liệu" in silent, silent


async def test_export_marks_a_commune_that_stopped_sending(thai: Thai) -> None:
    got = await get(thai.base, "/wall/export", unit="19", window="month", format="csv")
    assert got.status_code == 200, got.text
    rows = csv_rows(got.content)
    silent, sending = rows[SILENT[0]], rows[TWO_THIRDS[0]]
    assert silent[8] == "1.0000" and silent[10] == "Đạt"  # its figure, as counted
    marks = ("Ngừng gửi dữ liệu", "ngừng gửi", "Not sending")
    assert any(m in cell for cell in silent for m in marks), silent
    assert not any(m in cell for cell in sending for m in marks), sending


# ------------------------------------------------------------------ targets


async def test_targets_are_shown_with_their_source(thai: Thai) -> None:
    page = (await get(thai.base, "/wall", province="19")).text
    got = await get(thai.base, "/wall/export", unit="19", window="month", format="xlsx")
    assert got.status_code == 200, got.text
    sheet = openpyxl.load_workbook(io.BytesIO(got.content))["Chỉ số"]
    cells = [str(c) for row in sheet.iter_rows(values_only=True) for c in row if c]
    # document_signing's 100 % from 1 Feb 2020 rests on Directive 02/CT-TTg.
    assert any("02/CT-TTg" in c for c in cells), "the file does not cite the target"
    assert "02/CT-TTg" in page, "the page does not cite the target"


# ------------------------------------------------------------------ a worker down


async def test_a_worker_down_marks_the_wall_stale_and_refuses_files(tmp_path: Path) -> None:
    hac_thanh = ("14797", "Phường Hạc Thành", "Hac Thanh Ward")
    thanh_hoa = ("38", "Tỉnh Thanh Hoá", "Thanh Hoa Province")
    async with FakeMetrics() as thai_worker:
        seed(thai_worker)
        thanh = FakeMetrics()
        await thanh.__aenter__()
        try:
            for window in ("day", "month"):
                thanh.items[(KPI, "38", window)] = figure(
                    thanh_hoa, window, 90, 100, RECENT, level="province", province="38"
                )
                thanh.items[(KPI, "14797", window)] = figure(
                    hac_thanh, window, 90, 100, RECENT, province="38"
                )
            env = wall_env(thai_worker.url, thanh.url)
            async with wall(env, tmp_path / "wall.log") as (base, _):
                live = (await get(base, "/wall/api/overview", province="38")).json()
                assert live["stale"] is False
                ok = await get(base, "/wall/export", unit="19", window="day", format="csv")
                assert ok.status_code == 200
                await thanh.__aexit__(None, None, None)
                stale: dict[str, Any] = {}
                for _ in range(100):
                    stale = (await get(base, "/wall/api/overview", province="38")).json()
                    if stale["stale"]:
                        break
                assert stale["stale"] is True
                # Its last figures stay, said to be old: not dropped, not shown as live.
                assert {r["unit"] for r in stale["rows"]} == {"14797"}
                screen = (await get(base, "/wall/province", province="38")).text
                assert 'data-state="stale"' in screen
                assert "Số liệu chưa được cập nhật kể từ" in screen
                # A file is never made from part of the workers, whatever unit is asked.
                for unit in ("14797", "19"):
                    refused = await get(base, "/wall/export", unit=unit, format="csv")
                    assert refused.status_code == 503, (unit, refused.text)
                    assert thanh.url in refused.json()["error"]
        finally:
            if thanh._task is not None and not thanh._task.done():
                await thanh.__aexit__(None, None, None)
