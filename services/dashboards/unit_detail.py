"""Unit detail: one unit's KPI rates over time, the counts behind them, its last events."""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DynamicConfigValue

from services.common.kpis import KpiCatalogue
from services.dashboards import promql, variables
from services.dashboards.layout import add_panels, add_row, dashboard
from services.dashboards.overview import KPI, kpi_display_names, kpi_mapping
from services.dashboards.panels import (
    PROMETHEUS,
    RATE_DECIMALS,
    count_override,
    query,
    series_panel,
    table_panel,
    transformation,
)

UID = "egov-unit-detail"
FILE = "unit-detail.json"

TARGET_LINE = [
    DynamicConfigValue("custom.lineStyle", {"fill": "dash", "dash": [10, 10]}),
    DynamicConfigValue("custom.lineWidth", 1),
]


def build(catalogue: KpiCatalogue) -> Dashboard:
    board = dashboard(
        UID,
        "Chi tiết đơn vị",
        "Unit detail: one unit's KPI rates over the rolling hour and the calendar day "
        "against its targets, the numerator and denominator counts, its last events.",
    )
    board.with_variable(variables.province()).with_variable(variables.unit())
    board.with_variable(variables.kpi(catalogue))
    add_row(board, "Hôm nay và tháng này")
    add_panels(board, [summary(catalogue)], width=16, height=9)
    add_panels(board, [last_events()], width=8, height=9)
    add_row(board, "Diễn biến")
    rates = [
        rate_series(catalogue, "1h", "Tỷ lệ trong 1 giờ qua", "the last rolling hour"),
        rate_series(catalogue, "day", "Tỷ lệ trong ngày", "the calendar day so far"),
    ]
    add_panels(board, rates, width=12, height=10)
    add_panels(
        board,
        [counts(catalogue, "numerator"), counts(catalogue, "denominator")],
        width=12,
        height=9,
    )
    return board


def summary(catalogue: KpiCatalogue) -> table.Panel:
    figures = [
        ("A", promql.unit_rate("day"), "Tỷ lệ hôm nay"),
        ("B", promql.unit_rate("month"), "Tỷ lệ tháng này"),
        ("C", f"max by (kpi) ({promql.target('$unit')})", "Mục tiêu"),
        ("D", promql.unit_figure("numerator", "day"), "Đạt hôm nay"),
        ("E", promql.unit_figure("denominator", "day"), "Tổng hôm nay"),
        ("F", promql.unit_figure("denominator", "month"), "Tổng tháng này"),
    ]
    panel = table_panel(
        "Các chỉ số của đơn vị",
        "Per KPI: today's and this month's rate, the target, and the counts behind them "
        "(numerator and denominator).",
    )
    for ref, expr, _ in figures:
        panel = panel.with_target(query(expr, ref=ref, instant=True))
    rename = {f"Value #{ref}": title for ref, _, title in figures}
    panel = (
        panel.with_transformation(transformation("merge", {}))
        .with_transformation(
            transformation(
                "organize",
                {"excludeByName": {"Time": True}, "renameByName": {"kpi": KPI, **rename}},
            )
        )
        .unit("percentunit")
        .decimals(RATE_DECIMALS)
        .override_by_name(KPI, [DynamicConfigValue("mappings", [kpi_mapping(catalogue)])])
    )
    for _, _, title in figures[3:]:
        panel = panel.override_by_name(*count_override(title))
    return panel


def last_events() -> stat.Panel:
    return (
        stat.Panel()
        .title("Sự kiện gần nhất")
        .description("When the unit last sent an event of each family (event time).")
        .datasource(PROMETHEUS)
        .unit("dateTimeFromNow")
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .no_value("chưa nhận được dữ liệu")
        .with_target(query(promql.last_event_ms(), "{{family}}"))
    )


def rate_series(catalogue: KpiCatalogue, window: str, title: str, period: str) -> timeseries.Panel:
    panel = (
        series_panel(
            title, f"Each KPI's rate over {period}, with its target (dashed).", "percentunit"
        )
        .decimals(RATE_DECIMALS)
        .min(0)
        .max(1)
        .with_target(query(promql.unit_rate(window), "{{kpi}}", ref="A"))
        .with_target(query(f"max by (kpi) ({promql.target('$unit')})", "Mục tiêu {{kpi}}", ref="B"))
        .override_by_query("B", TARGET_LINE)
    )
    return kpi_display_names(panel, catalogue)


def counts(catalogue: KpiCatalogue, figure: str) -> timeseries.Panel:
    vi = {"numerator": "Số đạt (tử số)", "denominator": "Tổng số (mẫu số)"}[figure]
    panel = (
        series_panel(
            f"{vi} trong ngày",
            f"The {figure} of each KPI for the calendar day so far.",
            "short",
        )
        .decimals(0)
        .with_target(query(promql.unit_figure(figure, "day"), "{{kpi}}"))
    )
    return kpi_display_names(panel, catalogue)
