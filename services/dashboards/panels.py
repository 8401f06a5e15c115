"""Small builders shared by the dashboards: the data source, queries, panels, thresholds."""

from __future__ import annotations

from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prom_model
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
)

# The uid given to the data source in deploy/grafana/provisioning/datasources/.
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")

RED = "red"
GREEN = "green"

RATE_DECIMALS = 2
"""Rates are read to two decimals everywhere (services/common/rates.py): 11,703 of 11,710
is 99.94%, never 99.9%. Grafana rounds the float ratio half up (``Math.round``) and
writes an English decimal point; docs/dashboards.md says where that can differ."""


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    """A PromQL target; instant queries come back as a table (one row per series)."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    target = target.editor_mode(prom_model.QueryEditorMode.CODE)
    if instant:
        return target.instant().format(prom_model.PromQueryFormat.TABLE)
    return target.range().legend_format(legend or "__auto")


def target_thresholds(target: float) -> ThresholdsConfig:
    """Red below ``target``, green at or above it."""
    return (
        ThresholdsConfig()
        .mode(ThresholdsMode.ABSOLUTE)
        .steps([Threshold(value=None, color=RED), Threshold(value=target, color=GREEN)])
    )


def neutral_thresholds() -> ThresholdsConfig:
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(None, "text")])


def rate_stat(title: str, description: str) -> stat.Panel:
    """A big-number panel for ratios: value and name, so colour is never the only signal."""
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit("percentunit")
        .decimals(RATE_DECIMALS)
        .min(0)
        .max(1)
        .no_value("—")
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.VALUE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def count_override(field_name: str) -> tuple[str, list[DynamicConfigValue]]:
    """Field overrides that show a count (not a percentage) in neutral colour."""
    return field_name, [
        DynamicConfigValue(id_val="unit", value="short"),
        DynamicConfigValue(id_val="decimals", value=0),
        DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "text"}),
    ]


def series_panel(title: str, description: str, unit: str) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit(unit)
        .line_width(2)
        .fill_opacity(5)
        .span_nulls(False)
        .legend(
            VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["lastNotNull"])
        )
    )


def table_panel(title: str, description: str) -> table.Panel:
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .no_value("—")
        .cell_height(common.TableCellHeight.MD)
    )


def transformation(id_val: str, options: dict[str, object]) -> DataTransformerConfig:
    return DataTransformerConfig(id_val=id_val, options=options)


def neutral_override(field_name: str) -> tuple[str, list[DynamicConfigValue]]:
    """A reference value (a target) shown without the red/green of the measured ones."""
    return field_name, [
        DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "text"}),
    ]
