"""Review 49 (fixed 2026-12-05): the 766 scorecard file read back as a leader reads it
(each row, each group): what is shown adds up (docs/scorecard.md)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from decimal import Decimal

import openpyxl
import pytest

from services.common.exports import Title, scorecard_table, to_csv, to_xlsx
from services.common.figures import Figure
from services.common.scorecard import Period, Scorecard, score

NOV = Period("month", 2026, 11)
TITLE = Title("Huyện Nông Cống (404)", NOV, datetime(2026, 12, 4, 3, 15, tzinfo=UTC))


def fig(kpi: str, n: int, d: int) -> Figure:
    return Figure(
        kpi, "404", "month", n, d, 9000, 10, "Huyện Nông Cống", "Nong Cong District",
        kpi, kpi, level="district", province="38",
    )  # fmt: skip


@pytest.fixture(scope="module")
def card() -> Scorecard:
    return Scorecard.load()


def csv_rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def test_points_and_points_lost_add_up_to_the_maximum_in_a_row(card: Scorecard) -> None:
    s = score(card, [fig("dossier_on_time", 3_541, 4_000)], "404", NOV)
    rows = csv_rows(to_csv(scorecard_table(s, "vi"), TITLE, "vi"))
    on_time = next(r for r in rows[2:] if r[1] == "2.1")
    maximum, points, lost = (Decimal(on_time[i]) for i in (3, 4, 5))
    assert maximum == 20
    assert points + lost == maximum, (points, lost)


def test_a_group_subtotal_is_the_sum_of_the_points_its_rows_show(card: Scorecard) -> None:
    figures = [
        fig("dossier_electronic_result", 1_001, 1_200),  # 6 x 1001/1200 = 5.005 points
        fig("dossier_population_data", 201, 400),  # 2 x 201/400 = 1.005 points
        fig("dossier_digitised", 800, 1_000),  # 4.2: full points from 80 %: 4.00
    ]
    s = score(card, figures, "404", NOV)
    book = openpyxl.load_workbook(io.BytesIO(to_xlsx([scorecard_table(s, "vi")], TITLE, "vi")))
    ws = book.worksheets[0]
    digitisation = [
        [ws.cell(r, c).value for c in range(1, 12)]
        for r in range(3, ws.max_row + 1)
        if str(ws.cell(r, 1).value).startswith("4.")
    ]
    shown = [round(Decimal(str(r[4])), 2) for r in digitisation if r[1] and r[4] is not None]
    subtotal = next(r for r in digitisation if r[2] == "Cộng")
    assert sorted(shown) == [Decimal("1.01"), Decimal("4.00"), Decimal("5.01")]
    assert round(Decimal(str(subtotal[4])), 2) == sum(shown)
