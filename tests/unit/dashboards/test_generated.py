"""The committed dashboards are what the generator produces, and the SDK's model accepts them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel

from services.common.kpis import KpiCatalogue
from services.dashboards import cli
from services.dashboards.render import DASHBOARDS_DIR, build_all, render_all

FILES = (
    "province-overview.json",
    "unit-detail.json",
    "pipeline-health.json",
    "scorecard-766.json",
    "rankings.json",
)


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["grafana", *argv])
    code: int = args.handler(args)
    return code


def contained(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Where ``expected`` is not inside ``actual`` (the decoder may add defaults, not drop)."""
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{path}: object became {type(actual).__name__}"]
        return [
            problem
            for key, value in expected.items()
            for problem in (
                contained(value, actual[key], f"{path}.{key}")
                if key in actual
                else [f"{path}.{key}: dropped by the SDK model"]
            )
        ]
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return [f"{path}: list changed"]
        return [
            p
            for i, (e, a) in enumerate(zip(expected, actual, strict=True))
            for p in contained(e, a, f"{path}[{i}]")
        ]
    return [] if expected == actual else [f"{path}: {expected!r} became {actual!r}"]


def test_committed_json_is_what_the_generator_produces() -> None:
    rendered = render_all()
    assert set(rendered) == set(FILES)
    committed = {path.name for path in DASHBOARDS_DIR.glob("*.json")}
    assert committed == set(FILES), "stray or missing files in deploy/grafana/dashboards/"
    for name, text in rendered.items():
        assert (DASHBOARDS_DIR / name).read_text("utf-8") == text, (
            f"{name} drifted from the generator: run `egov-pulse grafana generate`"
        )


def test_generate_check_flags_a_stale_file(tmp_path: Path) -> None:
    assert run_cli("generate", "--output", str(tmp_path)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert run_cli("generate", "--output", str(tmp_path), "--check") == 0
    stale = tmp_path / "unit-detail.json"
    stale.write_text(stale.read_text("utf-8").replace("Chi tiết", "Chi tiet"), "utf-8")
    assert run_cli("generate", "--output", str(tmp_path), "--check") == 1
    assert "Chi tiet" in stale.read_text("utf-8"), "--check must not rewrite the file"


@pytest.mark.parametrize("name", FILES)
def test_json_round_trips_through_the_sdk_model(name: str) -> None:
    register_default_plugins()
    model = json.loads((DASHBOARDS_DIR / name).read_text("utf-8"))
    decoded = Dashboard.from_json(model)
    again = json.loads(json.dumps(decoded, cls=JSONEncoder))
    assert contained(model, again) == []
    # Decoding typed every panel's options and queries, not a bag of unknown data.
    for panel in decoded.panels or []:
        if isinstance(panel, Panel):
            assert not isinstance(panel.options, dict), f"{panel.title}: untyped options"
            for target in panel.targets or []:
                assert type(target).__module__.endswith("models.prometheus"), panel.title


def test_the_model_check_catches_an_unknown_field() -> None:
    register_default_plugins()
    model = json.loads((DASHBOARDS_DIR / FILES[0]).read_text("utf-8"))
    model["panels"][1]["gridPosition"] = {"h": 1}
    again = json.loads(json.dumps(Dashboard.from_json(model), cls=JSONEncoder))
    assert contained(model, again) == ["$.panels[1].gridPosition: dropped by the SDK model"]


def test_every_panel_has_a_vietnamese_title_and_an_english_description() -> None:
    for name, model in build_all().items():
        assert model["uid"].startswith("egov-") and model["timezone"] == "Asia/Ho_Chi_Minh"
        ids = [panel["id"] for panel in model["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in model["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["title"] and panel["description"], (name, panel["title"])
            if panel["type"] == "text":  # written from data when generated: no query
                assert panel["options"]["content"] and not panel.get("targets"), panel["title"]
                continue
            assert panel["targets"], (name, panel["title"])
            assert all(t["datasource"]["uid"] == "prometheus" for t in panel["targets"])


def test_the_overview_has_one_panel_per_kpi_with_its_targets() -> None:
    catalogue = KpiCatalogue.load()
    overview = build_all(catalogue)["province-overview.json"]
    stats = [p for p in overview["panels"] if p["type"] == "stat"]
    assert [p["title"] for p in stats] == [k.name_vi for k in catalogue.kpis]
    for panel, kpi in zip(stats, catalogue.kpis, strict=True):
        # Coloured by the target in force (overrides included), never the catalogue's:
        # green unless the query names the rate a miss, which is red (review 79).
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert steps == [{"color": "green", "value": None}]
        in_force = f'unit:egov_kpi_target:ratio{{unit="$province", kpi="{kpi.id}"}}'
        rates = [t for t in panel["targets"] if t["refId"] in ("A", "B")]
        assert all(in_force in t["expr"] and "Chưa đạt mục tiêu" in t["expr"] for t in rates)
        red = {
            o["matcher"]["options"]
            for o in panel["fieldConfig"]["overrides"]
            if {"mode": "fixed", "fixedColor": "red"} in [p["value"] for p in o["properties"]]
        }
        assert red == {"Hôm nay · Chưa đạt mục tiêu", "Tháng này · Chưa đạt mục tiêu"}
        assert all(f'kpi="{kpi.id}"' in t["expr"] for t in panel["targets"])
    variables = {v["name"]: v for v in overview["templating"]["list"]}
    assert 'egov_unit_info{level="province"}' in variables["province"]["query"]
