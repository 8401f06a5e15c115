"""Small builders shared by the dashboards: the data source, queries, panels, thresholds."""

from __future__ import annotations

from grafana_foundation_sdk.builders import prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import ReduceDataOptions, VizLegendOptions
from grafana_foundation_sdk.builders.dashboard import ThresholdsConfig
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import prometheus as prom_model
from grafana_foundation_sdk.models.dashboard import (
    DashboardRangeMapOptions,
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    RangeMap,
    Threshold,
    ThresholdsMode,
    ValueMappingResult,
)

from services.dashboards.promql import HALF_UP_NUDGE

# The uid given to the data source in deploy/grafana/provisioning/datasources/.
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")

RED = "red"
GREEN = "green"

RATE_DECIMALS = 2
"""Rates are read to two decimals everywhere (services/common/rates.py): 11,703 of 11,710
is 99.94%, never 99.9%. Grafana rounds the float ratio half up (``Math.round``) and
writes an English decimal point; docs/dashboards.md says where that can differ."""


# Float ratios at or past these Grafana would round onto 100.00% or 0.00% (half up at two
# decimals: 99.995% and 0.005%). Mapped ranges are inclusive; a ratio num/den below 1
# is at most 1 - 1/den, so the ends are exact for any denominator under 10**11, with or
# without promql.HALF_UP_NUDGE (1e-12) added: 0 nudged stays below _NOT_ZERO, 1 nudged
# above the top of the first range.
_ALMOST_ALL = 0.99995
_ALMOST_NONE = 0.00005
_NOT_ZERO = 2e-12


def rate_ends(field_name: str) -> tuple[str, list[DynamicConfigValue]]:
    """Field overrides keeping a float ratio's ends as the wall writes them.

    The tables of every unit of a level show the exported float ratio (PromQL rounding
    there cost seconds at 10,000 units: docs/dashboards.md). Grafana rounds 19,999 of
    20,000 to "100.00%" and 1 of 30,000 to "0.00%"; ``services/common/rates.py`` never
    writes 100 % with an item missing nor 0 % with one counted. Value mappings (free in
    Grafana, nothing in Prometheus) put "99.99%" and "0.01%" there; between them the
    queries nudge exact halves up (promql.HALF_UP_NUDGE).
    """
    return field_name, [
        DynamicConfigValue(
            id_val="mappings",
            value=[
                _range(_ALMOST_ALL, 1 - _NOT_ZERO, "99.99%"),
                _range(_NOT_ZERO, _ALMOST_NONE, "0.01%"),
            ],
        )
    ]


def shortfall_ends(field_name: str) -> tuple[str, list[DynamicConfigValue]]:
    """A gap to a missed target of at most 0.005 points reads "< 0.01%", not "0.00%".

    A unit short by exactly half a basis point (17,999 of 20,000 against 90%) has a float
    gap a hair either side of 0.00005, hence the nudge's margin on top (review 30)."""
    top = _ALMOST_NONE + HALF_UP_NUDGE
    return field_name, [
        DynamicConfigValue(id_val="mappings", value=[_range(_NOT_ZERO, top, "< 0.01%")])
    ]


def _range(low: float, high: float, text: str) -> RangeMap:
    return RangeMap(DashboardRangeMapOptions(low, high, ValueMappingResult(text=text)))


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False
) -> prometheus.Dataquery:
    """A PromQL target; instant queries come back as a table (one row per series)."""
    target = prometheus.Dataquery().expr(expr).ref_id(ref).datasource(PROMETHEUS)
    target = target.editor_mode(prom_model.QueryEditorMode.CODE)
    if instant:
        return target.instant().format(prom_model.PromQueryFormat.TABLE)
    return target.range().legend_format(legend or "__auto")


def met_thresholds() -> ThresholdsConfig:
    """Green, whatever the value: a panel coloured by its target in force names each rate
    by whether its counts meet that target (``promql.province_rate_named``) and gives the
    names of a miss red (:func:`missed_override`). A static threshold would be the
    catalogue's target, not an operator's override in force (review 79)."""
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps([Threshold(None, GREEN)])


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


def missed_override(field_name: str) -> tuple[str, list[DynamicConfigValue]]:
    """A rate whose counts miss its target in force (named so by its query), in red."""
    return field_name, [
        DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": RED}),
    ]
