"""HTML of the wall: the page shell, the live overview fragment, the trend chart.

Rendered on the server so that one module holds every word and number format, the
first paint needs no script, and the stream pushes ready fragments. Every value from
a source goes through :func:`html.escape`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from services.common.figures import Figure, TargetBasis
from services.common.rates import (
    NO_RATE,
    format_datetime,
    format_duration,
    format_fraction,
    format_rate,
    format_target,
)
from services.common.unit_info import UnitInfo
from services.common.units import VN_TZ
from services.wall.bases import Bases
from services.wall.export_links import download_links
from services.wall.history import FormerUnit
from services.wall.i18n import (
    alert_state,
    client_strings,
    fmt_since,
    fmt_time,
    status_badge,
    text,
)
from services.wall.model import Alert
from services.wall.overview import Overview, UnitRow
from services.wall.settings import Lang
from services.wall.trend import TrendPoint, trend_svg


def page_url(
    lang: Lang,
    province: str | None,
    unit: str | None = None,
    kpi: str | None = None,
    base: str = "/wall",
) -> str:
    params = {"province": province, "unit": unit, "kpi": kpi, "lang": lang}
    return base + "?" + urlencode({k: v for k, v in params.items() if v})


def unit_name(lang: Lang, unit: UnitInfo) -> str:
    return unit.name_en if lang == "en" else unit.name


def kpi_name(lang: Lang, overview: Overview, kpi: str) -> str:
    vi, en = overview.kpi_names.get(kpi, (kpi, kpi))
    return en if lang == "en" else vi


def rate_cell(lang: Lang, figure: Figure | None, trend_href: str | None = None) -> str:
    if figure is None:
        return '<td class="rate-cell">–</td>'
    rate = f'<span class="rate">{format_rate(figure.numerator, figure.denominator, lang)}</span>'
    if trend_href:
        rate = f'<a class="rate-link" href="{escape(trend_href)}#trend">{rate}</a>'
    counts = (
        f'<span class="counts">{format_fraction(figure.numerator, figure.denominator, lang)}</span>'
    )
    return (
        f'<td class="rate-cell st-{figure.status.value}" data-unit="{escape(figure.unit)}" '
        f'data-kpi="{escape(figure.kpi)}" data-window="{escape(figure.window)}" '
        f'data-numerator="{figure.numerator}" data-denominator="{figure.denominator}">'
        f"{rate} {status_badge(lang, figure.status)} {counts}</td>"
    )


def target_text(lang: Lang, target_bp: int | None) -> str:
    return NO_RATE if target_bp is None else format_target(target_bp, lang)


def _when(at: datetime | None, lang: Lang) -> str:
    return NO_RATE if at is None else format_datetime(at, lang)


def _crumbs(lang: Lang, ov: Overview, province: str | None) -> str:
    items = []
    for i, unit in enumerate(ov.path):
        name = escape(unit_name(lang, unit))
        if i == len(ov.path) - 1:
            items.append(f'<li aria-current="page">{name}</li>')
        else:
            href = escape(page_url(lang, province, unit.code))
            items.append(f'<li><a href="{href}">{name}</a></li>')
    return (
        f'<nav class="crumbs" aria-label="{escape(text(lang, "breadcrumb"))}">'
        f"<ol>{''.join(items)}</ol></nav>"
    )


def _kpi_table(lang: Lang, ov: Overview, province: str | None) -> str:
    assert ov.focus is not None  # noqa: S101 -- callers check; narrows the type
    rows = []
    bases = Bases(lang)
    for line in ov.kpis:
        href = page_url(lang, province, ov.focus.code, line.kpi)
        name = line.name_en if lang == "en" else line.name_vi
        shown = line.day or line.month
        target, basis = (shown.target_bp, shown.target_basis) if shown else (None, None)
        mark = bases.mark(basis) if target is not None else ""
        rows.append(
            f'<tr><th scope="row"><a href="{escape(href)}#trend">{escape(name)}</a></th>'
            f"{rate_cell(lang, line.day)}{rate_cell(lang, line.month)}"
            f'<td class="target">{target_text(lang, target)}{mark}</td>'
            "</tr>"
        )
    return (
        '<section class="panel kpis" aria-labelledby="h-kpis">'
        f'<h2 id="h-kpis">{escape(text(lang, "kpis"))}</h2>'
        '<table class="kpi-table"><thead><tr>'
        f'<th scope="col">{escape(text(lang, "kpi"))}</th>'
        f'<th scope="col">{escape(text(lang, "today"))}</th>'
        f'<th scope="col">{escape(text(lang, "month"))}</th>'
        f'<th scope="col">{escape(text(lang, "target"))}</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{bases.notes()}"
        f"{download_links(lang, ov.focus.code, unit_name(lang, ov.focus))}</section>"
    )


def _below(lang: Lang, ov: Overview, province: str | None) -> str:
    if not ov.below:
        body = f'<p class="empty">{escape(text(lang, "none_below"))}</p>'
    else:
        rows = []
        bases = Bases(lang)
        for f in ov.below:
            name = ov.unit_names.get(f.unit, (f.unit, f.unit))
            href = page_url(lang, province, f.unit, f.kpi)
            rows.append(
                f'<tr><th scope="row"><a href="{escape(href)}#trend">'
                f"{escape(name[1] if lang == 'en' else name[0])}</a></th>"
                f"<td>{escape(kpi_name(lang, ov, f.kpi))}</td>{rate_cell(lang, f)}"
                f'<td class="target">{target_text(lang, f.target_bp)}'
                f"{bases.mark(f.target_basis)}</td></tr>"
            )
        more = ov.below_total - len(ov.below)
        tail = f'<p class="more">{escape(text(lang, "more", n=more))}</p>' if more > 0 else ""
        body = (
            '<table class="below-table"><thead><tr>'
            f'<th scope="col">{escape(text(lang, "unit"))}</th>'
            f'<th scope="col">{escape(text(lang, "kpi"))}</th>'
            f'<th scope="col">{escape(text(lang, "today"))}</th>'
            f'<th scope="col">{escape(text(lang, "target"))}</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>{bases.notes()}{tail}"
        )
    return (
        '<section class="panel below" aria-labelledby="h-below">'
        f'<h2 id="h-below">{escape(text(lang, "below_list"))}</h2>{body}</section>'
    )


def _alert_item(lang: Lang, ov: Overview, alert: Alert) -> str:
    names = ov.unit_names.get(alert.unit, (alert.unit, alert.unit))
    icon = {"critical": "⬣", "warning": "▲"}.get(alert.severity, "●")
    severity = STRINGS_SEVERITY.get(alert.severity, "severity_info")
    # The alerts service names who acknowledged only to an operator in scope; the wall
    # reads without a token, so an acknowledged alert may come without the name.
    if alert.acknowledged_by or alert.acknowledged_at:
        at = _when(alert.acknowledged_at, lang)
        if alert.acknowledged_by:
            ack = text(lang, "acked_by", who=alert.acknowledged_by, at=at)
        else:
            ack = text(lang, "acked_at", at=at)
        ack_html = f'<span class="ack yes"><span aria-hidden="true">✔</span> {escape(ack)}</span>'
    else:
        ack_html = (
            '<span class="ack no"><span aria-hidden="true">✖</span> '
            f"{escape(text(lang, 'not_acked'))}</span>"
        )
    summary = alert.summary_en if lang == "en" else alert.summary_vi
    kpi = kpi_name(lang, ov, alert.kpi) if alert.kpi else alert.alertname
    if alert.alertname == "IngestRejectionsHigh":
        # Its "unit" is a publisher key's id, and it has no KPI: said in words (it shows
        # on its province's page since it carries the key's province; review 58).
        names = (text("vi", "publisher_key", code=alert.unit),
                 text("en", "publisher_key", code=alert.unit))  # fmt: skip
        kpi = text(lang, "refused_events")
    return (
        f'<li class="alert sev-{escape(alert.severity)}" data-alert="{escape(alert.id)}">'
        f'<span class="sev"><span aria-hidden="true">{icon}</span> '
        f"{escape(text(lang, severity))}</span> · {escape(alert_state(lang, alert))}"
        f'<div class="alert-what"><strong>{escape(names[1] if lang == "en" else names[0])}'
        f"</strong> — {escape(kpi)}</div>"
        + (f'<div class="alert-summary">{escape(summary)}</div>' if summary else "")
        + f"{ack_html}</li>"
    )


STRINGS_SEVERITY = {
    "critical": "severity_critical",
    "warning": "severity_warning",
    "info": "severity_info",
}


def _alerts(lang: Lang, ov: Overview) -> str:
    if not ov.alerts_configured:
        return ""  # no alerts source: no panel, never "no open alerts"
    if ov.alerts is None:
        body = f'<p class="empty warn">{escape(text(lang, "alerts_unavailable"))}</p>'
    elif not ov.alerts:
        body = f'<p class="empty">{escape(text(lang, "no_alerts"))}</p>'
    else:
        body = f'<ul class="alert-list">{"".join(_alert_item(lang, ov, a) for a in ov.alerts)}</ul>'
    return (
        '<section class="panel alerts" aria-labelledby="h-alerts">'
        f'<h2 id="h-alerts">{escape(text(lang, "alerts"))}</h2>{body}</section>'
    )


def silence_text(lang: Lang, row: UnitRow, now: datetime) -> str:
    """When the unit last sent, in Vietnam time, and for how long since when that was
    today: "không gửi dữ liệu từ 20/11/2026 16:50".

    Until 2026-12-05 it said only a wall-clock duration ("65 giờ 25 phút" on Monday for
    a commune that last sent on Friday at 16:50), while silence is judged in working time,
    and never the moment the operator calling the commune needs (review 55). Across a
    night or a weekend the duration is left out: the moment says it without misleading."""
    if row.last_event is None:
        return text(lang, "silent_never")
    at = format_datetime(row.last_event, lang)
    if row.last_event.astimezone(VN_TZ).date() != now.astimezone(VN_TZ).date():
        return text(lang, "silent_since", at=at)
    silent_s = (now - row.last_event).total_seconds()
    return text(lang, "silent_since_today", at=at, duration=format_duration(silent_s, lang))


def _silent(lang: Lang, ov: Overview, province: str | None, now: datetime) -> str:
    if not ov.silent:
        body = f'<p class="empty">{escape(text(lang, "none_silent"))}</p>'
    else:
        items = "".join(
            f'<li><span aria-hidden="true">◼</span> <a href="'
            f'{escape(page_url(lang, province, r.unit.code))}">'
            f"{escape(unit_name(lang, r.unit))}</a> — {escape(silence_text(lang, r, now))}</li>"
            for r in ov.silent
        )
        body = f'<ul class="silent-list">{items}</ul>'
    return (
        '<section class="panel silent" aria-labelledby="h-silent">'
        f'<h2 id="h-silent">{escape(text(lang, "silent_units"))}</h2>{body}</section>'
    )


def _units(lang: Lang, ov: Overview, province: str | None, now: datetime) -> str:
    if not ov.rows:
        return ""
    kpis = [line.kpi for line in ov.kpis] or sorted(ov.kpi_names)
    head = "".join(f'<th scope="col">{escape(kpi_name(lang, ov, k))}</th>' for k in kpis)
    rows = []
    for r in ov.rows:
        name = escape(unit_name(lang, r.unit))
        link = (
            f'<a href="{escape(page_url(lang, province, r.unit.code))}" '
            f'aria-label="{escape(text(lang, "drill", name=unit_name(lang, r.unit)))}">{name}</a>'
        )
        silent = (
            f' <span class="badge st-silent"><span aria-hidden="true">◼</span> '
            f"{escape(text(lang, 'silent'))}</span>"
            f'<span class="counts">{escape(silence_text(lang, r, now))}</span>'
            if r.silent
            else ""
        )
        cells = "".join(
            rate_cell(lang, r.figures.get(k), page_url(lang, province, r.unit.code, k))
            for k in kpis
        )
        rows.append(
            f'<tr data-unit="{escape(r.unit.code)}"><th scope="row">{link}{silent}</th>{cells}</tr>'
        )
    return (
        '<section class="panel units" aria-labelledby="h-units">'
        f'<h2 id="h-units">{escape(text(lang, "units"))}</h2>'
        '<div class="scroll"><table class="unit-table"><thead><tr>'
        f'<th scope="col">{escape(text(lang, "unit"))}</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def overview_html(lang: Lang, ov: Overview, now: datetime) -> str:
    """The live part of the page; the stream replaces it whole."""
    if ov.focus is None:
        return f'<p class="empty big">{escape(text(lang, "no_data_yet"))}</p>'
    province = ov.focus.province
    crumbs = _crumbs(lang, ov, province) if len(ov.path) > 1 else ""
    return (
        f"{crumbs}"
        f'<h1 class="focus">{escape(unit_name(lang, ov.focus))}</h1>'
        f'<div class="grid">{_kpi_table(lang, ov, province)}'
        f'<div class="side">{_alerts(lang, ov)}{_silent(lang, ov, province, now)}</div>'
        f"{_below(lang, ov, province)}</div>"
        f"{_units(lang, ov, province, now)}"
    )


def province_nav(lang: Lang, ov: Overview) -> str:
    current = ov.focus.province if ov.focus else None
    links = []
    for p in ov.provinces:
        attrs = ' aria-current="page"' if p.code == current else ""
        links.append(
            f'<li><a href="{escape(page_url(lang, p.code))}"{attrs}>'
            f"{escape(unit_name(lang, p))}</a></li>"
        )
    return (
        f'<nav class="provinces" aria-label="{escape(text(lang, "choose_province"))}">'
        f"<ul>{''.join(links)}</ul></nav>"
    )


def trend_section(
    lang: Lang,
    unit: str | None,
    kpi: str | None,
    ov: Overview,
    points: Sequence[TrendPoint] | None,
    target_bp: int | None,
    days: int,
    basis: TargetBasis | None = None,
    left_out: Sequence[FormerUnit] = (),
    min_volume: int | None = 0,
) -> str:
    """The trend panel; its days are judged against ``target_bp`` (each day's own when
    said) and the KPI's ``min_volume`` (see :func:`services.wall.trend.trend_svg`)."""
    heading = f'<h2 id="h-trend">{escape(text(lang, "trend", days=days))}</h2>'
    if unit is None or kpi is None:
        body = f'<p class="empty">{escape(text(lang, "trend_pick"))}</p>'
    elif points is None:
        body = f'<p class="empty warn">{escape(text(lang, "trend_unavailable"))}</p>'
    elif not points:
        body = f'<p class="empty">{escape(text(lang, "trend_none"))}</p>'
    else:
        names = ov.unit_names.get(unit, (unit, unit))
        title = f"{names[1] if lang == 'en' else names[0]} — {kpi_name(lang, ov, kpi)}"
        body = trend_svg(lang, title, points, target_bp, left_out, min_volume)
        if target_bp is not None:
            bases = Bases(lang)  # the dashed line's target, cited under the chart
            bases.mark(basis)
            body += bases.notes()
    return (
        f'<section id="trend" class="panel trend" aria-labelledby="h-trend">{heading}{body}'
        "</section>"
    )


