"""Rankings: the units of one level of a province ranked by a KPI, with the volume beside.

A rate on a handful of items says little (1 of 1 is 100%): units whose denominator is
below the KPI's ``min_volume`` (data/kpis.json, recorded as kpi:egov_kpi_min_volume:count)
are not ranked; they are listed apart with their rate and volume, the wall's rule
(services/wall/rankings.py). Units with no item in the period are in neither table.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import table
from grafana_foundation_sdk.builders.common import TableSortByFieldState
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

from services.common.kpis import KpiCatalogue
from services.dashboards import promql, variables
from services.dashboards.layout import add_panels, add_row, dashboard
from services.dashboards.overview import KPI, kpi_mapping
from services.dashboards.panels import (
    RATE_DECIMALS,
    count_override,
    query,
    rate_ends,
    table_panel,
    transformation,
)
from services.dashboards.scorecard import POINTS_DECIMALS

UID = "egov-rankings"
FILE = "rankings.json"

RATE = "Tỷ lệ"
VOLUME = "Số lượng"
LOWEST = 5

LOW_VOLUME_RULE = (
    "Low-volume rule, as on the wall: a unit whose denominator in the period is below the "
    "KPI's min_volume (data/kpis.json) is not ranked; it is listed apart, with its rate and "
    "volume. Units with no item in the period are in neither table."
)


def build(catalogue: KpiCatalogue) -> Dashboard:
    board = dashboard(
        UID,
        "Xếp hạng đơn vị theo chỉ số",
        "Units of one level of a province ranked by a KPI in a period, with the volume "
        "beside each rate. " + LOW_VOLUME_RULE,
    )
    for variable in (
        variables.province(),
        variables.level(),
        variables.ranking_kpi(catalogue),
        variables.window(),
    ):
        board.with_variable(variable)
    add_row(board, "Xếp hạng")
    add_panels(board, [ranking(catalogue), lowest(catalogue)], width=12, height=14)
    add_row(board, "Chưa đủ số liệu để xếp hạng")
    add_panels(board, [unranked(catalogue)], width=24, height=8)
    add_row(board, "Xếp hạng theo điểm Quyết định 766")
    add_panels(board, [by_score(ranked=True), by_score(ranked=False)], width=12, height=12)
    return board


def _ranked_table(
    panel: table.Panel, catalogue: KpiCatalogue, rate: str, volume: str
) -> table.Panel:
    """Rate and volume per (KPI, unit), merged into one row each, highest rate first."""
    return (
        panel.with_target(query(rate, ref="A", instant=True))
        .with_target(query(volume, ref="B", instant=True))
        .with_transformation(transformation("merge", {}))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True},
                    "indexByName": {"name": 0, "unit": 1, "kpi": 2, "Value #A": 3, "Value #B": 4},
                    "renameByName": {
                        "name": "Đơn vị",
                        "unit": "Mã",
                        "kpi": KPI,
                        "Value #A": RATE,
                        "Value #B": VOLUME,
                    },
                },
            )
        )
        .unit("percentunit")
        .decimals(RATE_DECIMALS)
        .override_by_name(*rate_ends(RATE))
        .override_by_name(*count_override(VOLUME))
        .override_by_name(KPI, [DynamicConfigValue("mappings", [kpi_mapping(catalogue)])])
    )


def ranking(catalogue: KpiCatalogue) -> table.Panel:
    panel = table_panel(
        "Xếp hạng theo tỷ lệ (cao nhất trước)",
        "Units of the chosen level in the province, ranked by the chosen KPI's rate in the "
        "period, highest first, with the denominator beside each rate (no rank number: the "
        "wall's rankings give equal rates one rank). " + LOW_VOLUME_RULE,
    )
    panel = _ranked_table(panel, catalogue, promql.ranked_rate(), promql.ranked_volume())
    return panel.sort_by([TableSortByFieldState().display_name(RATE).desc(True)])


def lowest(catalogue: KpiCatalogue) -> table.Panel:
    panel = table_panel(
        f"{LOWEST} đơn vị có tỷ lệ thấp nhất",
        f"The {LOWEST} lowest rates among the units ranked (bottomk), lowest first, with "
        "the volume beside. " + LOW_VOLUME_RULE,
    )
    rate = promql.lowest_ranked(LOWEST)
    volume = promql.beside_lowest(LOWEST, promql.ranked_volume())
    panel = _ranked_table(panel, catalogue, rate, volume)
    return panel.sort_by([TableSortByFieldState().display_name(RATE).desc(False)])


def unranked(catalogue: KpiCatalogue) -> table.Panel:
    panel = table_panel(
        "Chưa đủ số liệu để xếp hạng",
        "Units with at least one item in the period but fewer than the KPI's min_volume: "
        "shown with their rate and volume, never ranked (a 1 of 1 never tops 990 of "
        "1,000). " + LOW_VOLUME_RULE,
    )
    panel = _ranked_table(panel, catalogue, promql.unranked_rate(), promql.unranked_volume())
    # Highest rate first, as on the wall: the units a plain sort would have put on top.
    return panel.sort_by([TableSortByFieldState().display_name(RATE).desc(True)])


SHARE = "Tỷ lệ điểm đạt"
POINTS = "Điểm đạt"
MEASURED_MAX = "Tối đa đo được"


def by_score(*, ranked: bool) -> table.Panel:
    title = "Xếp hạng theo điểm 766 (cao nhất trước)" if ranked else "Điểm 766: chưa đủ số liệu"
    what = (
        "ranked by the share of their measured Decision 766 points (points earned / points "
        "measured for the unit), highest first"
        if ranked
        else "with points, but with a measured indicator below its KPI's min_volume: listed "
        "apart, not ranked"
    )
    columns = [
        ("A", promql.score_ranked() if ranked else promql.score_apart(), SHARE),
        ("B", promql.beside_score(promql.ranked_points(), ranked), POINTS),
        ("C", promql.beside_score("unit:egov_scorecard_max_points:$window", ranked), MEASURED_MAX),
        ("D", promql.beside_score(promql.score_volume(), ranked), VOLUME),
    ]
    panel = table_panel(
        title,
        f"Units of the chosen level in the province {what}, with the points, the measured "
        "maximum and the items behind them. Periods: this month and this year to date "
        "(the scorecard has no day: 'Hôm nay' shows nothing here). As on the wall, a unit "
        "any of whose measured indicators is below its KPI's min_volume is not ranked, "
        "and one with nothing measured is in neither table.",
    )
    for ref, expr, _ in columns:
        panel = panel.with_target(query(expr, ref=ref, instant=True))
    panel = (
        panel.with_transformation(transformation("merge", {}))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True},
                    "indexByName": {
                        "name": 0,
                        "unit": 1,
                        **{f"Value #{ref}": n for n, (ref, _, _) in enumerate(columns, 2)},
                    },
                    "renameByName": {
                        "name": "Đơn vị",
                        "unit": "Mã",
                        **{f"Value #{ref}": name for ref, _, name in columns},
                    },
                },
            )
        )
        .unit("percentunit")
        .decimals(RATE_DECIMALS)
        # A share of points is not a count's rate, but it reads 100 % only when every
        # point is earned: 19.9998 of 20 read "100.00%" (review 30).
        .override_by_name(*rate_ends(SHARE))
        .override_by_name(*count_override(VOLUME))
        .sort_by([TableSortByFieldState().display_name(SHARE).desc(True)])
    )
    for name in (POINTS, MEASURED_MAX):
        panel = panel.override_by_name(
            name,
            [
                DynamicConfigValue(id_val="unit", value="none"),
                DynamicConfigValue(id_val="decimals", value=POINTS_DECIMALS),
            ],
        )
    return panel
