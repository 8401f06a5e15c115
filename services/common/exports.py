"""The KPI table and the 766 scorecard of a unit and period as CSV and Excel files. Pure.

A table (:func:`kpi_table`, :func:`scorecard_table`) is typed cells under Vietnamese or
English headers; :func:`to_csv` and :func:`to_xlsx` write it, after a title row naming
the unit, the period and the time of the figures (docs/exports.md).

- Numbers stay numbers: counts are integers, a rate is the ratio of
  :func:`services.common.rates.rate_bp` (so a file never shows 100 % while an item is
  missing, nor disagrees with the wall) and points are rounded half up to hundredths
  from their exact fraction. In Excel a rate is a number shown as a percentage with two
  decimals; in CSV it is a plain decimal ratio ("0.9994") that any reader parses.
- Times are times: in CSV ISO 8601 with the Vietnam offset ("2026-12-04T10:15:00+07:00",
  never a day-first date a program reads month first); in Excel a date cell in Vietnam
  time shown "04/12/2026 10:15" ("4 Dec 2026 10:15"). Titles say them as the wall does.
- CSV is UTF-8 with a byte-order mark: without it Excel reads a CSV file in the
  Windows code page of the machine (Windows-1258 in Vietnam) and "Nông Cống" turns into
  mojibake; with it, Excel and every CSV reader that knows the BOM read UTF-8.
- Excel workbooks are written with XlsxWriter: a maintained, dependency-free writer of
  the xlsx format with precise number formats; this code never reads workbooks back
  (tests do, with openpyxl, an independent reader).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final, Literal

import xlsxwriter  # type: ignore[import-untyped]  # XlsxWriter ships no type hints

from services.common.citations import cite
from services.common.figures import Figure, Standing
from services.common.rates import Lang, format_date, format_datetime, rate_bp
from services.common.scorecard import (
    TOTAL_POINTS,
    IndicatorScore,
    Period,
    Score,
    State,
)
from services.common.units import VN_TZ

Kind = Literal["text", "count", "rate", "points", "time"]
Format = Literal["csv", "xlsx"]
Cell = str | int | Decimal | datetime | None
UTF8_BOM: Final = b"\xef\xbb\xbf"
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")
_XLSX_FORMATS: Final = {"count": "#,##0", "rate": "0.00%", "points": "0.00"}
_XLSX_TIME: Final[dict[Lang, str]] = {"vi": "dd/mm/yyyy hh:mm", "en": "d mmm yyyy hh:mm"}
"""A time in a workbook: a date cell (sorts and filters as one) in Vietnam time, shown as
the wall writes it; an explicit format, so an en-US Excel shows 04/12/2026 the same."""
CONTENT_TYPES: Final[dict[str, str]] = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}


@dataclass(frozen=True, slots=True)
class Column:
    """A column: its header in both languages and the kind of its cells."""

    vi: str
    en: str
    kind: Kind = "text"
    width: int = 14

    def header(self, lang: Lang) -> str:
        return self.vi if lang == "vi" else self.en


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of typed cells under columns; ``sheet`` names its worksheet (<= 31 chars)."""

    heading: str
    sheet: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True, slots=True)
class Title:
    """What the title row names: the unit (or level), the period, the time of figures."""

    subject: str
    """The unit as people name it, with its code: "Huyện Nông Cống (404)"."""
    period: Period | date
    """A scoring period, or one Vietnam day (the ``day`` window)."""
    as_of: datetime

    def text(self, heading: str, lang: Lang) -> str:
        if isinstance(self.period, Period):
            period = self.period.label(lang)
        else:
            period = format_date(self.period, lang)
        at = format_datetime(self.as_of, lang)
        figures_at = f"số liệu lúc {at}" if lang == "vi" else f"figures as of {at}"
        return f"{heading} — {self.subject} — {period} — {figures_at}"


