"""The province overview for the IOC wall (kiosk mode): every KPI today and this month.

Layout, top to bottom: one big-number panel per KPI (today, this month, target, volume),
the units below target worst first, the silent units, the records dead-lettered in the
last 24 hours, and the last day's hourly rates.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, text, timeseries
from grafana_foundation_sdk.builders.common import TableSortByFieldState
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models import text as text_model
from grafana_foundation_sdk.models.dashboard import (
    DynamicConfigValue,
    ValueMap,
    ValueMappingResult,
)

from services.common.figures import Standing
from services.common.kpis import Kpi, KpiCatalogue
from services.common.rates import format_date, format_target, to_bp
from services.dashboards import promql, variables
from services.dashboards.layout import add_panels, add_row, dashboard
from services.dashboards.panels import (
    RATE_DECIMALS,
    count_override,
    met_thresholds,
    missed_override,
    neutral_override,
    query,
    rate_ends,
    rate_stat,
    series_panel,
    shortfall_ends,
    table_panel,
    transformation,
)
from services.wall.i18n import status_label

UID = "egov-province-overview"
FILE = "province-overview.json"

TODAY = "Hôm nay"
MONTH = "Tháng này"
# "Chỉ số" is what is measured and "Mục tiêu" the figure to reach, as on the wall
# (services/metrics/wall/i18n.py): "chỉ tiêu" would name both.
KPI = "Chỉ số"
TARGET = "Mục tiêu"
SILENT_FOR = "Thời gian không gửi"
LEVEL = "Cấp"
VOLUME = "Số lượng hôm nay"

# Column names of the "below target" table, after the merge of its four queries.
SHORTFALL = "Thiếu so với mục tiêu"
RATE_TODAY = "Tỷ lệ hôm nay"


def build(catalogue: KpiCatalogue) -> Dashboard:
    board = dashboard(
        UID,
        "Tổng quan tỉnh — chỉ số chuyển đổi số",
        "Province overview for the IOC wall (kiosk mode): each KPI's rate today and this "
        "month against its target, units below target worst first, silent units.",
        refresh="10s",
    )
    board.with_variable(variables.province()).with_variable(variables.silence())
    add_row(board, "Các chỉ số của tỉnh")
    add_panels(board, (kpi_stat(k) for k in catalogue.kpis), width=6, height=7)
    add_row(board, "Đơn vị cần chú ý")
    add_panels(board, [below_target(catalogue), silent_units()], width=12, height=12)
    add_panels(board, [dead_letters()], width=24, height=6)
    add_row(board, "Diễn biến")
    add_panels(board, [hourly_rates(catalogue)], width=24, height=9)
    add_row(board, "Căn cứ mục tiêu")
    add_panels(board, [target_bases(catalogue)], width=24, height=10)
    add_panels(board, [target_overrides(catalogue)], width=24, height=7)
    return board


SCOPES = {
    "unit": "Một đơn vị",
    "province_level": "Một cấp của tỉnh",
    "province": "Toàn tỉnh",
}
"""An override's scope in words (services/common/targets.py ``Scope.kind``)."""
BASIS = "Căn cứ"


def target_overrides(catalogue: KpiCatalogue) -> table.Panel:
    """The targets the province's operators set, each with its reason: the KPI panels show
    the target in force, and one an operator set must not read as a national one."""
    scope = "Phạm vi"
    return (
        table_panel(
            "Mục tiêu riêng đang áp dụng",
            "Targets set by the province's operators (docs/targets.md) in force today, with "
            "the reason and the days they gave: they replace the defaults above for their "
            "scope. Empty when every target is a default.",
        )
        .with_target(query(promql.overrides_in_force(), ref="A", instant=True))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True},
                    "indexByName": {
                        "kpi": 0,
                        "scope": 1,
                        "level": 2,
                        "unit": 3,
                        "Value": 4,
                        "basis": 5,
                    },
                    "renameByName": {
                        "kpi": KPI,
                        "scope": scope,
                        "level": LEVEL,
                        "unit": "Mã",
                        "Value": TARGET,
                        "basis": BASIS,
                    },
                },
            )
        )
        .unit("percentunit")
        .decimals(RATE_DECIMALS)
        .override_by_name(*neutral_override(TARGET))
        .override_by_name(KPI, [DynamicConfigValue("mappings", [kpi_mapping(catalogue)])])
        .override_by_name(*named_values(scope, SCOPES))
        .override_by_name(*level_names())
        .sort_by([TableSortByFieldState().display_name(KPI)])
    )


