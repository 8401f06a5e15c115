"""Render every dashboard to the JSON that Grafana provisions and the push command sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog.encoder import JSONEncoder

from services.common.kpis import KpiCatalogue
from services.common.scorecard import Scorecard
from services.dashboards import overview, pipeline, rankings, scorecard, unit_detail

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = REPO / "deploy" / "grafana" / "dashboards"


def build_all(
    catalogue: KpiCatalogue | None = None, card: Scorecard | None = None
) -> dict[str, dict[str, Any]]:
    """Every dashboard as a JSON-ready dict, keyed by its file name."""
    kpis = catalogue or KpiCatalogue.load()
    boards = {
        overview.FILE: overview.build(kpis),
        unit_detail.FILE: unit_detail.build(kpis),
        pipeline.FILE: pipeline.build(),
        scorecard.FILE: scorecard.build(card or Scorecard.load(kpi_ids=kpis.ids)),
        rankings.FILE: rankings.build(kpis),
    }
    return {name: _plain(board.build()) for name, board in boards.items()}


def to_text(model: dict[str, Any]) -> str:
    """Stable text: sorted keys and a final newline, so a diff shows only real changes."""
    return json.dumps(model, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def render_all(catalogue: KpiCatalogue | None = None) -> dict[str, str]:
    return {name: to_text(model) for name, model in build_all(catalogue).items()}


def write_all(directory: Path = DASHBOARDS_DIR) -> list[Path]:
    """Write every dashboard into ``directory``; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _plain(model: object) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(json.dumps(model, cls=JSONEncoder))
    return plain