# The wall's words (services/wall/i18n.py): what is measured is a "chỉ số", the figure to
# reach its "mục tiêu". Until 2026-12-05 the Vietnamese headers said "Chỉ tiêu" (in reports
# both the indicator and the planned figure) beside "Mục tiêu", and the software's "Sự kiện
# gần nhất" (review 55).
KPI_COLUMNS: Final = (
    Column("Mã đơn vị", "Unit code", width=10),
    Column("Đơn vị", "Unit", width=28),
    Column("Cấp", "Level", width=10),
    Column("Mã chỉ số", "KPI id", width=22),
    Column("Chỉ số", "KPI", width=40),
    Column("Kỳ", "Window", width=8),
    Column("Tử số", "Numerator", "count"),
    Column("Mẫu số", "Denominator", "count"),
    Column("Tỷ lệ", "Rate", "rate", 10),
    Column("Mục tiêu", "Target", "rate", 10),
    Column("Đánh giá", "Standing", width=16),
    Column("Lần gửi dữ liệu cuối", "Last event", "time", 18),
    Column("Căn cứ mục tiêu", "Target basis", width=48),
)

SCORECARD_COLUMNS: Final = (
    Column("Nhóm", "Group", width=28),
    Column("Mã", "Id", width=6),
    Column("Chỉ số", "Indicator", width=48),
    Column("Điểm tối đa", "Max points", "points", 10),
    Column("Điểm đạt", "Points", "points", 10),
    Column("Điểm bị mất", "Points lost", "points", 10),
    Column("Tử số", "Numerator", "count"),
    Column("Mẫu số", "Denominator", "count"),
    Column("Tỷ lệ", "Rate", "rate", 10),
    Column("Trạng thái", "State", width=18),
    Column("Ghi chú", "Note", width=60),
)

_LEVELS: Final = {
    "vi": {"province": "Tỉnh", "district": "Huyện", "commune": "Xã", "department": "Sở, ngành"},
    "en": {
        "province": "Province",
        "district": "District",
        "commune": "Commune",
        "department": "Department",
    },
}
_WINDOWS: Final = {
    "vi": {"day": "Ngày", "month": "Tháng", "quarter": "Quý", "year": "Năm"},
    "en": {"day": "Day", "month": "Month", "quarter": "Quarter", "year": "Year"},
}
_STANDINGS: Final = {
    "vi": {
        Standing.MEETS: "Đạt",
        Standing.BELOW: "Không đạt",
        Standing.LOW_VOLUME: "Ít số liệu",
        Standing.NO_DATA: "Không có số liệu",
    },
    "en": {
        Standing.MEETS: "Meets",
        Standing.BELOW: "Below",
        Standing.LOW_VOLUME: "Low volume",
        Standing.NO_DATA: "No data",
    },
}
_STATES: Final = {
    "vi": {
        State.MEASURED: "Đo được",
        State.NO_DATA: "Không có số liệu",
        State.NOT_MEASURED: "Chưa đo ở đây",
    },
    "en": {
        State.MEASURED: "Measured",
        State.NO_DATA: "No data",
        State.NOT_MEASURED: "Not measured here",
    },
}


SENDING_COLUMN: Final = Column("Gửi dữ liệu", "Sending", width=18)
"""Added by a caller that knows which units stopped sending (the wall): a silent unit's
rows say so, where its rate alone read like a unit at 100 % (docs/exports.md)."""

_NOT_SENDING: Final = {"vi": "Ngừng gửi dữ liệu", "en": "Not sending"}


def kpi_table(
    figures: Sequence[Figure],
    lang: Lang,
    silent: Collection[str] | Callable[[Figure], bool] | None = None,
) -> Table:
    """The KPI table, one row per figure in the order given (the caller ranks them); with
    ``silent`` (the units that stopped sending, or whether a figure's unit stopped sending
    its KPI's family), a last column marks their rows."""
    rows = tuple(_kpi_row(f, lang) for f in figures)
    columns: tuple[Column, ...] = KPI_COLUMNS
    if silent is not None:
        columns = (*KPI_COLUMNS, SENDING_COLUMN)
        mark = _NOT_SENDING[lang]
        stopped = _stopped(silent)
        rows = tuple((*r, mark if stopped(f) else "") for r, f in zip(rows, figures, strict=True))
    if lang == "vi":
        return Table("Bảng chỉ số", "Chỉ số", columns, rows)
    return Table("KPI table", "KPIs", columns, rows)