def target_bases(catalogue: KpiCatalogue) -> text.Panel:
    """What the default targets rest on, as the wall cites them (services/common/
    citations.py): a directive's 100 %, a resolution's 90 % and the project's own default
    are not the same news on a kiosk."""
    return (
        text.Panel()
        .title("Căn cứ mục tiêu mặc định")
        .description(
            "Written from data/targets.json when the dashboard is generated: each KPI's "
            "default target for a province, the days it holds and the document it rests on. "
            "A province's own target (an override, docs/targets.md) replaces it: the KPI "
            "panels above show the target in force, and the table below lists the overrides "
            "with their reasons."
        )
        .mode(text_model.TextMode.MARKDOWN)
        .content(target_bases_markdown(catalogue))
    )


def target_bases_markdown(catalogue: KpiCatalogue) -> str:
    lines = [
        "| Chỉ số | Mục tiêu (tỉnh) | Áp dụng | Căn cứ |",
        "|---|---:|---|---|",
    ]
    for kpi in catalogue.kpis:
        for dated in kpi.schedule:
            since = "" if dated.valid_from is None else f"từ {format_date(dated.valid_from, 'vi')}"
            until = (
                "" if dated.valid_until is None else f"đến {format_date(dated.valid_until, 'vi')}"
            )
            held = " ".join(p for p in (since, until) if p) or "mọi ngày"
            source = dated.source.document or dated.source.title_vi
            target = format_target(dated.target_bp["province"], "vi")
            lines.append(f"| {_cell(kpi.name_vi)} | {target} | {held} | {_cell(source)} |")
    return "\n".join(lines) + "\n"


def _cell(value: str) -> str:
    """Text in a markdown table cell: a pipe would end it."""
    return value.replace("|", "/")


def named_values(field_name: str, names: dict[str, str]) -> tuple[str, list[DynamicConfigValue]]:
    """A field override showing each id of a column by its name (a cell read "commune")."""
    mapping = ValueMap({value: ValueMappingResult(text=name) for value, name in names.items()})
    return field_name, [DynamicConfigValue("mappings", [mapping])]


def level_names() -> tuple[str, list[DynamicConfigValue]]:
    """The level column, named as the wall names the levels."""
    levels = {level: name for name, level in variables.LEVELS}
    return named_values(LEVEL, {**levels, "province": "Tỉnh"})


def kpi_mapping(catalogue: KpiCatalogue) -> ValueMap:
    """KPI ids shown as their Vietnamese names (table cells)."""
    return ValueMap(
        {k.id: ValueMappingResult(text=k.name_vi, index=i) for i, k in enumerate(catalogue.kpis)}
    )


def kpi_display_names(panel: timeseries.Panel, catalogue: KpiCatalogue) -> timeseries.Panel:
    """Series legended by KPI id (``{{kpi}}``) shown as their Vietnamese names."""
    for k in catalogue.kpis:
        panel = panel.override_by_name(k.id, [DynamicConfigValue("displayName", k.name_vi)])
    return panel


def kpi_stat(kpi: Kpi) -> stat.Panel:
    default_bp = to_bp(kpi.target_for("province"))
    return (
        rate_stat(
            kpi.name_vi,
            f"{kpi.name_en}: the province's rate today and this month (Vietnam time), its "
            f"target in force (default {format_target(default_bp, 'en')} for a province; an "
            "operator's override replaces it) and today's volume. Two decimals, as the wall "
            "and the alerts show it. Green when the counts meet the target in force, red and "
            f"named '{status_label('vi', Standing.BELOW)}' when they miss it. Below the "
            f"KPI's min_volume ({kpi.min_volume}) a rate is shown but not judged, as on the "
            "wall: it is named 'Chưa đủ số liệu để đánh giá' and has no red or green.",
        )
        .thresholds(met_thresholds())
        .with_target(query(_judged_rate("day", kpi, TODAY), SHOWN, ref="A"))
        .with_target(query(_judged_rate("month", kpi, MONTH), SHOWN, ref="B"))
        .with_target(query(promql.target("$province", kpi.id), TARGET, ref="C"))
        .with_target(query(promql.province_figure("denominator", "day", kpi.id), VOLUME, ref="D"))
        .override_by_name(*neutral_override(TARGET))
        .override_by_name(*missed_override(missed(TODAY)))
        .override_by_name(*missed_override(missed(MONTH)))
        .override_by_name(*neutral_override(low_volume(TODAY)))
        .override_by_name(*neutral_override(low_volume(MONTH)))
        .override_by_name(*count_override(VOLUME))
    )


SHOWN = "{{shown}}"
"""The KPI stats' legend: the name :func:`promql.province_rate_named` gives a rate."""


def missed(name: str) -> str:
    """The name of a judged rate that misses its target in force, in the wall's words."""
    return f"{name} · {status_label('vi', Standing.BELOW)}"


def low_volume(name: str) -> str:
    """The name of a rate below its KPI's min_volume, in the wall's words."""
    return f"{name} · {status_label('vi', Standing.LOW_VOLUME)}"


def _judged_rate(window: str, kpi: Kpi, name: str) -> str:
    return promql.province_rate_named(window, kpi.id, (name, missed(name), low_volume(name)))


