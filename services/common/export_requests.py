"""What a download asks for, and its file: shared by /v1/kpis?format= and the wall. Pure.

A request names a format (``csv`` or ``xlsx``), a language (``vi`` by default, ``en``)
and one calendar window (``day``, ``month``, ``year``): a file holds one period, named in
its title row and its file name (docs/exports.md). The rows are what the JSON answer of
the same query holds, as :class:`~services.common.figures.Figure`; the file is written by
:mod:`services.common.exports`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, TypeVar

from services.common.exports import Format, Rendered, Table, Title, kpi_table, render
from services.common.figures import Figure
from services.common.rates import Lang
from services.common.scorecard import Period
from services.common.units import VN_TZ

FORMATS: Final[tuple[Format, ...]] = ("csv", "xlsx")
LANGS: Final[tuple[Lang, ...]] = ("vi", "en")
WINDOWS: Final = ("day", "month", "year")
"""Calendar windows: a file names its period (a rolling hour has none to name)."""
MAX_ROWS: Final = 20_000
"""Rows in one file, at most: a province's communes (about 600 before the 2025 reform,
times 7 KPIs) fit; every unit of the country does not, and would hold a worker's loop."""


class ExportQueryError(ValueError):
    """A download parameter that cannot be answered; ``parameter`` names it."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


@dataclass(frozen=True, slots=True)
class ExportAsk:
    """A download: its format, language and window."""

    fmt: Format
    lang: Lang
    window: str

    @classmethod
    def parse(cls, params: Mapping[str, Sequence[str]], default_window: str) -> ExportAsk:
        """From query parameters (each a list of values, as a query string repeats them)."""
        fmt = _one(params, "format", FORMATS, None)
        lang = _one(params, "lang", LANGS, "vi")
        window = _one(params, "window", WINDOWS, default_window)
        return cls(fmt, lang, window)

    def period(self, now: datetime) -> Period | date:
        """The period of the window at ``now``, in Vietnam days: today, this month, or
        this year to today."""
        return window_period(self.window, now)


T = TypeVar("T", bound=str)


def _one(
    params: Mapping[str, Sequence[str]], name: str, allowed: Sequence[T], default: T | None
) -> T:
    values = list(params.get(name) or ())
    if not values and default is not None:
        return default
    if len(values) != 1:
        raise ExportQueryError(name, f"{name}: give one of {', '.join(allowed)}")
    for known in allowed:
        if values[0] == known:
            return known
    raise ExportQueryError(name, f"{name} {values[0]!r}: expected one of {', '.join(allowed)}")


def window_period(window: str, now: datetime) -> Period | date:
    today = now.astimezone(VN_TZ).date()
    if window == "day":
        return today
    if window == "month":
        return Period("month", today.year, today.month)
    if window == "year":
        return Period("ytd", today.year, through=today)
    raise ExportQueryError("window", f"window {window!r}: expected one of {', '.join(WINDOWS)}")


def period_stem(period: Period | date) -> str:
    """The period in a file name: 2026-12-04, 2026-11, 2026."""
    if isinstance(period, date):
        return period.isoformat()
    if period.kind == "month":
        return f"{period.year}-{period.number:02d}"
    if period.kind == "quarter":
        return f"{period.year}-q{period.number}"
    return str(period.year)


def unit_label(code: str, figures: Iterable[Figure], lang: Lang) -> str:
    """A unit as people name it, with its code ("Huyện Nông Cống (404)"); the code alone
    when no figure names it."""
    for fig in figures:
        if fig.unit == code:
            name = fig.unit_name if lang == "vi" else (fig.unit_name_en or fig.unit_name)
            if name:
                return f"{name} ({code})"
    return code


def as_of(figures: Iterable[Figure], now: datetime) -> datetime:
    """The time of the figures: their newest event; ``now`` when none has one."""
    return max((f.last_event_time for f in figures if f.last_event_time), default=now)


def kpi_file(
    ask: ExportAsk,
    figures: Sequence[Figure],
    subject: str,
    stem: str,
    now: datetime,
    more: Sequence[Table] = (),
) -> Rendered:
    """The KPI table of ``figures`` (in the order given), then ``more`` tables (a
    workbook holds them all; a CSV file only the first), under the title of ``subject``
    and the window's period. ``stem`` starts the file name; the period ends it."""
    if len(figures) > MAX_ROWS:
        raise ExportQueryError(
            "unit", f"{len(figures)} rows: at most {MAX_ROWS} in one file; narrow the query"
        )
    period = ask.period(now)
    title = Title(subject, period, as_of(figures, now))
    tables = [kpi_table(figures, ask.lang), *more]
    return render(ask.fmt, tables, title, f"{stem}-{period_stem(period)}", ask.lang)


def attachment(file: Rendered) -> dict[str, str]:
    """The HTTP headers of a download of ``file``."""
    return {
        "Content-Type": file.content_type,
        "Content-Disposition": f'attachment; filename="{file.filename}"',
        "Cache-Control": "no-store",
    }