def _stopped(silent: Collection[str] | Callable[[Figure], bool]) -> Callable[[Figure], bool]:
    if callable(silent):
        return silent
    units = frozenset(silent)
    return lambda figure: figure.unit in units


def _kpi_row(fig: Figure, lang: Lang) -> tuple[Cell, ...]:
    judged = fig.target_bp is not None and not fig.retired
    return (
        fig.unit,
        (fig.unit_name if lang == "vi" else fig.unit_name_en) or fig.unit,
        _LEVELS[lang].get(fig.level, fig.level),
        fig.kpi,
        (fig.kpi_name_vi if lang == "vi" else fig.kpi_name_en) or fig.kpi,
        _WINDOWS[lang].get(fig.window, fig.window),
        fig.numerator,
        fig.denominator,
        _ratio(fig.rate_bp),
        _ratio(fig.target_bp),
        _STANDINGS[lang][fig.status] if judged else "",
        fig.last_event_time,
        cite(fig.target_basis, lang) if judged else "",
    )


def scorecard_table(score: Score, lang: Lang) -> Table:
    """The scorecard: each indicator under its group, a total row per group and overall."""
    worst = score.costliest()
    rows: list[tuple[Cell, ...]] = []
    for group in score.groups:
        name = f"{group.group.number}. {group.group.name(lang)}"
        rows.extend(_indicator_row(name, s, s is worst, lang) for s in group.indicators)
        rows.append(_total_row(name, group.group.max_points, group.measured_max, group.shown, lang))
    total = "Tổng" if lang == "vi" else "Total"
    rows.append(_total_row(total, TOTAL_POINTS, score.measured_max, score.shown, lang))
    if lang == "vi":
        return Table(f"Bộ chỉ số {score.decision}", "Bảng điểm 766", SCORECARD_COLUMNS, tuple(rows))
    heading = f"Decision {score.decision} scorecard"
    return Table(heading, "Scorecard 766", SCORECARD_COLUMNS, tuple(rows))


def _indicator_row(group: str, s: IndicatorScore, worst: bool, lang: Lang) -> tuple[Cell, ...]:
    ind, counted = s.indicator, s.state is not State.NOT_MEASURED
    measured = s.state is State.MEASURED
    notes = [ind.why_not_measured(lang) if not counted else ind.deviation(lang)]
    if s.low_volume:
        notes.append("Ít số liệu" if lang == "vi" else "Low volume")
    if worst:
        notes.append("Mất nhiều điểm nhất" if lang == "vi" else "Costs the most points")
    return (
        group,
        ind.id,
        ind.name(lang),
        Decimal(ind.max_points),
        _hundredths(s.shown) if measured and s.points is not None else None,
        _hundredths(s.lost_shown) if measured and s.points is not None else None,
        s.numerator if counted else None,
        s.denominator if counted else None,
        _ratio(rate_bp(s.numerator, s.denominator)) if counted else None,
        _STATES[lang][s.state],
        "; ".join(n for n in notes if n),
    )


def _total_row(
    name: str, max_points: int, measured_max: int, shown: int, lang: Lang
) -> tuple[Cell, ...]:
    """A subtotal or the total: the sum of the points its rows show (``GroupScore.shown``),
    so that a spreadsheet's SUM of them agrees."""
    label = "Cộng" if lang == "vi" else "Subtotal"
    note = (
        f"Đo được {measured_max}/{max_points} điểm"
        if lang == "vi"
        else f"{measured_max} of {max_points} points measured"
    )
    earned = _hundredths(shown) if measured_max else None  # unknown, not 0
    return (name, "", label, Decimal(max_points), earned, None) + (None,) * 4 + (note,)


def _hundredths(shown: int) -> Decimal:
    return Decimal(shown).scaleb(-2)


def _ratio(bp: int | None) -> Decimal | None:
    # The shown rate (basis points, rounded half up from the counts) as an exact ratio:
    # the spreadsheet then shows the wall's two decimals, never a rate of its own.
    return None if bp is None else Decimal(bp).scaleb(-4)


