"""/v1/kpis?format=csv|xlsx: the JSON answer's figures as a file, read back as a user would
(csv with utf-8-sig, openpyxl), compared with /v1/kpis's JSON for the same query."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import openpyxl  # type: ignore[import-untyped]  # no stubs installed
import orjson
import pytest

from services.common.tally import Deltas
from services.metrics.figures import Figures, PartitionFigures
from services.metrics.periods import Periods
from services.metrics.snapshot import KpiSnapshots
from services.metrics.targets import Targets
from services.metrics.web import kpis_answer, kpis_download
from tests.unit.metrics.helpers import catalogue, registry
from tests.unit.metrics.test_figures import c

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)  # 10:00 in Vietnam
TP = ("egov.documents", 0)
Params = dict[str, list[str]]


async def published() -> tuple[KpiSnapshots, Targets]:
    figures = Figures()
    figures.assign(TP, PartitionFigures())
    targets = Targets(catalogue())
    snapshots = KpiSnapshots(figures, registry(), targets, lambda: NOW, interval_s=1.0)
    # Phường Bắc Kạn (01843) in Thái Nguyên (19): 3 of 4 documents signed; Thanh Hóa's
    # 16342 (38): 1 of 1.
    bac_kan = [c(NOW), c(NOW), c(NOW), c(NOW, 0)]
    figures.apply(TP, Deltas.of([*bac_kan, c(NOW, units=("16342", "38"))]), Periods.at(NOW))
    await snapshots.publish()
    return snapshots, targets


def json_items(snapshots: KpiSnapshots, targets: Targets, params: Params) -> list[dict]:  # type: ignore[type-arg]
    response = kpis_answer(params, snapshots, targets, "unit-worker")
    assert response.status == 200, response.body
    items: list[dict] = orjson.loads(response.body)["items"]  # type: ignore[arg-type, type-arg]
    assert items, "the query selects nothing: the comparison would prove nothing"
    return items


def by_key(items: list[dict]) -> dict[tuple[str, str], tuple[int, int, Decimal]]:  # type: ignore[type-arg]
    return {
        (i["unit"], i["kpi"]): (i["numerator"], i["denominator"], Decimal(i["rate_bp"]) / 10000)
        for i in items
    }


async def test_csv_holds_the_json_answers_figures() -> None:
    snapshots, targets = await published()
    params: Params = {"unit": ["01843", "16342"], "window": ["day"]}
    response = await kpis_download({**params, "format": ["csv"]}, snapshots, targets, registry())
    assert response.status == 200, response.body
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    disposition = response.headers["Content-Disposition"]
    assert disposition == 'attachment; filename="bang-chi-so-01843-16342-2026-11-23.csv"'
    assert isinstance(response.body, bytes) and response.body.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.body.decode("utf-8-sig"), newline="")))
    title, header, *data = rows
    assert title[0].startswith("Bảng chỉ số — ") and "23/11/2026" in title[0]
    assert header[:2] == ["Mã đơn vị", "Đơn vị"] and header[6:9] == ["Tử số", "Mẫu số", "Tỷ lệ"]
    read = {(r[0], r[3]): (int(r[6]), int(r[7]), Decimal(r[8])) for r in data}
    assert read == by_key(json_items(snapshots, targets, params))
    assert read[("01843", "document_signing")] == (3, 4, Decimal("0.75"))


async def test_workbook_holds_the_json_answers_figures_as_numbers() -> None:
    snapshots, targets = await published()
    params: Params = {"province": ["19"], "window": ["month"]}
    response = await kpis_download(
        {**params, "format": ["xlsx"], "lang": ["en"]}, snapshots, targets, registry()
    )
    assert response.status == 200, response.body
    assert response.headers["Content-Disposition"] == 'attachment; filename="kpis-19-2026-11.xlsx"'
    assert isinstance(response.body, bytes)
    sheet = openpyxl.load_workbook(io.BytesIO(response.body))["KPIs"]
    title = str(sheet["A1"].value)
    assert title.startswith("KPI table — ") and "Nov 2026" in title
    assert [cell.value for cell in sheet[2]][6:9] == ["Numerator", "Denominator", "Rate"]
    read = {}
    for row in sheet.iter_rows(min_row=3):
        unit, kpi, n, d, rate = (row[i].value for i in (0, 3, 6, 7, 8))
        assert isinstance(n, int) and isinstance(d, int)  # numbers, not text
        assert row[8].number_format == "0.00%"
        read[(unit, kpi)] = (n, d, Decimal(str(rate)))
    assert read == by_key(json_items(snapshots, targets, params))
    assert read[("01843", "document_signing")] == (3, 4, Decimal("0.75"))
    assert ("16342", "document_signing") not in read  # Thanh Hóa's unit: not province 19


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ({"format": ["pdf"]}, "format"),
        ({"format": ["csv"], "lang": ["fr"]}, "lang"),
        ({"format": ["csv"], "window": ["5m"]}, "window"),  # a rolling hour names no period
        ({"format": ["csv"], "window": ["day", "month"]}, "window"),  # one period per file
    ],
)
async def test_a_download_it_cannot_make_is_a_400_naming_the_parameter(
    params: Params, parameter: str
) -> None:
    snapshots, targets = await published()
    response = await kpis_download(params, snapshots, targets, registry())
    assert response.status == 400
    assert isinstance(response.body, bytes)
    assert orjson.loads(response.body)["parameter"] == parameter
