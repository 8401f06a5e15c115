"""Builders of wall figures for the unit tests: explicit times, nothing read from a clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from services.common.figures import Activity, Figure
from services.common.rates import to_bp
from services.common.units import VN_TZ
from services.wall.snapshot import Snapshot, SourceState, fingerprint

NOW = datetime(2026, 11, 23, 10, 15, tzinfo=VN_TZ)

NAMES = {
    "19": ("Thái Nguyên", "Thai Nguyen", "province", None, "19"),
    "01843": ("Phường Bắc Kạn", "Bac Kan Ward", "commune", "19", "19"),
    "01850": ("Xã Phong Quang", "Phong Quang Commune", "commune", "19", "19"),
    "01860": ("Xã Bằng Thành", "Bang Thanh Commune", "commune", "19", "19"),
    "38": ("Thanh Hóa", "Thanh Hoa", "province", None, "38"),
}


def fig(
    unit: str,
    num: int,
    den: int,
    kpi: str = "document_signing",
    window: str = "day",
    target: float = 0.95,
    min_volume: int = 20,
    names: dict[str, tuple[str, str, str, str | None, str]] | None = None,
    last_event: datetime | None = None,
) -> Figure:
    name, name_en, level, parent, province = (names or NAMES)[unit]
    return Figure(
        kpi=kpi,
        kpi_name_vi=f"Tỷ lệ {kpi}",
        kpi_name_en=f"Rate {kpi}",
        unit=unit,
        unit_name=name,
        unit_name_en=name_en,
        level=level,
        parent=parent,
        province=province,
        window=window,
        numerator=num,
        denominator=den,
        target_bp=to_bp(target),
        min_volume=min_volume,
        last_event_time=last_event,
    )


def recent(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


def snapshot(
    figures: list[Figure],
    activity: list[Activity] | None = None,
    alerts: Any = (),
    sources: tuple[SourceState, ...] = (SourceState("metrics", "http://w1", True),),
    alerts_configured: bool = True,
) -> Snapshot:
    """``alerts_configured=False``: a wall without an alerts source (its alerts are None)."""
    figs, acts = tuple(figures), tuple(activity or ())
    alert_tuple = None if alerts is None or not alerts_configured else tuple(alerts)
    return Snapshot(
        taken_at=NOW,
        figures=figs,
        activity=acts,
        alerts=alert_tuple,
        alerts_configured=alerts_configured,
        sources=sources,
        data_time=NOW,
        fingerprint=fingerprint(figs, acts, alert_tuple, sources, alerts_configured),
    )
