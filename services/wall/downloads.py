"""/wall/export: the KPI table and the 766 scorecard of a unit and period, as a file.

``GET /wall/export?unit=404&window=day|month|year&format=csv|xlsx&lang=vi|en``
(``&table=scorecard`` for the scorecard as CSV; a workbook holds both). The rows are the
unit's own figures, then its units' (those whose parent it is), as /v1/kpis of every
worker answers them for the unit's province and the window, read at the request. A file
is never made from part of the workers: one that does not answer is a 503, not a file
with units missing. The scorecard is the unit's, for this month or the year to date
(:mod:`services.common.scorecard`); a day has none. At most ``EGOV_WALL_MAX_EXPORTS``
files are made at once, and one read of a province serves the files asked meanwhile
(:mod:`services.wall.limits`); a request that finds no place in time is a 503 with
``Retry-After``.

The period a file names and scores is the one its figures count (their ``period_start``),
not the wall's clock: just after midnight a worker may still answer yesterday (its
snapshot is up to ``EGOV_METRICS_SNAPSHOT_INTERVAL_S`` old, and a rolled window is built
again in pieces). Figures that disagree (or do not say) are a 503 with ``Retry-After``,
never a file named for one period holding another's figures.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, date, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.export_requests import (
    ExportAsk,
    ExportQueryError,
    as_of,
    attachment,
    period_stem,
    unit_label,
)
from services.common.exports import Rendered, Table, Title, kpi_table, render, scorecard_table
from services.common.figures import Figure
from services.common.figures_client import FetchError
from services.common.scorecard import Period, Scorecard, score
from services.common.units import VN_TZ
from services.wall.hub import Hub
from services.wall.limits import Busy, Limits
from services.wall.overview import Silence
from services.wall.settings import Lang
from services.wall.sources import Sources

_CODE = re.compile(r"[0-9A-Za-z._-]{1,32}")
TABLES = ("kpis", "scorecard")
RETRY_AFTER_S = 5
"""A worker publishes every 2 s and builds a rolled window again within a few seconds."""


class PeriodUnsettled(Exception):
    """A file's figures do not count one known period: a window rolling over between
    workers' snapshots (or an answer without ``period_start``); asked again shortly."""


def _now() -> datetime:
    return datetime.now(UTC)


def rows_of(figures: Sequence[Figure], unit: str) -> list[Figure]:
    """The unit's figures, then its units' (by code), each unit's KPIs by id."""
    mine = [f for f in figures if f.unit == unit or f.parent == unit]
    return sorted(mine, key=lambda f: (f.unit != unit, f.unit, f.kpi))


def figures_period(window: str, rows: Sequence[Figure], now: datetime) -> Period | date:
    """The period ``rows`` of ``window`` count, from their own ``period_start`` (which all
    must share); ``now`` (the wall's clock) only bounds a year to date's last day.
    :class:`PeriodUnsettled` when they disagree or none says."""
    starts = {f.period_start for f in rows}
    if not starts or None in starts:
        raise PeriodUnsettled("the figures do not say which period they count (period_start)")
    if len(starts) > 1:
        days = ", ".join(sorted({s.astimezone(VN_TZ).date().isoformat() for s in starts if s}))
        raise PeriodUnsettled(f"period rolling over: the figures count periods from {days}")
    start = next(s for s in starts if s is not None).astimezone(VN_TZ).date()
    if window == "day":
        return start
    if window == "month":
        return Period("month", start.year, start.month)
    if window == "year":
        # The year's figures run to today, or to 31 December if the wall's clock is past
        # the year (New Year's first seconds) or to its first day if behind it.
        today = now.astimezone(VN_TZ).date()
        return Period("ytd", start.year, through=min(max(today, start), date(start.year, 12, 31)))
    raise ExportQueryError("window", f"window {window!r}: a file names a calendar period")


