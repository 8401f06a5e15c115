"""JSON views of an overview, for /wall/api/* and for anyone scripting the wall."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.common.figures import Figure
from services.common.unit_info import UnitInfo
from services.common.units import VN_TZ
from services.wall.model import Alert
from services.wall.overview import Overview, UnitRow


def _time(at: datetime | None) -> str | None:
    # Vietnam time with its offset (2026-11-20T09:40:00+07:00): the same instant as the
    # source wrote it, read at a glance by the people scripting a provincial wall.
    return at.astimezone(VN_TZ).isoformat() if at else None


def figure_json(f: Figure) -> dict[str, Any]:
    return {
        "kpi": f.kpi,
        "unit": f.unit,
        "window": f.window,
        "numerator": f.numerator,
        "denominator": f.denominator,
        "ratio": f.ratio,
        "rate_bp": f.rate_bp,
        "target": f.target,
        "target_bp": f.target_bp,
        "target_basis": None if f.target_basis is None else f.target_basis.to_json(),
        "min_volume": f.min_volume,
        "status": f.status.value,
        "gap": f.gap,
    }


def unit_json(u: UnitInfo) -> dict[str, Any]:
    return {
        "unit": u.code,
        "name": u.name,
        "name_en": u.name_en,
        "level": u.level,
        "parent": u.parent,
        "province": u.province,
    }


def row_json(r: UnitRow) -> dict[str, Any]:
    return {
        **unit_json(r.unit),
        "status": r.status.value,
        "silent": r.silent,
        "last_event_time": _time(r.last_event),
        "has_children": r.has_children,
        "kpis": {k: figure_json(f) for k, f in sorted(r.figures.items())},
    }


def alert_json(a: Alert) -> dict[str, Any]:
    return {
        "id": a.id,
        "alertname": a.alertname,
        "kpi": a.kpi,
        "unit": a.unit,
        "window": a.window,
        "severity": a.severity,
        "state": a.state,
        # When it fired (or began pending): null when the alerts service did not say.
        "since": _time(a.since),
        "acknowledged_by": a.acknowledged_by,
        "acknowledged_at": _time(a.acknowledged_at),
    }


def overview_json(ov: Overview) -> dict[str, Any]:
    """Worst first, like the page: ``rows`` are the focused unit's units (the drill-down)."""
    return {
        "provinces": [unit_json(p) for p in ov.provinces],
        "focus": unit_json(ov.focus) if ov.focus else None,
        "path": [unit_json(u) for u in ov.path],
        "kpis": [
            {
                "kpi": k.kpi,
                "name_vi": k.name_vi,
                "name_en": k.name_en,
                "day": figure_json(k.day) if k.day else None,
                "month": figure_json(k.month) if k.month else None,
            }
            for k in ov.kpis
        ],
        "rows": [row_json(r) for r in ov.rows],
        "below_target": [figure_json(f) for f in ov.below],
        "below_target_total": ov.below_total,
        "silent": [row_json(r) for r in ov.silent],
        # null: not read (see "sources") or no alerts source ("alerts_configured": false)
        "alerts": None if ov.alerts is None else [alert_json(a) for a in ov.alerts],
        "alerts_configured": ov.alerts_configured,
        "stale": ov.stale,
        "data_time": _time(ov.data_time),
        "sources": [
            {
                "kind": s.kind,
                "url": s.url,
                "ok": s.ok,
                "error": s.error,
                "last_ok_at": _time(s.last_ok_at),
            }
            for s in ov.sources
        ],
    }
