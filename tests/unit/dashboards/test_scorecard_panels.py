"""The scorecard, dossier and ranking panels: what they say comes from the data files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from services.common.kpis import KpiCatalogue
from services.common.scorecard import SCORECARD_766, Scorecard
from services.dashboards import promql, rankings, scorecard
from services.dashboards.render import build_all
from services.metrics.dossiers import OUTCOMES


def panels(board: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [p for p in board["panels"] if p["type"] != "row" and kind in (None, p["type"])]


def not_measured_text(board: dict[str, Any]) -> str:
    (panel,) = panels(board, "text")
    content: str = panel["options"]["content"]
    return content


def test_every_indicator_not_measured_is_listed_with_its_maximum_and_reason() -> None:
    card = Scorecard.load()
    text = not_measured_text(build_all()[scorecard.FILE])
    rows = {line.split(" | ")[0].strip("| ") for line in text.splitlines() if line.startswith("| ")}
    not_measured = {i.id for i in card.indicators if not i.measured}
    assert not_measured <= rows and not rows & {i.id for i in card.indicators if i.measured}
    for ind in card.indicators:
        if not ind.measured:
            assert f"| {ind.id} | {ind.name_vi} | {ind.max_points} | " in text
            assert ind.not_measured_vi.replace("|", "/") in text
    for group in card.groups:
        assert f"| **{group.number}** | **{group.name_vi}** | **{group.max_points}** |" in text
    assert "**Đo được ở đây: 38/100 điểm**" in text
    assert "**Chưa đo ở đây: 62/100 điểm**" in text


def test_marking_2_1_not_measured_changes_the_panel_and_nothing_is_invented(
    tmp_path: Path,
) -> None:
    raw = json.loads(SCORECARD_766.read_text("utf-8"))
    for group in raw["groups"]:
        for ind in group["indicators"]:
            if ind["id"] == "2.1":
                ind.update(kpi=None, not_measured_en="lead's call", not_measured_vi="chưa dùng")
    path = tmp_path / "scorecard-766.json"
    path.write_text(json.dumps(raw, ensure_ascii=False), "utf-8")
    board = build_all(card=Scorecard.load(path))[scorecard.FILE]
    text = not_measured_text(board)
    assert "| 2.1 | Tỷ lệ hồ sơ xử lý trước hạn, đúng hạn | 20 | chưa dùng |" in text
    assert "**Đo được ở đây: 18/100 điểm**" in text
    assert "**Chưa đo ở đây: 82/100 điểm**" in text


def test_points_panels_read_the_scorecard_rules_with_two_decimals() -> None:
    board = build_all()[scorecard.FILE]
    points = [p for p in panels(board) if "egov_scorecard_" in json.dumps(p.get("targets"))]
    assert [p["title"] for p in points] == [
        "Điểm đo được",
        "Mất nhiều điểm nhất",
        "Điểm theo nhóm",
    ]
    for panel in points:
        assert panel["fieldConfig"]["defaults"]["decimals"] == scorecard.POINTS_DECIMALS == 2
        assert all('{unit="$unit"}' in t["expr"] for t in panel["targets"])
    assert "38 of the 100 points" in points[0]["description"]


def test_dossier_tiles_show_every_outcome_the_workers_export_in_the_reports_order() -> None:
    board = build_all()[scorecard.FILE]
    tiles = [p for p in panels(board, "stat") if "egov_dossiers" in p["targets"][0]["expr"]]
    assert len(tiles) == 3
    for tile, window in zip(tiles, ("day", "month", "year"), strict=True):
        exprs = [t["expr"] for t in tile["targets"]]
        assert exprs == [promql.dossiers(window, o) for o in OUTCOMES]
        assert [t["legendFormat"] for t in tile["targets"]] == [vi for _, vi in scorecard.OUTCOMES]


def test_rankings_rank_only_at_min_volume_and_say_so() -> None:
    board = build_all()[rankings.FILE]
    tables = [p for p in panels(board, "table") if "scorecard" not in p["targets"][0]["expr"]]
    assert len(tables) == 3
    for panel in tables:
        assert rankings.LOW_VOLUME_RULE in panel["description"]
        assert all(promql.MIN_VOLUME in t["expr"] for t in panel["targets"])
        columns = panel["transformations"][1]["options"]["renameByName"]
        assert columns["Value #B"] == rankings.VOLUME  # the volume beside every rate
    ranked, lowest, unranked = tables
    assert all(
        ">= on (kpi) group_left ()" in t["expr"] for t in [*ranked["targets"], *lowest["targets"]]
    )
    assert all("> 0 < on (kpi) group_left ()" in t["expr"] for t in unranked["targets"])
    assert ranked["targets"][0]["expr"].startswith("sort_desc(")
    assert "bottomk by (kpi) (5," in lowest["targets"][0]["expr"]
    for panel in (ranked, unranked):  # apart too: highest rate first, as on the wall
        assert panel["options"]["sortBy"] == [{"displayName": rankings.RATE, "desc": True}]


def test_the_score_ranking_leaves_out_units_with_a_low_volume_indicator() -> None:
    board = build_all()[rankings.FILE]
    ranked, apart = [p for p in panels(board, "table") if "scorecard" in p["targets"][0]["expr"]]
    low = "count by (unit) (unit_indicator:egov_scorecard_volume:$window < on (kpi)"
    assert ranked["targets"][0]["expr"].startswith("sort_desc(")
    assert f"unless on (unit) {low}" in ranked["targets"][0]["expr"]
    assert f"and on (unit) {low}" in apart["targets"][0]["expr"]
    for panel in (ranked, apart):
        assert "min_volume" in panel["description"]
        assert all(promql.MIN_VOLUME in t["expr"] for t in panel["targets"])
        columns = panel["transformations"][1]["options"]["renameByName"]
        assert columns["Value #D"] == rankings.VOLUME


def test_the_ranking_kpi_is_one_of_the_catalogue() -> None:
    board = build_all()[rankings.FILE]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    kpi = variables["kpi"]
    assert not kpi.get("multi") and not kpi.get("includeAll")
    values = [option.rsplit(" : ", 1)[1] for option in kpi["query"].split(", ")]
    assert values == list(KpiCatalogue.load().ids) and kpi["current"]["value"] in values
    assert variables["window"]["query"].endswith("Năm nay : year")
