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
    table_panel,
    transformation,
)

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
    return panel.sort_by([TableSortByFieldState().display_name(VOLUME).desc(True)])
