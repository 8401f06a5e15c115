"""Grafana shows every rate as the wall does, the ends included, through a real Prometheus.

Until 2026-12-05 the rate panels formatted the exported float ratio: 19,999 of 20,000
documents signed read "100.00%" in Grafana and "99,99 %" on the wall and in the alerts,
1 of 30,000 read "0.00%", and a rate that rounds up onto its target (22,499 of 25,000,
89.996%) was "90.00%" in red on the wall's reading but coloured as meeting it nowhere
consistently. The panels now ask Prometheus for the wall's basis points
(``promql.shown_rate``), and a panel coloured by a target for a hair under it when the
counts miss it (``promql.shown_against``).

A small exposition server stands in for a metrics worker (the figures are typed in, each
an edge case); the repo's recording rules run in a real Prometheus; every rate query of
every committed dashboard is evaluated and formatted as Grafana formats it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.common.kpis import KpiCatalogue
from services.common.rates import format_rate, meets, to_bp
from services.common.units import UnitRegistry
from services.dashboards import promql
from services.dashboards.render import build_all
from tests.integration.dashboards.prometheus import (
    Prometheus,
    figure_lines,
    panel_queries,
    scraping,
    substitute,
)
from tests.unit.dashboards.test_rate_display import (
    PER_UNIT_RATE_COLUMNS,
    column_names,
    field_mappings,
    grafana_cell,
    grafana_percentunit,
)

pytestmark = pytest.mark.integration

PROVINCE, UNIT = "19", "01843"  # the dashboards tests' $province and $unit
WINDOWS = ("day", "month", "1h")

# (numerator, denominator) of each edge case; the communes of Thái Nguyên get one each.
CASES = [
    (19_999, 20_000),  # 99.995%: the float rounds to 100.00%; an item is missing
    (1, 30_000),  # 0.0033%: the float rounds to 0.00%; an item counts
    (11_703, 11_710),  # Nông Cống's 99.94%
    (20_000, 20_000),  # 100% earned
    (0, 20_000),  # 0% earned
    (22_499, 25_000),  # 89.996%: shows 90.00%, misses a 90% target
    (29, 100),  # 0.29 is 0.28999... in binary
    (1, 8),  # an exact half in basis points: 1250 exactly
    (9, 4_000),  # 0.225%: half a basis point, a hair under in binary (Grafana read 0.22%)
    (119, 4_000),  # 2.975%: the same (2.97%)
]
PROVINCE_COUNTS = (22_499, 25_000)


def units() -> dict[str, tuple[str, str]]:
    """code -> (full name, level) of the province and a commune per case, UNIT first."""
    registry = UnitRegistry.from_dir()
    current = registry.units("2025")
    communes = [u for u in current if u.parent == PROVINCE and u.level == "commune"]
    communes.sort(key=lambda u: u.code != UNIT)
    chosen = {u.code: (u.full_name, u.level) for u in communes[: len(CASES)]}
    province = next(u for u in current if u.code == PROVINCE)
    return {PROVINCE: (province.full_name, province.level), **chosen}


def counts_of() -> dict[str, tuple[int, int]]:
    communes = [code for code in units() if code != PROVINCE]
    return {PROVINCE: PROVINCE_COUNTS, **dict(zip(communes, CASES, strict=True))}


def exposition() -> bytes:
    catalogue = KpiCatalogue.load()
    lines = []
    for code, (num, den) in counts_of().items():
        name, level = units()[code]
        parent = "" if code == PROVINCE else PROVINCE
        lines.append(f'egov_unit_info{{unit="{code}",name="{name}",level="{level}",'
                     f'parent="{parent}"}} 1')  # fmt: skip
        for kpi in catalogue.kpis:
            label = f'kpi="{kpi.id}",unit="{code}"'
            lines.append(f"egov_kpi_target_ratio{{{label}}} {kpi.target_for(level)!r}")
            lines += figure_lines(kpi.id, code, WINDOWS, num, den)
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    # Every recording rule the panels read has evaluated once.
    rules = ("province:egov_kpi_numerator:day", "unit:egov_kpi_target:ratio",
             "unit:egov_unit_province:info", "kpi:egov_kpi_min_volume:count")  # fmt: skip
    with scraping(tmp_path_factory.mktemp("prometheus"), exposition(), rules) as running:
        assert running.wait_for(substitute(promql.shortfall()))
        yield running


def rate_queries() -> list[tuple[str, str, str]]:
    """(dashboard / panel, ref, expr) of every query that feeds a rate (not a count, not
    a target) in a committed dashboard: the rankings' counts beside their lowest rates
    name a rate only to pick their rows (``promql.beside_lowest``)."""
    return [
        (f"{q.dashboard} / {q.panel}", q.ref, q.expr)
        for q in panel_queries()
        if "floor((20000" in q.expr.split(" and on (kpi, unit) sort(")[0]
    ]


def test_every_rate_query_shows_what_the_wall_shows(prometheus: Prometheus) -> None:
    queries = rate_queries()
    # Two KPI figures of each stat on the overview, its hourly series, the unit's table
    # (two) and series (two). The per-unit tables (rankings, below target) show the float
    # ratio: their cost at 10,000 units (docs/dashboards.md).
    assert len(queries) >= 2 * 11 + 1 + 2 + 2
    counts = counts_of()
    checked = 0
    for where, ref, expr in queries:
        result = prometheus.wait_for(substitute(expr), 20)  # its recording rules evaluated
        assert result, f"{where} ({ref}) returned nothing"
        for series in result:
            labels = series["metric"]
            unit = labels.get("unit") or (PROVINCE if "$province" in expr else UNIT)
            num, den = counts[unit]
            shown = grafana_percentunit(float(series["value"][1]), 2)
            assert shown == format_rate(num, den, "en"), (where, ref, unit, labels)
            checked += 1
    assert checked >= 70


@pytest.mark.parametrize("counts", CASES, ids=lambda c: f"{c[0]}-of-{c[1]}")
def test_the_ends_are_kept(prometheus: Prometheus, counts: tuple[int, int]) -> None:
    num, den = counts
    expr = promql.shown_rate(f"vector({num})", f"vector({den})")
    (series,) = prometheus.query(expr)
    assert grafana_percentunit(float(series["value"][1]), 2) == format_rate(num, den, "en")


def test_a_stat_coloured_by_its_target_is_red_when_the_counts_miss_it(
    prometheus: Prometheus,
) -> None:
    # Thái Nguyên: 22,499 of 25,000 documents electronic, 89.996%, against a 90% target.
    catalogue = {k.id: k for k in KpiCatalogue.load().kpis}
    target = catalogue["document_electronic"].target_for("province")
    expr = promql.province_rate("day", "document_electronic")  # its target in force: 90%
    (series,) = prometheus.query(substitute(expr))
    value = float(series["value"][1])
    assert grafana_percentunit(value, 2) == "90.00%"
    assert not meets(*PROVINCE_COUNTS, to_bp(target))
    assert value < target  # a hair under the target: it misses it
    # A rate meeting its target exactly stays on it (green): 9 of 10 against 90%.
    met = promql.shown_against("vector(9)", "vector(10)", to_bp(target))
    (series,) = prometheus.query(met)
    assert float(series["value"][1]) >= target
    # The overview's stat names it a miss, which it colours red (review 79).
    (stat,) = [
        p
        for p in build_all()["province-overview.json"]["panels"]
        if p["type"] == "stat" and 'kpi="document_electronic"' in p["targets"][0]["expr"]
    ]
    (today,) = [t for t in stat["targets"] if t["refId"] == "A"]
    (series,) = prometheus.query(substitute(today["expr"]))
    assert series["metric"]["shown"] == "Hôm nay · Chưa đạt mục tiêu"
    assert float(series["value"][1]) == value


def per_unit_rate_queries() -> list[tuple[str, str, list[dict[str, object]]]]:
    """(where, expr, value mappings) of the query behind each per-unit table's rate column."""
    found = []
    for name, model in build_all().items():
        column = PER_UNIT_RATE_COLUMNS.get(name)
        for panel in model["panels"]:
            if panel["type"] != "table" or column not in column_names(panel):
                continue
            (organize,) = [t for t in panel["transformations"] if t["id"] == "organize"]
            renamed = organize["options"]["renameByName"]
            (ref,) = [r for r, shown in renamed.items() if shown == column]
            (target,) = [t for t in panel["targets"] if f"Value #{t['refId']}" == ref]
            found.append((f"{name} / {panel['title']}", target["expr"],
                          field_mappings(panel, column)))  # fmt: skip
    return found


def test_the_per_unit_tables_show_every_rate_as_the_wall(prometheus: Prometheus) -> None:
    # They keep the float ratio (cost), nudged for the halves (promql.HALF_UP_NUDGE);
    # value mappings write the ends (panels.rate_ends).
    queries = per_unit_rate_queries()
    assert len(queries) == 4
    counts = counts_of()
    corrected = set()
    for where, expr, mappings in queries:
        result = prometheus.wait_for(substitute(expr), 20)
        assert result, f"{where} returned nothing"
        for series in result:
            num, den = counts[series["metric"]["unit"]]
            shown = grafana_cell(float(series["value"][1]), 2, mappings)
            assert shown == format_rate(num, den, "en"), (where, series["metric"])
            if format_rate(num, den, "en") != grafana_percentunit(num / den, 2):
                corrected.add((num, den))
    # The rows the bare float showed wrong were among them: the ends and the halves.
    assert corrected == {(19_999, 20_000), (1, 30_000), (9, 4_000), (119, 4_000)}
