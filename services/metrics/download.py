"""/v1/kpis?format=csv|xlsx: the items of a query as a file (docs/exports.md).

The rows are the items the JSON answer of the same query holds (the published
snapshot's selection, read back as figures: an item without a target, a retired KPI,
has nothing to be judged against and is left out, as the wall leaves it out). The file
is written off the event loop, in a thread, and a query is bounded
(:data:`services.common.export_requests.MAX_ROWS`), so a download never holds counting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from services.common.export_requests import (
    ExportAsk,
    ExportQueryError,
    kpi_file,
    unit_label,
)
from services.common.exports import Rendered
from services.common.figures import Figure, parse_figures
from services.common.rates import Lang
from services.common.units import UnitRegistry
from services.metrics.api import KpiQuery
from services.metrics.periods import Periods
from services.metrics.targets import describe_unit

_LEVELS = {
    "vi": {"province": "tỉnh", "district": "huyện", "commune": "xã", "department": "sở, ngành"},
    "en": {
        "province": "province",
        "district": "district",
        "commune": "commune",
        "department": "department",
    },
}


def subject(
    query: KpiQuery, figures: Sequence[Figure], lang: Lang, units: UnitRegistry, now: datetime
) -> str:
    """What the file is about, as its title row says it: "Huyện Nông Cống (404)", "Các
    đơn vị cấp tỉnh", "Tỉnh Thái Nguyên (19)", "Tất cả đơn vị" (vi); in English too.

    The codes asked for are named from the unit registry, as the items name their units
    (``full_name``), not from the figures: a province's communes
    (``province=19&level=commune``) hold no figure of the province itself."""
    periods = Periods.at(now)
    codes = [*sorted(query.units), *sorted(query.provinces)]
    parts = [_label(code, units, periods, figures, lang) for code in codes]
    for level in sorted(query.levels):
        name = _LEVELS[lang].get(level, level)
        parts.append(f"Các đơn vị cấp {name}" if lang == "vi" else f"{name.title()}-level units")
    if parts:
        return ", ".join(parts)
    return "Tất cả đơn vị" if lang == "vi" else "All units"


def _label(
    code: str, registry: UnitRegistry, periods: Periods, figures: Sequence[Figure], lang: Lang
) -> str:
    """A code as the items name it ("Tỉnh Thái Nguyên (19)"); a code the registry does not
    know (the query is not checked against it) as the figures name it, else bare."""
    unit = describe_unit(registry, code, periods)
    name = None if unit is None else (unit.full_name_en if lang == "en" else unit.full_name)
    if unit is not None and not name:
        name = unit.full_name
    return f"{name} ({code})" if name else unit_label(code, figures, lang)


def stem(query: KpiQuery, lang: Lang) -> str:
    """The file name before its period: "bang-chi-so-404", "kpis-19"."""
    codes = sorted(query.units | query.provinces)
    head = "bang-chi-so" if lang == "vi" else "kpis"
    return "-".join([head, *codes[:3]])


def kpis_file(
    ask: ExportAsk,
    query: KpiQuery,
    items: Sequence[bytes],
    now: datetime,
    units: UnitRegistry,
) -> Rendered:
    """The file of ``items`` (a snapshot's selection, each an item's JSON), its subject
    named from ``units`` (the worker's registry). Pure."""
    figures = parse_figures(b'{"items":[' + b",".join(items) + b"]}")
    about = subject(query, figures, ask.lang, units, now)
    return kpi_file(ask, figures, about, stem(query, ask.lang), now)


async def render_off_loop(
    ask: ExportAsk,
    query: KpiQuery,
    items: Sequence[bytes],
    now: datetime,
    units: UnitRegistry,
) -> Rendered:
    """:func:`kpis_file` in a thread: the counting loop runs meanwhile."""
    return await asyncio.to_thread(kpis_file, ask, query, items, now, units)


def one_window(query: KpiQuery) -> None:
    if len(query.windows) != 1:
        raise ExportQueryError("window", "a file holds one window: give one")
