"""Grafana shows rates as the wall and the alerts do: two decimals, Nông Cống at 99.94%."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest

from services.common.rates import format_rate
from services.dashboards.panels import RATE_DECIMALS
from services.dashboards.promql import HALF_UP_NUDGE
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


def grafana_cell(value: float, decimals: int, mappings: list[dict[str, Any]]) -> str:
    """What a Grafana cell shows: the text of the first range mapping holding ``value``
    (both ends inclusive, as Grafana's ``getValueMappingResult``), else ``percentunit``."""
    for mapping in mappings:
        assert mapping["type"] == "range", mapping
        low, high = mapping["options"]["from"], mapping["options"]["to"]
        if (low is None or value >= low) and (high is None or value <= high):
            return str(mapping["options"]["result"]["text"])
    return grafana_percentunit(value, decimals)


def field_mappings(panel: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The value mappings a panel's override gives the field named ``field``."""
    for override in panel["fieldConfig"]["overrides"]:
        if override["matcher"] == {"id": "byName", "options": field}:
            for prop in override["properties"]:
                if prop["id"] == "mappings":
                    return list(prop["value"])
    return []


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


def column_names(panel: dict[str, Any]) -> set[str]:
    """The names a table's "organize" transformation gives its columns."""
    return {
        name
        for t in panel.get("transformations", [])
        if t["id"] == "organize"
        for name in t["options"].get("renameByName", {}).values()
    }


# The renamed rate column of each per-unit table (the tables' "organize" transformation).
PER_UNIT_RATE_COLUMNS = {"rankings.json": "Tỷ lệ", "province-overview.json": "Tỷ lệ hôm nay"}


@pytest.mark.parametrize("den", [4_000, 20_000, 30_000, 11_710])
def test_the_per_unit_tables_show_every_rate_as_the_wall(den: int) -> None:
    # Until 2026-12-05 19,999 of 20,000 read "100.00%" there, 1 of 30,000 "0.00%" and 9 of
    # 4,000 "0.22%" (the wall: 99.99%, 0.01%, 0.23%). Their queries now nudge the float
    # (promql.HALF_UP_NUDGE) and value mappings write the ends (panels.rate_ends): every
    # count of these denominators, and the largest ones, read as the wall reads them.
    counts = [(num, den) for num in range(den + 1)]
    counts += [(0, 10**9), (1, 10**9), (10**9 - 1, 10**9), (10**9, 10**9)]
    tables = [
        (name, panel)
        for name, panel in rate_panels()
        if panel["type"] == "table" and name in PER_UNIT_RATE_COLUMNS
        and PER_UNIT_RATE_COLUMNS[name] in column_names(panel)
    ]  # fmt: skip
    assert len(tables) == 4  # three rankings tables and the below-target one
    for name, panel in tables:
        mappings = field_mappings(panel, PER_UNIT_RATE_COLUMNS[name])
        assert mappings, (name, panel["title"])
        assert f"+ {HALF_UP_NUDGE!r})" in " ".join(t["expr"] for t in panel["targets"])
        for num, d in counts:
            shown = grafana_cell(num / d + HALF_UP_NUDGE, RATE_DECIMALS, mappings)
            assert shown == format_rate(num, d, "en"), (name, panel["title"], num, d)


def test_a_gap_to_a_missed_target_never_reads_zero() -> None:
    # 22,499 of 25,000 against 90%: the unit misses by 0.004 points.
    (panel,) = [p for n, p in panels() if p["title"] in PER_UNIT_TABLES]
    mappings = field_mappings(panel, "Thiếu so với mục tiêu")
    assert grafana_cell(0.9 - 22_499 / 25_000, RATE_DECIMALS, mappings) == "< 0.01%"
    assert grafana_cell(0.9 - 22_000 / 25_000, RATE_DECIMALS, mappings) == "2.00%"


def test_every_level_column_names_the_level_as_the_wall() -> None:
    # The tables' "Cấp" cells read "commune" and "district" until 2026-12-05.
    tables = [(n, p) for n, p in panels() if p["type"] == "table" and "Cấp" in column_names(p)]
    assert len(tables) >= 3  # below target, silent units, the operators' targets
    for name, panel in tables:
        mappings = field_mappings(panel, "Cấp")
        assert mappings, (name, panel["title"])
        (names,) = [m["options"] for m in mappings if m["type"] == "value"]
        assert {k: v["text"] for k, v in names.items()} == {
            "commune": "Xã, phường", "district": "Huyện", "department": "Sở, ngành",
            "province": "Tỉnh",
        }  # fmt: skip