def page_html(
    lang: Lang,
    ov: Overview,
    now: datetime,
    query: dict[str, str],
    trend: str,
    heartbeat_s: float,
) -> str:
    """The whole document: header, live overview, trend, and the script's configuration."""
    other: Lang = "en" if lang == "vi" else "vi"
    province = ov.focus.province if ov.focus else None
    unit = ov.focus.code if ov.focus else None
    stream = "/wall/stream?" + urlencode(
        {k: v for k, v in {"province": province, "unit": unit, "lang": lang}.items() if v}
    )
    config = {"stream": stream, "heartbeat_s": heartbeat_s, "strings": client_strings(lang)}
    switch = page_url(other, province, unit, query.get("kpi"))
    status = (
        f'<div id="status" class="status connecting" role="status" aria-live="polite">'
        f'<span class="dot" aria-hidden="true">●</span> '
        f'<span class="msg">{escape(text(lang, "connecting"))}</span> '
        f'<span class="updated">{escape(text(lang, "updated", time=fmt_time(ov.data_time, lang)))}'
        "</span></div>"
    )
    return (
        f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(text(lang, 'title'))}</title>"
        '<link rel="stylesheet" href="/wall/static/wall.css">'
        f'<script type="application/json" id="wall-config">{_json_for_html(config)}</script>'
        '<script type="module" src="/wall/static/wall.js"></script></head><body>'
        f'<header class="top"><p class="title">{escape(text(lang, "title"))}</p>'
        f"{province_nav(lang, ov)}{screens_nav(lang, province)}"
        f'<a class="lang" href="{escape(switch)}" hreflang="{other}" lang="{other}">'
        f"{escape(text(lang, 'switch_lang'))}</a>{status}</header>"
        f'<main><div id="overview">{overview_html(lang, ov, now)}</div>{trend}</main>'
        "</body></html>"
    )


def screens_nav(lang: Lang, province: str | None) -> str:
    """Links to the wall screens of the province (services/wall/screens.py)."""
    if province is None:
        return ""
    links = "".join(
        f'<li><a href="{escape(url)}">{escape(text(lang, key))}</a></li>'
        for key, url in (
            ("screen_province", page_url(lang, province, base="/wall/province")),
            ("screen_rankings", page_url(lang, province, base="/wall/rankings")),
            ("screen_kiosk", f"/wall/kiosk?provinces={province}&lang={lang}"),
        )
    )
    return (
        f'<nav class="screens" aria-label="{escape(text(lang, "screens"))}"><ul>{links}</ul></nav>'
    )


def _json_for_html(value: Any) -> str:
    # "</script>" inside a string would end the element early.
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


def sources_json(ov: Overview, lang: Lang) -> dict[str, Any]:
    """What the status line needs: is the data fresh, and which sources failed."""
    return {
        "stale": ov.stale,
        "data_time": ov.data_time.isoformat() if ov.data_time else None,
        "data_time_text": fmt_since(ov.data_time, lang),
        "failed": [
            {"kind": s.kind, "url": s.url, "error": s.error} for s in ov.sources if not s.ok
        ],
    }
