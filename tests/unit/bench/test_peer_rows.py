"""The peer comparison's rows: equal figures before any speed, and each side's timing."""

from __future__ import annotations

from bench.peers.compare import _side_by_side
from bench.peers.ours import Ours, ours_rows
from bench.peers.quix import quix_rows

FIGURES = {"38": [3, 4], "14758": [1, 2]}


def measured(figures: dict[str, list[int]] = FIGURES) -> Ours:
    return Ours(figures, 150 * 2**20, 10.0, 21_000.0, 19_000.0, 204)


def test_ours_speed_only_with_equal_figures() -> None:
    wrong = ours_rows(measured({"38": [3, 5], "14758": [1, 2]}), "k", FIGURES, "n")
    assert [(r["metric"], r["value"]) for r in wrong] == [("ours: k figures equal to reference", 0)]
    right = {r["metric"]: r for r in ours_rows(measured(), "k", FIGURES, "n")}
    assert right["ours: k figures equal to reference"]["value"] == 1
    # Timed from its first flush on a filled topic, and (stricter) from its assignment.
    assert right["ours: k throughput"]["value"] == 21_000
    assert "first flush committed (204 events," in right["ours: k throughput"]["notes"]
    assert right["ours: k throughput from assignment"]["value"] == 19_000


def test_both_rates_of_ours_stand_beside_quix_one() -> None:
    quix = {"figures": FIGURES, "rate": 14_000.0, "wall_seconds": 12.0, "peak_rss_mib": 400.0}
    rows = _side_by_side(
        ours_rows(measured(), "k", FIGURES, "n") + quix_rows(quix, "k", FIGURES, "n")
    )
    by = {r["metric"]: r for r in rows}
    for name in ("ours: k throughput", "ours: k throughput from assignment"):
        assert by[name]["reference"] == "quix: k throughput"
        assert by[name]["reference_value"] == 14_000
    assert "first event consumed" in by["quix: k throughput"]["notes"]
