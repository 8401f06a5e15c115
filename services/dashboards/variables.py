"""Template variables: the province and unit pickers, the KPI filter, the silence threshold.

Pickers show the unit's name as the registry spells it and carry its code: Grafana's
``query_result`` returns whole series and the regex's named groups pick text and value.
"""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders.dashboard import CustomVariable, QueryVariable
from grafana_foundation_sdk.models.dashboard import VariableOption, VariableRefresh, VariableSort

from services.common.kpis import KpiCatalogue
from services.dashboards.panels import PROMETHEUS
from services.dashboards.promql import UNIT_PROVINCE_INFO

# Labels come sorted, so `name` precedes `unit`; [{,] keeps `__name__` from matching.
NAME_AND_CODE = r'/[{,]\s*name="(?<text>[^"]*)".*[{,]\s*unit="(?<value>[^"]*)"/'

# The wall opens on Thái Nguyên (19) until an operator picks another province.
DEFAULT_PROVINCE = ("Thái Nguyên", "19")


def province() -> QueryVariable:
    text, value = DEFAULT_PROVINCE
    return (
        QueryVariable("province")
        .label("Tỉnh")
        .description("Province (tỉnh): units exported with level=province.")
        .datasource(PROMETHEUS)
        .query('query_result(egov_unit_info{level="province"})')
        .regex(NAME_AND_CODE)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
        .current(VariableOption(selected=True, text=text, value=value))
    )


def unit() -> QueryVariable:
    return (
        QueryVariable("unit")
        .label("Đơn vị")
        .description("Unit (đơn vị) of the chosen province, the province itself included.")
        .datasource(PROMETHEUS)
        .query(f'query_result({UNIT_PROVINCE_INFO}{{province="$province"}})')
        .regex(NAME_AND_CODE)
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_CASE_INSENSITIVE_ASC)
    )


def kpi(catalogue: KpiCatalogue) -> CustomVariable:
    """Multi-select KPI filter; "all" is the regex .+ so that queries use kpi=~"$kpi"."""
    options = ", ".join(f"{k.name_vi} : {k.id}" for k in catalogue.kpis)
    return (
        CustomVariable("kpi")
        .label("Chỉ số")
        .description("KPI filter (chỉ số).")
        .values(options)
        .multi(True)
        .include_all(True)
        .all_value(".+")
        .current(VariableOption(selected=True, text="All", value="$__all"))
    )


def silence() -> CustomVariable:
    """How long without events makes a unit silent on the wall (seconds)."""
    return (
        CustomVariable("silence")
        .label("Không gửi dữ liệu quá")
        .description("A unit is listed as silent after this long without events (seconds).")
        .values("30 phút : 1800, 1 giờ : 3600, 2 giờ : 7200, 6 giờ : 21600, 1 ngày : 86400")
        .current(VariableOption(selected=True, text="2 giờ", value="7200"))
    )


def _choice(
    name: str, label: str, description: str, options: Sequence[tuple[str, str]]
) -> CustomVariable:
    """A single-select variable of (shown text, value) options, the first one selected."""
    text, value = options[0]
    return (
        CustomVariable(name)
        .label(label)
        .description(description)
        .values(", ".join(f"{t} : {v}" for t, v in options))
        .current(VariableOption(selected=True, text=text, value=value))
    )


def ranking_kpi(catalogue: KpiCatalogue) -> CustomVariable:
    """One KPI to rank by (queries use kpi=~"$kpi", as with the multi-select filter)."""
    return _choice(
        "kpi",
        "Chỉ số",
        "The KPI the units are ranked by (chỉ số).",
        [(k.name_vi, k.id) for k in catalogue.kpis],
    )


LEVELS = (("Xã, phường", "commune"), ("Huyện", "district"), ("Sở, ngành", "department"))
"""The levels ranked within a province, named as the wall names them."""


def level() -> CustomVariable:
    return _choice(
        "level", "Cấp", "Level of the units ranked within the province (cấp đơn vị).", LEVELS
    )


WINDOWS = (("Tháng này", "month"), ("Hôm nay", "day"), ("Năm nay", "year"))
"""Calendar windows the workers export (Vietnam time); a year is 1 January to now."""


def window() -> CustomVariable:
    return _choice(
        "window",
        "Kỳ",
        "Period of the figures ranked (kỳ): this month, today, this year to date.",
        WINDOWS,
    )
