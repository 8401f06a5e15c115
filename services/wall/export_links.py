"""The download links a page shows for its unit: /wall/export per period and format."""

from __future__ import annotations

from html import escape
from typing import Final
from urllib.parse import urlencode

from services.wall.i18n import text
from services.wall.settings import Lang

PERIODS: Final = (("day", "today"), ("month", "month"), ("year", "download_year"))
"""Each window a file can hold, with the label of its period."""


def export_url(lang: Lang, unit: str, window: str, fmt: str, table: str = "kpis") -> str:
    params = {"unit": unit, "window": window, "format": fmt, "lang": lang}
    if table != "kpis":
        params["table"] = table
    return "/wall/export?" + urlencode(params)


def download_links(lang: Lang, unit: str, name: str) -> str:
    """CSV and Excel of today, this month and the year to date (with the 766 scorecard,
    which a day does not have) for ``unit``, named ``name`` for screen readers."""
    groups = []
    for window, label in PERIODS:
        links = [
            _link(export_url(lang, unit, window, "csv"), "CSV"),
            _link(export_url(lang, unit, window, "xlsx"), "Excel"),
        ]
        if window != "day":
            url = export_url(lang, unit, window, "csv", "scorecard")
            links.append(_link(url, text(lang, "download_scorecard")))
        groups.append(
            f'<li><span class="period">{escape(text(lang, label))}:</span> {" ".join(links)}</li>'
        )
    return (
        f'<nav class="downloads" aria-label="{escape(text(lang, "download_of", unit=name))}">'
        f'<span class="label">{escape(text(lang, "downloads"))}</span>'
        f"<ul>{''.join(groups)}</ul></nav>"
    )


def _link(url: str, label: str) -> str:
    return f'<a href="{escape(url)}" download>{escape(label)}</a>'