def to_csv(table: Table, title: Title, lang: Lang) -> bytes:
    """The table as CSV: UTF-8 with BOM, CRLF rows, the title row, then the headers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([title.text(table.heading, lang)])
    writer.writerow([c.header(lang) for c in table.columns])
    writer.writerows([_csv_cell(cell) for cell in row] for row in table.rows)
    return UTF8_BOM + out.getvalue().encode("utf-8")


def _csv_cell(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        # ISO 8601 with the Vietnam offset (2026-12-04T10:15:00+07:00): one reading in
        # every program. Until 2026-12-05 the CSV wrote "04/12/2026 10:15", which pandas
        # and an en-US Excel read as 12 April (review 55); the workbook keeps that form.
        return cell.astimezone(VN_TZ).isoformat(timespec="seconds")
    if isinstance(cell, str) and cell.startswith(_FORMULA_STARTS):
        # Excel runs a CSV cell that starts like a formula; names come from the unit
        # registry, not from publishers, but a text cell must never become a formula.
        return "'" + cell
    return str(cell)


def to_xlsx(tables: Sequence[Table], title: Title, lang: Lang) -> bytes:
    """The tables as one workbook, one worksheet each, each under its title row."""
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    book.set_properties({"title": title.text(tables[0].heading, lang) if tables else ""})
    bold = book.add_format({"bold": True})
    header = book.add_format({"bold": True, "text_wrap": True, "valign": "top", "bottom": 1})
    formats = {kind: book.add_format({"num_format": f}) for kind, f in _XLSX_FORMATS.items()}
    formats["time"] = book.add_format({"num_format": _XLSX_TIME[lang]})
    for table in tables:
        sheet = book.add_worksheet(table.sheet)
        sheet.write_string(0, 0, title.text(table.heading, lang), bold)
        for col, column in enumerate(table.columns):
            sheet.set_column(col, col, column.width)
            sheet.write_string(1, col, column.header(lang), header)
        for r, row in enumerate(table.rows, start=2):
            for col, (column, cell) in enumerate(zip(table.columns, row, strict=True)):
                _write(sheet, r, col, column.kind, cell, formats)
        sheet.freeze_panes(2, 0)
    book.close()
    return out.getvalue()


def _write(
    sheet: xlsxwriter.worksheet.Worksheet,
    row: int,
    col: int,
    kind: Kind,
    cell: Cell,
    formats: dict[str, xlsxwriter.format.Format],
) -> None:
    if cell is None:
        return
    if isinstance(cell, str):
        sheet.write_string(row, col, cell)
    elif isinstance(cell, datetime):
        # A worksheet has no time zones: Vietnam's wall-clock time, as the title says it.
        sheet.write_datetime(row, col, cell.astimezone(VN_TZ).replace(tzinfo=None), formats["time"])
    elif isinstance(cell, int):
        sheet.write_number(row, col, cell, formats["count"])
    else:
        # A worksheet number is an IEEE double: the exact ratio 0.9994 goes in as the
        # nearest double, which Excel shows with its 15 digits as 99.94 %.
        sheet.write_number(row, col, float(cell), formats.get(kind))


@dataclass(frozen=True, slots=True)
class Rendered:
    """A file ready to send: its bytes, media type and a download name."""

    body: bytes
    content_type: str
    filename: str


def render(fmt: Format, tables: Sequence[Table], title: Title, stem: str, lang: Lang) -> Rendered:
    """One export as an HTTP answer needs it (/v1/kpis?format=, the wall's download).

    CSV holds one table (the first); a workbook holds them all. ``stem`` names the file
    ("kpis-404-2026-11"): kept to ASCII letters, digits and "-" so that every browser
    saves it under that name.
    """
    if fmt == "csv":
        body = to_csv(tables[0], title, lang)
    elif fmt == "xlsx":
        body = to_xlsx(tables, title, lang)
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "-") else "-" for c in stem)
    return Rendered(body, CONTENT_TYPES[fmt], f"{safe}.{fmt}")


__all__ = [
    "CONTENT_TYPES",
    "KPI_COLUMNS",
    "SCORECARD_COLUMNS",
    "Column",
    "Rendered",
    "Table",
    "Title",
    "kpi_table",
    "render",
    "scorecard_table",
    "to_csv",
    "to_xlsx",
]
