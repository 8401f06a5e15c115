"""Review 73: every place a percentage or a target comparison is shown or judged.

Checked against /work/shared/DOMAIN.md ("What makes a rate trustworthy", "Displaying a
rate"): small volumes lie (1 unsigned document of 2 is 50 %: "alerts need a minimum
volume"), so a rate below its KPI's ``min_volume`` is shown but never judged: the wall
marks it "Chưa đủ số liệu để đánh giá" (``figures.classify`` LOW_VOLUME), the alerts
never fire on it (``conditions.kpi_below_target``), /v1/kpis gives ``meets_target:
null``, and the wall's worst-units list leaves it out (``board.worst_units``: "a unit at
1 of 2 is never listed as the province's worst"). Grafana, the other surface the IOC
wall shows, judges it all the same.

A small exposition server stands in for a metrics worker (as in
tests/integration/dashboards/test_rate_ends.py); the repo's recording rules run in a
real Prometheus; the committed dashboards' queries are evaluated there and read as
Grafana reads them (thresholds, mappings).

Each test was a strict xfail for a defect found here; all four fixed 2026-12-06 (the
table judges only judged rates of the province's units, the stats say "too few to
judge" in a neutral colour, a target finer than a basis point is refused).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from services.alerts.http import Unprocessable, target_bp
from services.common.figures import Figure, Standing, classify
from services.common.kpis import KpiCatalogue
from services.common.rates import BP_SCALE, format_rate, format_target
from services.common.units import UnitRegistry
from services.dashboards import promql
from services.dashboards.render import DASHBOARDS_DIR
from services.wall.board import worst_units
from tests.integration.dashboards.prometheus import (
    Prometheus,
    figure_lines,
    scraping,
    substitute,
)
from tests.unit.dashboards.test_rate_display import grafana_percentunit

pytestmark = pytest.mark.integration

PROVINCE = "19"  # the dashboards tests' $province (Thái Nguyên)
KPI = "document_signing"  # target 100 % (Chỉ thị 02/CT-TTg), min_volume 20
EXCHANGE = "document_electronic"  # target 90 % for a province (Nghị quyết 17/NQ-CP), min 20
WINDOWS = ("day", "month")

# Counts of KPI today, per commune of the province (chosen below, in code order):
FEW = (1, 2)  # 1 unsigned of 2: 50 %, below min_volume (20): too few to judge
JUDGED = (10, 20)  # 50 % at min_volume: judged, below target
NONG_CONG_LIKE = (11_703, 11_710)  # 99.94 %: below the 100 % target, judged
PROVINCE_COUNTS = (11_714, 11_732)  # the communes' sum: judged, below 100 %
PROVINCE_EXCHANGED = (1, 2)  # 00:20 Vietnam time: 2 documents today, 1 sent electronically


def _units() -> dict[str, tuple[str, str]]:
    registry = UnitRegistry.from_dir()
    current = registry.units("2025")
    communes = sorted(
        (u for u in current if u.parent == PROVINCE and u.level == "commune"),
        key=lambda u: u.code,
    )[:3]
    province = next(u for u in current if u.code == PROVINCE)
    return {PROVINCE: (province.full_name, province.level)} | {
        u.code: (u.full_name, u.level) for u in communes
    }


UNITS = _units()
FEW_UNIT, JUDGED_UNIT, LARGE_UNIT = [c for c in UNITS if c != PROVINCE]
COUNTS = {
    PROVINCE: PROVINCE_COUNTS,
    FEW_UNIT: FEW,
    JUDGED_UNIT: JUDGED,
    LARGE_UNIT: NONG_CONG_LIKE,
}


def _exposition() -> bytes:
    catalogue = KpiCatalogue.load()
    kpi = next(k for k in catalogue.kpis if k.id == KPI)
    exchange = next(k for k in catalogue.kpis if k.id == EXCHANGE)
    lines = []
    for code, (num, den) in COUNTS.items():
        name, level = UNITS[code]
        parent = "" if code == PROVINCE else PROVINCE
        lines.append(
            f'egov_unit_info{{unit="{code}",name="{name}",level="{level}",parent="{parent}"}} 1'
        )
        target = kpi.target_for(level)
        lines.append(f'egov_kpi_target_ratio{{kpi="{KPI}",unit="{code}"}} {target!r}')
        lines += figure_lines(KPI, code, WINDOWS, num, den)
    target = exchange.target_for("province")
    lines.append(f'egov_kpi_target_ratio{{kpi="{EXCHANGE}",unit="{PROVINCE}"}} {target!r}')
    lines += figure_lines(EXCHANGE, PROVINCE, WINDOWS, *PROVINCE_EXCHANGED)
    return ("\n".join(lines) + "\n").encode()


def _figure(code: str, kpi: str = KPI) -> Figure:
    """The same figure as the wall and the alerts read it from /v1/kpis."""
    num, den = COUNTS[code] if kpi == KPI else PROVINCE_EXCHANGED
    target_bp = BP_SCALE if kpi == KPI else 9000
    name, level = UNITS[code]
    return Figure(kpi, code, "day", num, den, target_bp, 20, name, name, level=level,
                  province=PROVINCE, parent=None if code == PROVINCE else PROVINCE)  # fmt: skip


def _panel(dashboard: str, title_start: str) -> dict[str, Any]:
    board = json.loads((DASHBOARDS_DIR / dashboard).read_text("utf-8"))
    found = [p for p in board["panels"] if p.get("title", "").startswith(title_start)]
    assert len(found) == 1, [p.get("title") for p in board["panels"]]
    return found[0]


def _threshold_colour(panel: dict[str, Any], value: float) -> str:
    """The colour Grafana's absolute thresholds give ``value`` (the last step at or under it)."""
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    colour = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            colour = step["color"]
    return str(colour)