def export_file(
    ask: ExportAsk,
    table: str,
    figures: Sequence[Figure],
    unit: str,
    card: Scorecard,
    now: datetime,
    silent: Collection[str] | Callable[[Figure], bool] | None = None,
) -> Rendered:
    """The file of ``unit`` from its province's figures of ``ask.window``; with ``silent``
    (the units, or the figures whose unit, stopped sending), the KPI table marks them.
    Named and scored for the period the figures count (:func:`figures_period`). Pure."""
    rows = rows_of(figures, unit)
    period = figures_period(ask.window, rows, now)
    tables: list[Table] = [kpi_table(rows, ask.lang, silent)]
    if isinstance(period, Period):
        card_table = scorecard_table(score(card, rows, unit, period), ask.lang)
        tables = (
            [card_table] if table == "scorecard" and ask.fmt == "csv" else [*tables, card_table]
        )
    elif table == "scorecard":
        raise ExportQueryError("table", "a day has no scorecard: window=month or year")
    vi = ask.lang == "vi"
    if table == "scorecard" and ask.fmt == "csv":
        head = "bang-diem-766" if vi else "scorecard-766"
    else:
        head = "bao-cao" if vi else "report"
    title = Title(unit_label(unit, rows, ask.lang), period, as_of(rows, now))
    return render(ask.fmt, tables, title, f"{head}-{unit}-{period_stem(period)}", ask.lang)


class Downloads:
    """The download handler: the hub's snapshot places the unit, the sources read it."""

    def __init__(
        self,
        hub: Hub,
        sources: Sources,
        card: Scorecard,
        default_lang: Lang,
        clock: Callable[[], datetime] = _now,
        silence: Silence | None = None,
        limits: Limits | None = None,
    ) -> None:
        self.hub = hub
        self.sources = sources
        self.card = card
        self.default_lang = default_lang
        self.clock = clock
        self.silence = silence
        self.limits = limits or Limits.build()

    async def export(self, request: Request) -> Response:
        params = {k: request.query_params.getlist(k) for k in request.query_params}
        params.setdefault("lang", [self.default_lang])
        unit = request.query_params.get("unit", "")
        table = request.query_params.get("table", "kpis")
        try:
            ask = ExportAsk.parse(params, default_window="month")
            if not _CODE.fullmatch(unit):
                raise ExportQueryError("unit", "unit: give the code of a unit on the wall")
            if table not in TABLES:
                raise ExportQueryError("table", f"table: expected one of {', '.join(TABLES)}")
        except ExportQueryError as exc:
            return _error(400, str(exc), exc.parameter)
        province = await self._province_of(unit)
        if province is None:
            return _error(404, f"unit {unit} has no figures on the wall", "unit")
        retry = {"Retry-After": str(RETRY_AFTER_S)}
        try:
            async with self.limits.exports.place():
                return await self._file(ask, table, unit, province)
        except Busy:
            message = "the wall is making other files; retry in a few seconds"
            return _error(503, message, None, headers=retry)

    async def _file(self, ask: ExportAsk, table: str, unit: str, province: str) -> Response:
        try:
            # One read of a province serves every file of it asked meanwhile (clicks,
            # the unit's and its communes' files): the same figures, read once.
            figures = await self.limits.figures.get(
                (ask.window, province),
                lambda: self.sources.province_figures(ask.window, province),
            )
        except FetchError as exc:
            return _error(503, f"not every metrics worker answered: {exc}", None)
        try:
            # Written in a thread: open pages' streams go on meanwhile.
            now = self.clock()
            silent = None
            if self.silence is not None:
                silent = self.silence.rows(await self.hub.current(), now)
            file = await asyncio.to_thread(
                export_file, ask, table, figures, unit, self.card, now, silent
            )
        except ExportQueryError as exc:
            return _error(400, str(exc), exc.parameter)
        except PeriodUnsettled as exc:
            self.limits.figures.forget((ask.window, province))
            retry = {"Retry-After": str(RETRY_AFTER_S)}
            message = f"{exc}; retry in a few seconds"
            return _error(503, message, None, headers=retry)
        return Response(file.body, headers=attachment(file))

    async def _province_of(self, unit: str) -> str | None:
        snapshot = await self.hub.current()
        for fig in snapshot.figures:
            if fig.unit == unit:
                return fig.province or unit
        return None

    def routes(self) -> list[Route]:
        return [Route("/wall/export", self.export)]


def _error(
    status: int, message: str, parameter: str | None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": message, "parameter": parameter}
    return JSONResponse(body, status_code=status, headers=headers)
