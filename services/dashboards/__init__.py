"""Grafana dashboards as code: the IOC wall, unit detail, pipeline health, the 766
scorecard and the rankings.

``build_all()`` returns every dashboard as a JSON-ready dict keyed by its file name;
``egov-pulse grafana generate`` writes them into deploy/grafana/dashboards/ and
``egov-pulse grafana push`` upserts them into a running Grafana.
"""

from __future__ import annotations

from services.dashboards.render import DASHBOARDS_DIR, build_all, render_all

__all__ = ["DASHBOARDS_DIR", "build_all", "render_all"]
