"""HTML of the wall's screens: the province overview, the rankings, a unit page, kiosk.

Each screen is a whole page made to fit one 1920×1080 screen without scrolling (sizes
in units of the viewport width, so a 4K wall shows the same page larger) and needs no
script: a kiosk stop and a screen left open refresh themselves by HTTP. Every rate,
count, target, point and date goes through :mod:`services.common.rates` and
:mod:`services.common.scorecard`; every value from a source through :func:`escape`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from itertools import pairwise
from typing import Final
from urllib.parse import urlencode

from services.common.figures import Figure, Standing
from services.common.rates import (
    BP_SCALE,
    format_count,
    format_datetime,
    format_fraction,
    format_rate,
    format_target,
)
from services.common.scorecard import (
    TOTAL_POINTS,
    GroupScore,
    IndicatorScore,
    Score,
    State,
    format_hundredths,
    format_points,
)
from services.common.unit_info import UnitInfo
from services.wall.bases import Bases
from services.wall.board import Board, DossierTiles, WorstUnit
from services.wall.i18n import (
    STATUS_ICONS,
    alert_state,
    fmt_since,
    fmt_time,
    status_label,
    text,
)
from services.wall.model import Alert
from services.wall.rankings import SCORE, Entry, Ranking
from services.wall.settings import Lang
from services.wall.trend import in_force, judge, restated_note
from services.wall.unitpage import Total, UnitTrends

ROWS_PER_COLUMN = 25
"""Ranked units in one column of the rankings screen; two columns a page."""
APART_LIMIT = 12
"""Units listed apart (too few to rank) shown beside a ranking; the rest are counted."""


def _name(lang: Lang, unit: UnitInfo) -> str:
    return (unit.name_en if lang == "en" else unit.name) or unit.code


def _fig_unit(lang: Lang, f: Figure) -> str:
    return (f.unit_name_en if lang == "en" else f.unit_name) or f.unit


def _kpi(lang: Lang, f: Figure) -> str:
    return (f.kpi_name_en if lang == "en" else f.kpi_name_vi) or f.kpi


def _badge(lang: Lang, status: Standing) -> str:
    return (
        f'<span class="badge st-{status.value}"><span aria-hidden="true">'
        f"{STATUS_ICONS[status]}</span> {escape(status_label(lang, status))}</span>"
    )


def rate_block(lang: Lang, n: int, d: int, status: Standing | None = None) -> str:
    """A rate with its counts beside it (small volumes lie), and its status in words."""
    cls = f" st-{status.value}" if status is not None else ""
    badge = _badge(lang, status) if status is not None else ""
    return (
        f'<span class="rb{cls}" data-numerator="{n}" data-denominator="{d}">'
        f'<span class="rate">{format_rate(n, d, lang)}</span> '
        f'<span class="counts">{format_fraction(n, d, lang)}</span>{badge}</span>'
    )


def screen_url(path: str, lang: Lang, **params: str | None) -> str:
    return f"/wall/{path}?" + urlencode({**{k: v for k, v in params.items() if v}, "lang": lang})


# ------------------------------------------------------------------ the page shell


@dataclass(frozen=True, slots=True)
class Refresh:
    """Where a screen goes next, and when: itself every few seconds, or a kiosk's next
    stop (``stop`` is then this stop's index, and ``footer`` says which it is)."""

    every_s: int
    url: str
    stop: int | None = None
    footer: str = ""


def screen_page(
    lang: Lang,
    screen: str,
    title: str,
    body: str,
    *,
    data_time: datetime | None,
    stale: bool,
    refresh: Refresh,
) -> str:
    """The whole document of a screen: no script, an HTTP refresh to ``refresh.url``."""
    stop = f' data-stop="{refresh.stop}"' if refresh.stop is not None else ""
    footer = refresh.footer
    state = "stale" if stale else "live"
    if not stale:
        status_text = text(lang, "updated", time=fmt_time(data_time, lang))
    elif data_time is None:
        status_text = text(lang, "stale_never")  # not "since –"
    else:
        status_text = text(lang, "stale", time=fmt_since(data_time, lang))
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="refresh" content="{refresh.every_s};url={escape(refresh.url)}">'
        f"<title>{escape(title)} — {escape(text(lang, 'title'))}</title>"
        '<link rel="stylesheet" href="/wall/static/screens.css"></head>'
        f'<body class="screen" data-screen="{escape(screen)}" data-state="{state}"{stop}>'
        f'<header class="bar"><h1>{escape(title)}</h1>'
        f'<p class="app">{escape(text(lang, "title"))}</p>'
        f'<p class="status {state}" role="status">{escape(status_text)}</p></header>'
        f"<main>{body}</main>"
        + (f'<footer class="foot">{footer}</footer>' if footer else "")
        + "</body></html>"
    )


