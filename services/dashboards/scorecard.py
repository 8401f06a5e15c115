"""Decision 766's scorecard of one unit: points per group, what is not measured, tiles.

The points come from the recording rules of deploy/prometheus/rules/egov-scorecard.yml
(the measured indicators only); everything said about the indicators that are not
measured here (their maximum and why) is written from data/scorecard-766.json by the
generator, so the dashboard never shows a score the data does not give.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import stat, table, text
from grafana_foundation_sdk.builders.common import ReduceDataOptions
from grafana_foundation_sdk.builders.dashboard import Dashboard
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import text as text_model
from grafana_foundation_sdk.models.dashboard import (
    DynamicConfigValue,
    ValueMap,
    ValueMappingResult,
)

from services.common.scorecard import TOTAL_POINTS, Indicator, Scorecard
from services.dashboards import promql, variables
from services.dashboards.layout import add_panels, add_row, dashboard
from services.dashboards.panels import (
    PROMETHEUS,
    neutral_thresholds,
    query,
    table_panel,
    transformation,
)

UID = "egov-scorecard-766"
FILE = "scorecard-766.json"

POINTS_DECIMALS = 2
"""Points with two decimals, as the portal publishes them (17,70 of 20)."""

OUTCOMES = (
    ("early", "Trước hạn"),
    ("on_time", "Đúng hạn"),
    ("late", "Trễ hạn"),
    ("open_overdue", "Quá hạn đang xử lý"),
)
"""egov_dossiers' outcomes (docs/dossiers.md) in the order a report lists them, named as
the wall's tiles name them (services/wall/i18n.py)."""

DOSSIER_WINDOWS = (("day", "hôm nay"), ("month", "tháng này"), ("year", "năm nay"))


def build(card: Scorecard) -> Dashboard:
    board = dashboard(
        UID,
        "Bộ chỉ số 766 — điểm của đơn vị",
        "Decision 766/QĐ-TTg's scorecard of one unit: the points of the indicators measured "
        "here (this month and the year to date) out of the measured maximum, per group; "
        "the indicators not measured here with their maximum; the on-time dossiers.",
    )
    board.with_variable(variables.province()).with_variable(variables.unit())
    add_row(board, f"Điểm Bộ chỉ số {card.decision}")
    add_panels(board, [total(card), costliest(card)], width=12, height=7)
    add_panels(board, [groups(card)], width=24, height=8)
    add_panels(board, [not_measured(card)], width=24, height=16)
    add_row(board, "Hồ sơ giải quyết đúng hạn (mỗi hồ sơ một lần)")
    add_panels(board, [dossier_tiles(w, vi) for w, vi in DOSSIER_WINDOWS], width=8, height=6)
    return board


def measured_max(card: Scorecard) -> int:
    """The points of the indicators measured here, when each has data."""
    return sum(i.max_points for i in card.indicators if i.measured)


def figure_query(level: str, figure: str, period: str) -> str:
    """Points as the wall shows them (19,99 of 20, never "20.00" while one is missing);
    the measured maximum, an integer, as it is."""
    if figure == "points":
        return promql.shown_score(level, period)
    return promql.score(level, figure, period)


def points_stat(title: str, description: str) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(PROMETHEUS)
        .unit("none")
        .decimals(POINTS_DECIMALS)
        .no_value("chưa có số liệu")
        .thresholds(neutral_thresholds())
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )


def total(card: Scorecard) -> stat.Panel:
    panel = points_stat(
        "Điểm đo được",
        f"Points of Decision {card.decision} earned by the indicators measured here, this "
        "month and this year to date, beside the measured maximum: today "
        f"{measured_max(card)} of the {TOTAL_POINTS} points (indicator 2.1, from "
        "dossier_on_time), never a score out of 100. A unit with no dossier judged in the "
        "period has no points and no measured maximum (no data, not 0). With fewer "
        "dossiers than dossier_on_time's min_volume the points are shown but read them "
        "with care (the wall marks them; the tiles below give the counts). Two decimals, "
        "as the portal publishes them.",
    )
    shown = [
        ("A", "points", "month", "Điểm đạt tháng này"),
        ("B", "points", "year", "Điểm đạt năm nay"),
        ("C", "max_points", "month", "Tối đa đo được (tháng)"),
        ("D", "max_points", "year", "Tối đa đo được (năm)"),
    ]
    for ref, figure, period, legend in shown:
        panel = panel.with_target(query(figure_query("unit", figure, period), legend, ref=ref))
    return panel


def indicator_mapping(card: Scorecard) -> ValueMap:
    """Indicator ids shown as "2.1 Tỷ lệ hồ sơ …" (table cells)."""
    return ValueMap(
        {
            i.id: ValueMappingResult(text=f"{i.id} {i.name_vi}", index=n)
            for n, i in enumerate(card.indicators)
        }
    )


def group_mapping(card: Scorecard) -> ValueMap:
    """Group ids shown with their number, name and full maximum."""
    return ValueMap(
        {
            g.id: ValueMappingResult(
                text=f"{g.number}. {g.name_vi} (tối đa {g.max_points})", index=n
            )
            for n, g in enumerate(card.groups)
        }
    )


