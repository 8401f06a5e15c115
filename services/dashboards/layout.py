"""The frame every dashboard shares: uid, Vietnam time, refresh, numbered panels."""

from __future__ import annotations

from collections.abc import Iterable

from grafana_foundation_sdk.builders import heatmap, stat, table, text, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row, TimePicker
from grafana_foundation_sdk.models.dashboard import DashboardCursorSync

TIMEZONE = "Asia/Ho_Chi_Minh"
TAGS = ["egov-pulse"]

PanelBuilder = stat.Panel | table.Panel | timeseries.Panel | heatmap.Panel | text.Panel


def dashboard(uid: str, title: str, description: str, *, refresh: str = "30s") -> Dashboard:
    """A read-only dashboard (edit the generator, not the UI) in Vietnam time."""
    return (
        Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .timezone(TIMEZONE)
        .week_start("monday")
        .readonly()
        .tooltip(DashboardCursorSync.CROSSHAIR)
        .refresh(refresh)
        .time("now-24h", "now")
        .timepicker(TimePicker().refresh_intervals(["10s", "30s", "1m", "5m"]))
    )


def add_panels(
    board: Dashboard, panels: Iterable[PanelBuilder], *, width: int, height: int
) -> None:
    """Place panels left to right in rows of 24 columns, numbering them in order."""
    for panel in panels:
        board.with_panel(panel.id(_next_id(board)).span(width).height(height))


def add_row(board: Dashboard, title: str) -> None:
    board.with_row(Row(title).id(_next_id(board)))


def _next_id(board: Dashboard) -> int:
    return len(board.build().panels or []) + 1