# ------------------------------------------------------------------ province overview


def board_html(lang: Lang, board: Board) -> str:
    """The body of the province overview: the scorecard and the tiles beside the worst
    units and the alerts, the province's KPIs in a strip across the bottom."""
    period = board.period.label(lang)
    left = _score(lang, board.score) + _tiles(lang, board.tiles, period)
    right = _worst(lang, board, period) + _alerts(lang, board)
    return (
        f'<div class="board"><div class="col">{left}</div><div class="col">{right}</div>'
        f"{_kpis(lang, board)}</div>"
    )


def _score(lang: Lang, s: Score) -> str:
    period = s.period.label(lang)
    head = f"<h2>{escape(text(lang, 'score_title', period=period))}</h2>"
    if s.measured_max == 0:
        total = f'<p class="empty">{escape(text(lang, "score_none"))}</p>'
    else:
        words = text(lang, "score_measured", measured=s.measured_max, total=TOTAL_POINTS)
        total = (
            f'<p class="total"><span class="points" '
            f'data-points="{format_hundredths(s.shown, "en")}">'
            f"{format_hundredths(s.shown, lang)}</span> {escape(words)}</p>"
        )
    costliest = s.costliest()
    if costliest is not None:
        ind = costliest.indicator
        cost = text(lang, "score_costliest", indicator=f"{ind.id} {ind.name(lang)}",
                    lost=format_hundredths(costliest.lost_shown, lang))  # fmt: skip
        cost_html = f'<p class="costliest"><span aria-hidden="true">▼</span> {escape(cost)}</p>'
    elif s.measured_max:
        cost_html = f'<p class="costliest ok">{escape(text(lang, "score_no_loss"))}</p>'
    else:
        cost_html = ""
    rows = "".join(_group_row(lang, g) for g in s.groups)
    table = (
        '<table class="groups"><thead><tr>'
        f'<th scope="col">{escape(text(lang, "score_group"))}</th>'
        f'<th scope="col">{escape(text(lang, "score_points"))}</th>'
        f'<th scope="col">{escape(text(lang, "score_not_measured"))}</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )
    return f'<section class="panel score">{head}{total}{cost_html}{table}</section>'


def _group_row(lang: Lang, g: GroupScore) -> str:
    indicators = g.indicators
    measured = [i for i in indicators if i.state is not State.NOT_MEASURED]
    not_measured = [i for i in indicators if i.state is State.NOT_MEASURED]
    # Each measured indicator on a line of its own across the table, under its group.
    lines = "".join(
        f'<tr class="ind-row"><td colspan="3">{_indicator_line(lang, i)}</td></tr>'
        for i in measured
    )
    split = ' class="has-ind"' if measured else ""
    if g.measured_max:
        got = format_hundredths(g.shown, lang)
        earned = escape(text(lang, "points_of", points=got, max=g.measured_max))
    else:
        earned = "–"
    missing = sum(i.indicator.max_points for i in not_measured)
    chips = " ".join(
        f'<span class="chip" title="{escape(i.indicator.name(lang))}">'
        f"{escape(i.indicator.id)} ({i.indicator.max_points})</span>"
        for i in not_measured
        if i.indicator.max_points
    )
    return (
        f'<tr data-group="{escape(g.group.id)}"{split}><th scope="row">{g.group.number}. '
        f'{escape(g.group.name(lang))} <span class="max">/{g.group.max_points}</span></th>'
        f'<td class="pts">{earned}</td>'
        f'<td class="nm"><span class="nm-total">{missing}</span> {chips}</td></tr>{lines}'
    )


def _indicator_line(lang: Lang, i: IndicatorScore) -> str:
    ind = i.indicator
    if i.state is State.NO_DATA or i.points is None:
        what = f'<span class="note">{escape(text(lang, "score_no_data"))}</span>'
    else:
        pts = escape(text(lang, "points_of", points=format_points(i.points, lang, ind.max_points),
                          max=ind.max_points))  # fmt: skip
        low = (
            f' <span class="note warn">◌ {escape(text(lang, "score_low_volume"))}</span>'
            if i.low_volume
            else ""
        )
        what = f"{rate_block(lang, i.numerator, i.denominator)} · <b>{pts}</b>{low}"
    # One line: the name gives way (cut with an ellipsis, whole in the title), never
    # the id, the rate, the counts or the points.
    return (
        f'<span class="ind" data-indicator="{escape(ind.id)}"><span class="in" '
        f'title="{escape(ind.name(lang))}">{escape(ind.id)} {escape(ind.name(lang))}</span>'
        f'<span class="iv">{what}</span></span>'
    )


def _tiles(lang: Lang, t: DossierTiles, period: str) -> str:
    def tile(key: str, value: int | None, note: str = "") -> str:
        shown = "–" if value is None else format_count(value, lang)
        extra = f'<span class="note">{escape(note)}</span>' if note else ""
        return (
            f'<div class="tile t-{key}" data-tile="{key}"><span class="v">{shown}</span>'
            f'<span class="k">{escape(text(lang, "tile_" + key))}</span>{extra}</div>'
        )

    return (
        f'<section class="panel tiles"><h2>{escape(text(lang, "tiles_title", period=period))}'
        '</h2><div class="tile-row">'
        + tile("received", t.received, text(lang, "tile_received_note"))
        + tile("resolved", t.resolved)
        + tile("early", t.early)
        + tile("on_time", t.on_time)
        + tile("late", t.late)
        + tile("open_overdue", t.open_overdue)
        + "</div></section>"
    )


def _kpis(lang: Lang, board: Board) -> str:
    bases = Bases(lang)
    cells = "".join(
        f'<li data-kpi="{escape(f.kpi)}"><span class="kh"><span class="kn" '
        f'title="{escape(_kpi(lang, f))}">{escape(_kpi(lang, f))}</span>'
        f'<span class="tg">{escape(text(lang, "target"))} '
        f"{format_target(f.target_bp or 0, lang)}{bases.mark(f.target_basis)}</span></span>"
        f"{rate_block(lang, f.numerator, f.denominator, f.status)}</li>"
        for f in board.kpis
    )
    more = board.kpis_total - len(board.kpis)
    if more > 0:
        cells += f'<li class="more">{escape(text(lang, "more_kpis", n=more))}</li>'
    title = text(lang, "kpis_month", period=board.period.label(lang))
    return (
        f'<section class="panel kpistrip"><h2>{escape(title)}</h2><ul>{cells}</ul>'
        f"{bases.notes()}</section>"
    )


def _worst(lang: Lang, board: Board, period: str) -> str:
    head = f"<h2>{escape(text(lang, 'worst_title', period=period))}</h2>"
    if not board.worst:
        return (
            f'<section class="panel worst">{head}'
            f'<p class="empty">{escape(text(lang, "worst_none"))}</p></section>'
        )
    bases = Bases(lang)
    rows = "".join(_worst_row(lang, i + 1, w, bases) for i, w in enumerate(board.worst))
    more = board.worst_total - len(board.worst)
    tail = f'<p class="more">{escape(text(lang, "more_units", n=more))}</p>' if more > 0 else ""
    return (
        f'<section class="panel worst">{head}<table class="worst-table"><thead><tr>'
        f'<th scope="col">#</th><th scope="col">{escape(text(lang, "unit"))}</th>'
        f'<th scope="col">{escape(text(lang, "rate"))}</th>'
        f'<th scope="col">{escape(text(lang, "target"))}</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>{bases.notes()}{tail}</section>"
    )


def _worst_row(lang: Lang, place: int, w: WorstUnit, bases: Bases) -> str:
    f = w.worst
    others = (
        f'<span class="note">{escape(text(lang, "worst_others", n=w.below_count - 1))}</span>'
        if w.below_count > 1
        else ""
    )
    href = screen_url("unit", lang, unit=f.unit, province=f.province)
    return (
        f'<tr data-unit="{escape(f.unit)}"><td class="place">{place}</td>'
        f'<th scope="row"><a href="{escape(href)}">{escape(_name(lang, w.unit))}</a>'
        f'<span class="kn">{escape(_kpi(lang, f))}</span></th>'
        f"<td>{rate_block(lang, f.numerator, f.denominator, f.status)}{others}</td>"
        f'<td class="target">{format_target(f.target_bp or 0, lang)}'
        f"{bases.mark(f.target_basis)}</td></tr>"
    )


def _alerts(lang: Lang, board: Board) -> str:
    if not board.alerts_configured:
        return ""  # no alerts source: no panel, never "no open alerts"
    head = f"<h2>{escape(text(lang, 'alerts'))}</h2>"
    if board.alerts is None:
        body = f'<p class="empty warn">{escape(text(lang, "alerts_unavailable"))}</p>'
    elif not board.alerts:
        body = f'<p class="empty">{escape(text(lang, "no_alerts"))}</p>'
    else:
        items = "".join(_alert(lang, a) for a in board.alerts)
        more = board.alerts_total - len(board.alerts)
        tail = (
            f'<p class="more">{escape(text(lang, "more_alerts", n=more))}</p>' if more > 0 else ""
        )
        body = f'<ul class="alert-list">{items}</ul>{tail}'
    return f'<section class="panel alerts">{head}{body}</section>'


def _alert(lang: Lang, a: Alert) -> str:
    icon = {"critical": "⬣", "warning": "▲"}.get(a.severity, "●")
    severity = {"critical": "severity_critical", "warning": "severity_warning"}.get(
        a.severity, "severity_info"
    )
    ack = f'<span class="ack no">✖ {escape(text(lang, "not_acked"))}</span>'
    if a.acknowledged_by is not None or a.acknowledged_at is not None:
        at = "–" if a.acknowledged_at is None else format_datetime(a.acknowledged_at, lang)
        said = (
            text(lang, "acked_by", who=a.acknowledged_by, at=at)
            if a.acknowledged_by
            else text(lang, "acked_at", at=at)
        )
        ack = f'<span class="ack yes">✔ {escape(said)}</span>'
    summary = a.summary_en if lang == "en" else a.summary_vi
    return (
        f'<li class="alert sev-{escape(a.severity)}" data-alert="{escape(a.id)}">'
        f'<span class="sev"><span aria-hidden="true">{icon}</span> '
        f"{escape(text(lang, severity))}</span> · {escape(alert_state(lang, a))} {ack}"
        f'<span class="alert-summary">{escape(summary or a.alertname)}</span></li>'
    )


# ------------------------------------------------------------------ rankings


def rankings_html(
    lang: Lang,
    ranking: Ranking,
    keys: Sequence[tuple[str, str]],
    page: int,
    silent: Collection[str] = frozenset(),
) -> str:
    """The body of the rankings screen: a page of ranked units in two columns, the rule
    stated, the units listed apart with their volume, and the other keys as links. A unit
    in ``silent`` (not sending) is marked where it stands: its rate of the month alone
    read like a unit doing well (a commune silent for days, ranked first at 100 %)."""
    per_page = 2 * ROWS_PER_COLUMN
    pages = max(1, -(-len(ranking.ranked) // per_page))
    page = min(max(page, 1), pages)
    shown = ranking.ranked[(page - 1) * per_page : page * per_page]
    columns = [shown[:ROWS_PER_COLUMN], shown[ROWS_PER_COLUMN:]]
    rule = text(lang, "rankings_rule", min=format_count(ranking.min_volume, lang))
    tables = "".join(_rank_table(lang, ranking, col, silent) for col in columns if col)
    if not ranking.ranked:
        tables = f'<p class="empty">{escape(text(lang, "rankings_empty"))}</p>'
    nav = "".join(_key_link(lang, ranking, k, name) for k, name in keys)
    pager = (
        f'<p class="pager">{escape(text(lang, "page_of", page=page, pages=pages))}</p>'
        if pages > 1
        else ""
    )
    return (
        f'<p class="rule" data-rule="low-volume"><span aria-hidden="true">◌</span> '
        f"{escape(rule)}</p>"
        f'<nav class="keys"><ul>{nav}</ul></nav>'
        f'<div class="rankings"><div class="ranked">{tables}{pager}</div>'
        f"{_apart(lang, ranking, silent)}</div>"
    )


def _key_link(lang: Lang, ranking: Ranking, key: str, name: str) -> str:
    href = screen_url("rankings", lang, province=ranking.province, key=key, level=ranking.level)
    current = ' aria-current="page"' if key == ranking.key else ""
    return f'<li><a href="{escape(href)}"{current}>{escape(name)}</a></li>'


def _rank_table(
    lang: Lang, ranking: Ranking, entries: Sequence[Entry], silent: Collection[str]
) -> str:
    by_score = ranking.key == SCORE
    head = text(lang, "score_points") if by_score else text(lang, "rate")
    rows = "".join(_rank_row(lang, e, by_score, e.unit.code in silent) for e in entries)
    return (
        '<table class="rank-table"><thead><tr>'
        f'<th scope="col">{escape(text(lang, "rank"))}</th>'
        f'<th scope="col">{escape(text(lang, "unit"))}</th>'
        f'<th scope="col">{escape(head)}</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


def _score_block(lang: Lang, e: Entry) -> str:
    """A unit's 766 points with the volume they rest on: its measured indicators' items,
    a count and never a rate (items of different KPIs added make no percentage)."""
    volume = text(lang, "items_n", n=format_count(e.denominator, lang))
    counts = f'<span class="counts" data-denominator="{e.denominator}">{escape(volume)}</span>'
    if e.score is None:
        return counts
    pts = text(lang, "points_of",
               points=format_hundredths(e.score.shown, lang),
               max=e.score.measured_max)  # fmt: skip
    return f'<span class="pts">{escape(pts)}</span> {counts}'


def _silent_mark(lang: Lang, silent: bool) -> str:
    """The overview's "not sending" mark, beside a unit's name."""
    if not silent:
        return ""
    return f' <span class="silent" data-silent="1">{escape(text(lang, "silent"))}</span>'


def _rank_row(lang: Lang, e: Entry, by_score: bool, silent: bool = False) -> str:
    if by_score:
        value = _score_block(lang, e)
    else:
        status = e.figure.status if e.figure is not None else None
        value = rate_block(lang, e.numerator, e.denominator, status)
    href = screen_url("unit", lang, unit=e.unit.code, province=e.unit.province)
    return (
        f'<tr data-unit="{escape(e.unit.code)}" data-rank="{e.rank}">'
        f'<td class="place">{e.rank}</td>'
        f'<th scope="row"><a href="{escape(href)}">{escape(_name(lang, e.unit))}</a>'
        f"{_silent_mark(lang, silent)}</th>"
        f"<td>{value}</td></tr>"
    )


def _apart(lang: Lang, ranking: Ranking, silent: Collection[str] = frozenset()) -> str:
    by_score = ranking.key == SCORE
    items = "".join(
        f'<li data-unit="{escape(e.unit.code)}">{escape(_name(lang, e.unit))}'
        f"{_silent_mark(lang, e.unit.code in silent)} "
        f"{_score_block(lang, e) if by_score else rate_block(lang, e.numerator, e.denominator)}"
        "</li>"
        for e in ranking.apart[:APART_LIMIT]
    )
    more = len(ranking.apart) - APART_LIMIT
    tail = f'<li class="more">{escape(text(lang, "more", n=more))}</li>' if more > 0 else ""
    none = (
        f'<p class="empty">{escape(text(lang, "rankings_no_data", n=len(ranking.no_data)))}</p>'
        if ranking.no_data
        else ""
    )
    return (
        f'<aside class="panel apart"><h2><span aria-hidden="true">◌</span> '
        f"{escape(text(lang, 'rankings_apart'))} ({len(ranking.apart)})</h2>"
        f'<ul class="apart-list">{items}{tail}</ul>{none}</aside>'
    )


# ------------------------------------------------------------------ unit page


def unit_html(
    lang: Lang,
    unit: UnitInfo,
    today: Sequence[Figure],
    trends: Sequence[UnitTrends | None],
) -> str:
    """The body of a unit page: per KPI, today, the periods compared and the trends."""
    by_kpi = {f.kpi: f for f in today}
    heads = ["today", "this_month", "previous_month", "same_month_last_year", "ytd",
             "last_year_to_date"]  # fmt: skip
    cols = "".join(f'<th scope="col">{escape(text(lang, h))}</th>' for h in heads)
    rows = []
    bases = Bases(lang)
    for f, t in zip(today, trends, strict=True):
        rows.append(_unit_row(lang, by_kpi[f.kpi], t, bases))
    restated = [t for t in trends if t is not None and t.restated]
    left_out = [u for t in restated for u in t.left_out]
    note = f'<p class="restated">{escape(restated_note(lang, left_out))}</p>' if restated else ""
    return (
        '<table class="unit-table"><thead><tr>'
        f'<th scope="col">{escape(text(lang, "kpi"))}</th>{cols}'
        f'<th scope="col">{escape(text(lang, "last_days", n=14))}</th>'
        f'<th scope="col">{escape(text(lang, "last_months", n=13))}</th>'
        f'<th scope="col">{escape(text(lang, "years"))}</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{bases.notes()}{legend(lang)}"
        f"{note}"
    )


def _unit_row(lang: Lang, f: Figure, t: UnitTrends | None, bases: Bases) -> str:
    today = f"<td>{rate_block(lang, f.numerator, f.denominator, f.status)}</td>"
    target = f.target_bp
    if t is None:
        span = (
            f'<td colspan="8" class="empty warn">{escape(text(lang, "history_unavailable"))}</td>'
        )
        head = f'<th scope="row">{escape(_kpi(lang, f))}</th>'
        return f'<tr data-kpi="{escape(f.kpi)}">{head}{today}{span}</tr>'
    # Each day and period against the target in force then, not today's (review 67).
    compared = "".join(
        _total_cell(lang, c, in_force(c.target_bp, target), f.min_volume) for c in t.compared
    )
    days = [(p.numerator, p.denominator, in_force(p.target_bp, target)) for p in t.days]
    months = [(m.numerator, m.denominator, in_force(m.target_bp, target)) for m in t.months]
    years = "".join(
        f'<span class="yr">{escape(y.key)}: {rate_block(lang, y.numerator, y.denominator)}</span>'
        for y in t.years
    )
    return (
        f'<tr data-kpi="{escape(f.kpi)}"><th scope="row">{escape(_kpi(lang, f))}'
        f'<span class="tg">{escape(text(lang, "target"))} {format_target(target or 0, lang)}'
        f"{bases.mark(f.target_basis)}</span></th>{today}{compared}"
        f"<td>{spark(days, f.min_volume)}</td><td>{spark(months, f.min_volume)}</td>"
        f'<td class="years">{years}</td></tr>'
    )


def _total_cell(lang: Lang, total: Total, target_bp: int | None, min_volume: int) -> str:
    """A period's rate and counts, marked with the status's shape (the legend says it);
    its tooltip names the target it was judged against, which may not be today's."""
    status = judge(total.numerator, total.denominator, target_bp, min_volume) or Standing.NO_DATA
    icon = f'<span class="icon" aria-hidden="true">{STATUS_ICONS[status]}</span>'
    block = rate_block(lang, total.numerator, total.denominator)
    title = status_label(lang, status)
    judged = ""
    if target_bp is not None:
        title += f" ({text(lang, 'target')} {format_target(target_bp, lang)})"
        judged = f' data-target-bp="{target_bp}"'
    return (
        f'<td data-period="{escape(total.key)}" class="st-{status.value}"{judged} '
        f'title="{escape(title)}">{icon}{block}</td>'
    )


def legend(lang: Lang) -> str:
    """The shapes of the statuses in words: colour is never the only signal."""
    items = " ".join(
        f'<span class="st-{s.value}"><span aria-hidden="true">{STATUS_ICONS[s]}</span> '
        f"{escape(status_label(lang, s))}</span>"
        for s in (Standing.BELOW, Standing.MEETS, Standing.LOW_VOLUME, Standing.NO_DATA)
    )
    return f'<p class="legend">{items}</p>'


def spark(series: Sequence[tuple[int, int, int | None]], min_volume: int = 0) -> str:
    """A small line of rates (gaps where nothing was counted), each point (numerator,
    denominator, target in force then) judged as the period cells beside it are
    (:func:`services.wall.trend.judge`, the KPI's ``min_volume``): a "below" dot under
    its own target, a hollow "low_volume" ring (◌ in the legend) when too few to judge;
    the target dashed, stepping where it changed (1 January, a province's plan)."""
    w, h, pad = 200, 60, 4
    count = len(series)
    ratios = [n / d for n, d, _ in series if d > 0]
    ratios += [t / BP_SCALE for _, _, t in series if t is not None]
    # From a little under the lowest value (or the target) to 100 %: a flat line at the
    # top of a 0..100 % box says nothing on a wall.
    low = max(0.0, min(ratios, default=0.0) - 0.05)

    def y_of(ratio: float) -> float:
        return pad + (h - 2 * pad) * (1 - (ratio - low) / (1 - low)) if low < 1 else pad

    def x_of(i: float) -> float:
        return pad + (w - 2 * pad) * (i / (count - 1) if count > 1 else 0.5)

    def xy(i: int, ratio: float) -> str:
        return f"{x_of(i):.1f},{y_of(ratio):.1f}"

    runs: list[list[str]] = [[]]
    dots = []
    for i, (n, d, target_bp) in enumerate(series):
        if d <= 0:
            runs.append([])
            continue
        runs[-1].append(xy(i, n / d))
        mark = _SPARK_MARKS.get(judge(n, d, target_bp, min_volume))
        if mark is not None:
            cx, cy = xy(i, n / d).split(",")
            dots.append(f'<circle class="{mark}" cx="{cx}" cy="{cy}" r="3"/>')
    lines = "".join(f'<polyline points="{" ".join(r)}"/>' for r in runs if len(r) > 1)
    singles = "".join(
        f'<circle cx="{r[0].split(",")[0]}" cy="{r[0].split(",")[1]}" r="2"/>'
        for r in runs
        if len(r) == 1
    )
    return (
        f'<svg class="spark" viewBox="0 0 {w} {h}" aria-hidden="true">'
        f"{_target_line(series, w, x_of, y_of)}{lines}{singles}{''.join(dots)}</svg>"
    )


_SPARK_MARKS: Final[dict[Standing | None, str]] = {
    Standing.BELOW: "below",
    Standing.LOW_VOLUME: "low_volume",
}
"""The class of a spark point's dot by its standing; a point that meets has none."""


def _target_line(
    series: Sequence[tuple[int, int, int | None]],
    w: int,
    x_of: Callable[[float], float],
    y_of: Callable[[float], float],
) -> str:
    """The dashed target: one line across when it held all along, else steps halfway
    between the points where it changed."""
    known = [(i, t) for i, (_, _, t) in enumerate(series) if t is not None]
    if not known:
        return ""
    if len({t for _, t in known}) == 1:
        y = y_of(known[0][1] / BP_SCALE)
        return f'<line class="tgt" x1="0" x2="{w}" y1="{y:.1f}" y2="{y:.1f}"/>'
    steps = [(0.0, known[0][1])]
    for (i0, t0), (i1, t1) in pairwise(known):
        if t1 != t0:
            mid = x_of((i0 + i1) / 2)
            steps += [(mid, t0), (mid, t1)]
    steps.append((float(w), known[-1][1]))
    points = " ".join(f"{x:.1f},{y_of(t / BP_SCALE):.1f}" for x, t in steps)
    return f'<polyline class="tgt" points="{points}"/>'


# ------------------------------------------------------------------ kiosk


def kiosk_footer(lang: Lang, index: int, total: int, every_s: int) -> str:
    return (
        f'<p class="kiosk" data-stop="{index}">'
        f"{escape(text(lang, 'kiosk_stop', n=index + 1, total=total, every=every_s))}</p>"
    )