def groups(card: Scorecard) -> table.Panel:
    columns = [
        ("A", "unit_group", "points", "month", "Điểm đạt tháng này"),
        ("B", "unit_group", "max_points", "month", "Tối đa đo được (tháng)"),
        ("C", "unit_group", "points", "year", "Điểm đạt năm nay"),
        ("D", "unit_group", "max_points", "year", "Tối đa đo được (năm)"),
    ]
    panel = table_panel(
        "Điểm theo nhóm",
        "Per group with an indicator measured here: the points earned this month and this "
        "year to date, beside the measured maximum; the group's full maximum is in its "
        "name. Groups with no indicator measured here are listed below with their maximum.",
    )
    for ref, level, figure, period, _ in columns:
        panel = panel.with_target(query(figure_query(level, figure, period), ref=ref, instant=True))
    return (
        panel.with_transformation(transformation("merge", {}))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True, "unit": True},
                    "indexByName": {
                        "group": 0,
                        **{f"Value #{c[0]}": n for n, c in enumerate(columns, 1)},
                    },
                    "renameByName": {"group": "Nhóm", **{f"Value #{c[0]}": c[4] for c in columns}},
                },
            )
        )
        .unit("none")
        .decimals(POINTS_DECIMALS)
        .override_by_name("Nhóm", [DynamicConfigValue("mappings", [group_mapping(card)])])
    )


def costliest(card: Scorecard) -> table.Panel:
    return (
        table_panel(
            "Mất nhiều điểm nhất",
            "The measured indicator that loses the most points against its maximum, this "
            "month and this year to date (Score.costliest; nothing when none loses any). "
            "Only measured indicators can be listed: one today (2.1).",
        )
        .with_target(query(promql.costliest("month"), ref="A", instant=True))
        .with_target(query(promql.costliest("year"), ref="B", instant=True))
        .with_transformation(transformation("merge", {}))
        .with_transformation(
            transformation(
                "organize",
                {
                    "excludeByName": {"Time": True, "unit": True, "group": True, "kpi": True},
                    "indexByName": {"indicator": 0, "Value #A": 1, "Value #B": 2},
                    "renameByName": {
                        "indicator": "Chỉ số",
                        "Value #A": "Điểm mất tháng này",
                        "Value #B": "Điểm mất năm nay",
                    },
                },
            )
        )
        .unit("none")
        .decimals(POINTS_DECIMALS)
        .override_by_name("Chỉ số", [DynamicConfigValue("mappings", [indicator_mapping(card)])])
    )


def not_measured(card: Scorecard) -> text.Panel:
    return (
        text.Panel()
        .title("Chỉ số chưa đo ở đây")
        .description(
            f"Written from data/scorecard-766.json when the dashboard is generated: the "
            f"indicators measured here ({measured_max(card)} of {TOTAL_POINTS} points) and "
            "every other one with its maximum and why no event measures it. No points are "
            "shown for them: unknown, not 0 (docs/scorecard.md)."
        )
        .mode(text_model.TextMode.MARKDOWN)
        .content(not_measured_markdown(card))
    )


def not_measured_markdown(card: Scorecard) -> str:
    measured = [i for i in card.indicators if i.measured]
    lines = [
        f"**Đo được ở đây: {measured_max(card)}/{TOTAL_POINTS} điểm** — "
        + "; ".join(f"{i.id} {i.name_vi} ({i.max_points} điểm)" for i in measured)
        + ".",
        "",
        f"**Chưa đo ở đây: {TOTAL_POINTS - measured_max(card)}/{TOTAL_POINTS} điểm**: "
        "giữ điểm tối đa, không có điểm ở đây (chưa biết, không phải 0).",
        "",
        *(f"*{i.id}:* {i.deviation_vi}" for i in measured if i.deviation_vi),
        "",
        "| Chỉ số | Tên | Tối đa | Vì sao chưa đo ở đây |",
        "|---|---|---:|---|",
    ]
    for group in card.groups:
        lines.append(f"| **{group.number}** | **{group.name_vi}** | **{group.max_points}** | |")
        lines += [_row(i) for i in group.indicators if not i.measured]
    return "\n".join(lines) + "\n"


def _row(ind: Indicator) -> str:
    reason = ind.why_not_measured("vi").replace("|", "/")
    return f"| {ind.id} | {ind.name_vi} | {ind.max_points} | {reason} |"


def dossier_tiles(window: str, period_vi: str) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(f"Hồ sơ {period_vi}")
        .description(
            f"Dossiers behind the on-time rate ({window}, Vietnam time), one count per "
            "dossier: resolved early, on time or late (in the period of the resolution), "
            "and still open past the appointment (in the period of the appointment). "
            "Withdrawn dossiers are in none (docs/dossiers.md)."
        )
        .datasource(PROMETHEUS)
        .unit("short")
        .decimals(0)
        .no_value("—")
        .thresholds(neutral_thresholds())
        .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
        .color_mode(common.BigValueColorMode.NONE)
        .graph_mode(common.BigValueGraphMode.NONE)
        .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    # One query per outcome, so that the tiles keep the report's order.
    for ref, (outcome, vi) in zip("ABCD", OUTCOMES, strict=True):
        panel = panel.with_target(query(promql.dossiers(window, outcome), vi, ref=ref))
    return panel
