"""Grafana shows rates as the wall and the alerts do: two decimals, Nông Cống at 99.94%."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.rates import format_rate
from services.dashboards.render import DASHBOARDS_DIR


def panels() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(DASHBOARDS_DIR.glob("*.json")):
        for panel in json.loads(path.read_text("utf-8"))["panels"]:
            yield path.name, panel


def rate_panels() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, p)
        for name, p in panels()
        if p.get("fieldConfig", {}).get("defaults", {}).get("unit") == "percentunit"
    ]


def grafana_percentunit(ratio: float, decimals: int) -> str:
    """What Grafana's ``percentunit`` writes: toFixed(100 * ratio, decimals) + "%".

    Grafana's toFixed rounds with JavaScript's Math.round on the float (half up, towards
    +infinity), then pads to ``decimals`` places.
    """
    factor = 10**decimals
    rounded = math.floor(100 * ratio * factor + 0.5) / factor
    return f"{rounded:.{decimals}f}%"


def test_every_rate_panel_shows_two_decimals() -> None:
    found = rate_panels()
    assert len(found) >= 6  # 7 KPI stats, the below-target table, the unit's table, series
    for name, panel in found:
        assert panel["fieldConfig"]["defaults"].get("decimals") == 2, (name, panel["title"])


@pytest.mark.parametrize(("name", "panel"), rate_panels(), ids=lambda v: str(v)[:40])
def test_nong_cong_reads_99_94_in_every_rate_panel(name: str, panel: dict[str, Any]) -> None:
    # Huyện Nông Cống: 11,703 of 11,710 documents signed, exported as a 0..1 ratio.
    decimals = panel["fieldConfig"]["defaults"]["decimals"]
    shown = grafana_percentunit(11_703 / 11_710, decimals)
    assert shown == "99.94%" == format_rate(11_703, 11_710, "en")


def test_the_float_ratio_agrees_with_the_wall_only_away_from_the_ends() -> None:
    # Why the panels no longer hand Grafana the float ratio (promql.shown_rate; in a real
    # Prometheus: tests/integration/dashboards/test_rate_ends.py).
    for num, den in [(29, 100), (1_170, 1_171), (24_374, 25_000), (20, 25), (38_000, 38_123)]:
        assert grafana_percentunit(num / den, 2) == format_rate(num, den, "en")
    assert grafana_percentunit(19_999 / 20_000, 2) == "100.00%"  # the wall says 99.99%
    assert format_rate(19_999, 20_000, "en") == "99.99%"
    assert grafana_percentunit(9_999 / 10_000, 2) == "99.99%"  # the basis points: agree


PER_UNIT_TABLES = {"rankings.json", "Đơn vị dưới mục tiêu hôm nay (xấu nhất trước)"}
"""The tables of every unit of a level: they keep the float ratio (their cost at 10,000
units, docs/dashboards.md); every other rate panel shows the wall's basis points."""


def test_no_rate_panel_but_the_per_unit_tables_hands_grafana_the_float_ratio() -> None:
    checked = 0
    for name, panel in rate_panels():
        if name in PER_UNIT_TABLES or panel["title"] in PER_UNIT_TABLES:
            continue
        for target in panel.get("targets", []):
            assert "egov_kpi_ratio" not in target["expr"], (name, panel["title"])
            checked += 1
    assert checked >= 2 * 11 + 1 + 2 + 2


def test_no_kpi_column_is_labelled_with_the_target_word() -> None:
    # "Chỉ tiêu" named both the KPI and the target; the dashboards say Chỉ số / Mục tiêu.
    text = "".join(p.read_text("utf-8") for p in DASHBOARDS_DIR.glob("*.json"))
    assert "Chỉ tiêu" not in text and "Im lặng" not in text
    assert '"kpi": "Chỉ số"' in text