def below_target(catalogue: KpiCatalogue) -> table.Panel:
    shortfall = promql.shortfall()
    return (
        table_panel(
            "Đơn vị dưới mục tiêu hôm nay (xấu nhất trước)",
            "Units of the province below their target today, worst first (largest gap "
            "between target and rate), with the rate, the target and the volume behind it. "
            "As on the wall, only judged rates: a unit whose volume today is below the KPI's "
            "min_volume is too few to judge and not listed; the province itself is not "
            "one of its units.",
        )
        .with_target(query(shortfall, ref="A", instant=True))
        # The rate the rows were chosen by (the same recording): a live rate beside rows
        # recorded up to 30 s earlier listed units meeting their target (review 12).
        .with_target(
            query(
                promql.beside_shortfall(promql.nudged(promql.UNIT_RATIO_DAY)), ref="B", instant=True
            )
        )
        .with_target(query(promql.beside_shortfall(promql.UNIT_TARGET), ref="C", instant=True))
        .with_target(
            query(
                promql.beside_shortfall(promql.day_volume()),
                ref="D",
                instant=True,
            )
        )
        .with_transformation(transformation("merge", {}))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True, "parent": True, "province": True},
                    "indexByName": {
                        "name": 0,
                        "unit": 1,
                        "level": 2,
                        "kpi": 3,
                        "Value #A": 4,
                        "Value #B": 5,
                        "Value #C": 6,
                        "Value #D": 7,
                    },
                    "renameByName": {
                        "name": "Đơn vị",
                        "unit": "Mã",
                        "level": LEVEL,
                        "kpi": KPI,
                        "Value #A": SHORTFALL,
                        "Value #B": RATE_TODAY,
                        "Value #C": TARGET,
                        "Value #D": VOLUME,
                    },
                },
            )
        )
        .override_by_name(*level_names())
        .sort_by([TableSortByFieldState().display_name(SHORTFALL).desc(True)])
        .unit("percentunit")
        .decimals(RATE_DECIMALS)
        .override_by_name(*rate_ends(RATE_TODAY))
        .override_by_name(*shortfall_ends(SHORTFALL))
        .override_by_name(*count_override(VOLUME))
        .override_by_name(KPI, [DynamicConfigValue("mappings", [kpi_mapping(catalogue)])])
    )


def silent_units() -> table.Panel:
    return (
        table_panel(
            "Đơn vị ngừng gửi dữ liệu",
            "Units with no events of a family for longer than the chosen threshold "
            "(silence is an incident: a silent unit looks like a perfect rate).",
        )
        .with_target(query(promql.silent_units(), ref="A", instant=True))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True, "province": True},
                    "indexByName": {"name": 0, "unit": 1, "level": 2, "family": 3, "Value": 4},
                    "renameByName": {
                        "name": "Đơn vị",
                        "unit": "Mã",
                        "level": LEVEL,
                        "family": "Loại dữ liệu",
                        "Value": SILENT_FOR,
                    },
                },
            )
        )
        .override_by_name(*level_names())
        .sort_by([TableSortByFieldState().display_name(SILENT_FOR).desc(True)])
        .unit("s")
    )


DEAD_LETTERED = "Số bản ghi bị loại"


def dead_letters() -> table.Panel:
    """Records of the province the workers refused (dead-lettered): the figures above miss
    them until they are handled (docs/runbooks.md, EgovDeadLetters), and the IOC must
    know its figures are incomplete, not only on-call."""
    return (
        table_panel(
            "Bản ghi bị loại (dead letter), 24 giờ qua",
            "Records of the province dead-lettered by the metrics workers over the last 24 "
            "hours, by reason (egov_events_dead_lettered_total, province label: the record's "
            "key, else its unit's province). They are not counted: the figures above miss "
            "them until on-call handles them (docs/runbooks.md, EgovDeadLetters). Records "
            "whose province is unknown, or keyed by a province before the 2025 reform, are "
            "not shown here (the pipeline health dashboard has every dead letter).",
        )
        .with_target(query(promql.dead_letters(), ref="A", instant=True))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True},
                    "indexByName": {"reason": 0, "Value": 1},
                    "renameByName": {"reason": "Lý do", "Value": DEAD_LETTERED},
                },
            )
        )
        .override_by_name(*count_override(DEAD_LETTERED))
        .sort_by([TableSortByFieldState().display_name(DEAD_LETTERED).desc(True)])
    )


def hourly_rates(catalogue: KpiCatalogue) -> timeseries.Panel:
    panel = (
        series_panel(
            "Tỷ lệ trong 1 giờ qua, theo chỉ số",
            "Each KPI's rate over the last rolling hour for the province.",
            "percentunit",
        )
        .decimals(RATE_DECIMALS)
        .min(0)
        .max(1)
        .with_target(query(promql.hourly_rate(), "{{kpi}}"))
    )
    return kpi_display_names(panel, catalogue)
