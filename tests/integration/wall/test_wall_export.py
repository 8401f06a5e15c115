"""Downloads read back as a user's software reads them: the wall's /wall/export and a
worker's /v1/kpis?format=, against a real metrics worker on the broker, each compared
with the worker's /v1/kpis JSON for the same query."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from pathlib import Path

import httpx
import openpyxl  # type: ignore[import-untyped]  # no stubs installed
import pytest

from services.common.settings import CommonSettings
from tests.integration.wall.test_wall_browser import (
    PROVINCE,
    UNIT,
    publish,
    served_figure,
    wall,
    worker,
    worker_env,
)

pytestmark = pytest.mark.integration

__all__ = ["worker_env"]  # the fixture, used by name below

Figures = dict[tuple[str, str], tuple[int, int, Decimal | None]]


async def json_figures(client: httpx.AsyncClient, metrics: str, **params: str) -> Figures:
    """/v1/kpis's JSON items, as (unit, kpi) -> (numerator, denominator, shown rate);
    items without a target (a retired KPI) are left out of files."""
    items = (await client.get(f"{metrics}/v1/kpis", params=params)).json()["items"]
    return {
        (i["unit"], i["kpi"]): (i["numerator"], i["denominator"], _rate(i["rate_bp"]))
        for i in items
        if i["target"] is not None
    }


def _rate(bp: int | None) -> Decimal | None:
    return None if bp is None else Decimal(bp) / 10000


def csv_figures(body: bytes) -> Figures:
    _title, _header, *rows = csv.reader(io.StringIO(body.decode("utf-8-sig"), newline=""))
    return {(r[0], r[3]): (int(r[6]), int(r[7]), Decimal(r[8]) if r[8] else None) for r in rows}


def xlsx_figures(body: bytes, sheet: str) -> Figures:
    read: Figures = {}
    for row in openpyxl.load_workbook(io.BytesIO(body))[sheet].iter_rows(min_row=3):
        unit, kpi, n, d, rate = (row[i].value for i in (0, 3, 6, 7, 8))
        assert isinstance(n, int) and isinstance(d, int), (unit, kpi, n, d)  # numbers
        read[(unit, kpi)] = (n, d, None if rate is None else Decimal(str(rate)))
    return read


async def download(client: httpx.AsyncClient, url: str, **params: str) -> httpx.Response:
    answer = await client.get(url, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-disposition"].startswith("attachment; filename=")
    return answer


async def test_files_hold_the_figures_of_v1_kpis(
    worker_env: dict[str, str], common_settings: CommonSettings, tmp_path: Path
) -> None:
    async with (
        worker(worker_env, tmp_path / "worker.log") as (metrics, _),
        wall(worker_env, tmp_path / "wall.log") as (base, _),
        httpx.AsyncClient(timeout=20) as client,
    ):
        await publish(common_settings, signed=20, unsigned=5)
        await served_figure(metrics, 25)
        page = (await client.get(f"{base}/wall", params={"province": PROVINCE})).text
        assert f"/wall/export?unit={PROVINCE}&amp;window=day&amp;format=csv&amp;lang=vi" in page

        # The wall's file of the province today: the province and its units.
        day = await json_figures(client, metrics, province=PROVINCE, window="day")
        mine = {k: v for k, v in day.items() if k[0] == PROVINCE or k[0] == UNIT}
        assert mine[(UNIT, "document_signing")] == (20, 25, Decimal("0.8"))
        got = await download(
            client, f"{base}/wall/export", unit=PROVINCE, window="day", format="csv"
        )
        assert got.content.startswith(b"\xef\xbb\xbf")
        assert csv_figures(got.content) == mine

        # This month as a workbook, in English: the KPI sheet and the 766 scorecard.
        month = await json_figures(client, metrics, province=PROVINCE, window="month")
        got = await download(
            client, f"{base}/wall/export", unit=UNIT, window="month", format="xlsx", lang="en"
        )
        assert xlsx_figures(got.content, "KPIs") == {k: v for k, v in month.items() if k[0] == UNIT}
        book = openpyxl.load_workbook(io.BytesIO(got.content))
        assert book.sheetnames == ["KPIs", "Scorecard 766"]
        total = [r for r in book["Scorecard 766"].iter_rows(min_row=3, values_only=True)][-1]
        assert total[0] == "Total" and total[3] == 100

        # The worker's own download of the same query, through its web server.
        got = await download(
            client, f"{metrics}/v1/kpis", province=PROVINCE, window="day", format="xlsx"
        )
        assert xlsx_figures(got.content, "Chỉ số") == day
        got = await download(client, f"{metrics}/v1/kpis", unit=UNIT, window="month", format="csv")
        assert csv_figures(got.content) == {k: v for k, v in month.items() if k[0] == UNIT}

        # What cannot be made is said, never an empty or partial file.
        refused = await client.get(f"{base}/wall/export", params={"unit": UNIT, "format": "pdf"})
        assert refused.status_code == 400 and refused.json()["parameter"] == "format"
        unknown = await client.get(f"{base}/wall/export", params={"unit": "99999", "format": "csv"})
        assert unknown.status_code == 404
