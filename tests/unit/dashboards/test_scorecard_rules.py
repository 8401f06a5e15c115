"""The scorecard's recording rules say what data/scorecard-766.json and data/kpis.json say.

deploy/prometheus/rules/egov-scorecard.yml writes the data's figures out in PromQL; these
tests fail when the two part (a KPI's min_volume changed, an indicator measured or not,
its maximum, KPI or points rule), so that Grafana never shows a score the data does not
give. promtool's own tests (deploy/prometheus/rules/tests/egov-scorecard.test.yml) check
the arithmetic on known counts.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from services.common.kpis import KpiCatalogue
from services.common.rates import BP_SCALE
from services.common.scorecard import Scorecard

RULES = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "rules"
SCORECARD_RULES = RULES / "egov-scorecard.yml"
PERIOD_WINDOWS = {"month": "month", "year": "year"}


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(SCORECARD_RULES.read_text("utf-8"))
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def recorded(name: str) -> list[dict[str, Any]]:
    return [rule for rule in rules() if rule.get("record") == name]


def flat(expr: str) -> str:
    return " ".join(expr.split())


def test_min_volume_of_every_kpi_is_the_catalogues() -> None:
    found = {
        rule["labels"]["kpi"]: int(re.fullmatch(r"vector\((\d+)\)", rule["expr"])[1])  # type: ignore[index]
        for rule in recorded("kpi:egov_kpi_min_volume:count")
    }
    assert found == {k.id: k.min_volume for k in KpiCatalogue.load().kpis}


def test_points_are_recorded_for_the_measured_indicators_only_with_their_rule() -> None:
    card = Scorecard.load()
    measured = [i for i in card.indicators if i.measured]
    for period, window in PERIOD_WINDOWS.items():
        points = recorded(f"unit_indicator:egov_scorecard_points:{period}")
        assert sorted(r["labels"]["indicator"] for r in points) == sorted(i.id for i in measured)
        for ind in measured:
            (rule,) = (r for r in points if r["labels"]["indicator"] == ind.id)
            assert rule["labels"] == {"indicator": ind.id, "group": ind.group, "kpi": ind.kpi}
            # Written for a proportion up to a threshold: full-when-none needs new PromQL.
            assert not ind.rule.full_when_none, ind.id
            num = f'egov_kpi_numerator{{kpi="{ind.kpi}", window="{window}"}}'
            den = f'egov_kpi_denominator{{kpi="{ind.kpi}", window="{window}"}}'
            full_at = ind.rule.full_at_bp
            if full_at == BP_SCALE:
                assert flat(rule["expr"]) == (
                    f"{ind.max_points} * max by (unit) ({num}) / (max by (unit) ({den}) > 0)"
                )
            else:  # full points from the threshold: the rate over it, capped at 1
                assert flat(rule["expr"]) == (
                    f"{ind.max_points} * clamp_max( {BP_SCALE} * max by (unit) ({num})"
                    f" / ({full_at} * (max by (unit) ({den}) > 0)), 1 )"
                )
            (top,) = (
                r
                for r in recorded(f"unit_indicator:egov_scorecard_max_points:{period}")
                if f'indicator="{ind.id}"' in r["expr"]
            )
            assert flat(top["expr"]) == (
                f'0 * unit_indicator:egov_scorecard_points:{period}{{indicator="{ind.id}"}}'
                f" + {ind.max_points}"
            )
            (lost,) = (
                r
                for r in recorded(f"unit_indicator:egov_scorecard_lost_points:{period}")
                if r["labels"] == rule["labels"]
            )
            lost_form = "(" if full_at == BP_SCALE else "clamp_min("
            assert flat(lost["expr"]).startswith(f"{ind.max_points} * {lost_form}")
            (volume,) = (
                r
                for r in recorded(f"unit_indicator:egov_scorecard_volume:{period}")
                if r["labels"] == rule["labels"]
            )
            assert flat(volume["expr"]) == f"max by (unit) ({den}) > 0"