def _display_name(target: dict[str, Any], labels: dict[str, str]) -> str:
    """The series' name as Grafana shows it: the target's legend, labels filled in."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m[1], ""), target["legendFormat"])


def _colour(panel: dict[str, Any], name: str, value: float) -> str:
    """The colour Grafana gives a series: a fixed colour its name's override sets, else
    the thresholds' (``_threshold_colour``)."""
    for override in panel["fieldConfig"]["overrides"]:
        matcher = override["matcher"]
        if matcher["id"] == "byName" and matcher["options"] == name:
            for prop in override["properties"]:
                if prop["id"] == "color" and prop["value"].get("mode") == "fixed":
                    return str(prop["value"]["fixedColor"])
    return _threshold_colour(panel, value)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    rules = ("province:egov_kpi_numerator:day", "unit:egov_kpi_target:ratio",
             "unit:egov_unit_province:info", "unit:egov_kpi_ratio:day",
             "kpi:egov_kpi_min_volume:count")  # fmt: skip
    with scraping(tmp_path_factory.mktemp("prometheus"), _exposition(), rules) as running:
        assert running.wait_for(substitute(promql.shortfall()))
        yield running


def _below_target_rows(prometheus: Prometheus) -> dict[str, float]:
    """The rows of the province overview's "below target today" table (its query A, the
    gap column that decides which rows there are), unit -> gap."""
    panel = _panel("province-overview.json", "Đơn vị dưới mục tiêu hôm nay")
    (gap,) = [t for t in panel["targets"] if t["refId"] == "A"]
    result = prometheus.query(substitute(gap["expr"]))
    return {s["metric"]["unit"]: float(s["value"][1]) for s in result if s["metric"]["kpi"] == KPI}


def test_guard_the_judged_misses_are_listed_alike_by_grafana_and_the_wall(
    prometheus: Prometheus,
) -> None:
    # A unit with enough volume under the 100 % signing target: on both, 99.94 % shown.
    rows = _below_target_rows(prometheus)
    wall = {r.unit.code for r in worst_units([_figure(c) for c in COUNTS], PROVINCE)}
    assert {JUDGED_UNIT, LARGE_UNIT} <= set(rows) and wall == {JUDGED_UNIT, LARGE_UNIT}
    assert _figure(LARGE_UNIT).status is Standing.BELOW
    assert format_rate(*NONG_CONG_LIKE, "en") == "99.94%"


def test_a_unit_too_small_to_judge_is_not_listed_below_target(prometheus: Prometheus) -> None:
    assert _figure(FEW_UNIT).status is Standing.LOW_VOLUME  # the wall, the alerts
    assert FEW_UNIT not in {r.unit.code for r in worst_units([_figure(FEW_UNIT)], PROVINCE)}
    rows = _below_target_rows(prometheus)
    assert FEW_UNIT not in rows, f"1 of 2 listed below target with a gap of {rows[FEW_UNIT]}"


def test_a_province_figure_too_small_to_judge_is_not_coloured_as_a_miss(
    prometheus: Prometheus,
) -> None:
    assert _figure(PROVINCE, EXCHANGE).status is Standing.LOW_VOLUME
    panel = _panel("province-overview.json", "Tỷ lệ văn bản trao đổi dưới dạng điện tử")
    (today,) = [t for t in panel["targets"] if t["refId"] == "A"]
    (series,) = prometheus.wait_for(substitute(today["expr"]), 20)
    value = float(series["value"][1])
    assert grafana_percentunit(value, 2) == format_rate(*PROVINCE_EXCHANGED, "en") == "50.00%"
    shown = _display_name(today, series["metric"])
    assert "Chưa đủ số liệu để đánh giá" in shown  # the wall's words beside the figure
    # The colour a judged miss gets on this panel (10 of 20, at min_volume, against 90 %):
    # named a miss by its query since 2026-12-06 (coloured by the target in force).
    missed = _colour(panel, "Hôm nay · Chưa đạt mục tiêu", JUDGED[0] / JUDGED[1])
    assert missed == "red"
    assert _colour(panel, shown, value) != missed, "1 of 2 coloured as a missed target"


def test_the_province_is_not_listed_among_its_own_units_below_target(
    prometheus: Prometheus,
) -> None:
    # The wall's lists name the province's units, never the province (board.worst_units,
    # overview: "The province is the root: its lists name its units").
    assert _figure(PROVINCE).status is Standing.BELOW
    assert PROVINCE not in {r.unit.code for r in worst_units([_figure(PROVINCE)], PROVINCE)}
    assert PROVINCE not in _below_target_rows(prometheus)


def test_a_target_finer_than_a_basis_point_is_refused_not_moved() -> None:
    # An operator asks for 99.995 %: stored as 100 %, a unit at exactly 99.995 % (19,999
    # of 20,000 signed) is judged below the target it meets, and the wall, the alerts and
    # Grafana all cite "100 %", a target nobody set.
    asked = {"target": 0.99995, "reason": "kế hoạch tỉnh"}
    try:
        stored = target_bp(asked)
    except Unprocessable:
        return
    assert classify(19_999, 20_000, stored, 20) is Standing.MEETS, (
        f"asked 99.995 %, stored {format_target(stored, 'en')}: 19,999 of 20,000 judged "
        f"{classify(19_999, 20_000, stored, 20).value}"
    )
