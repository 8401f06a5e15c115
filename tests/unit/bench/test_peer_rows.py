"""The peer comparison's rows: equal figures before any speed, and each side's timing."""

from __future__ import annotations

from bench.common import Commit, CommitSpan
from bench.peers.compare import _side_by_side
from bench.peers.ours import CLAIMED_BY, Ours, ours_rows
from bench.peers.quix import quix_rows

FIGURES = {"38": [3, 4], "14758": [1, 2]}
T0 = 1_796_000_000.0  # PostgreSQL's clock, seconds since the epoch
# 10,000 events: claimed at T0, 200 counted by the first flush at T0 + 0.3, the last
# committed at T0 + 0.79 (9,800 in 0.49 s), /v1/kpis seen right at T0 + 0.85.
SPAN = CommitSpan(
    Commit(0, None, 0),
    Commit(200, T0 + 0.3, 24, T0 + 0.31),
    Commit(9_500, T0 + 0.75, 24),
    Commit(10_000, T0 + 0.79, 24),
)


def measured(figures: dict[str, list[int]] = FIGURES, epoch: int = 1) -> Ours:
    return Ours(figures, 150 * 2**20, 10.0, 10_000, SPAN, T0, CLAIMED_BY, epoch, T0 + 0.85)


def test_ours_speed_only_with_equal_figures() -> None:
    wrong = ours_rows(measured({"38": [3, 5], "14758": [1, 2]}), "k", FIGURES, "n")
    assert [(r["metric"], r["value"]) for r in wrong] == [("ours: k figures equal to reference", 0)]
    right = {r["metric"]: r for r in ours_rows(measured(), "k", FIGURES, "n")}
    assert right["ours: k figures equal to reference"]["value"] == 1


def test_ours_is_timed_on_its_commit_clock_from_its_first_flush_to_its_last() -> None:
    right = {r["metric"]: r for r in ours_rows(measured(), "k", FIGURES, "n")}
    rate = right["ours: k throughput"]
    assert rate["value"] == 20_000  # 9,800 events after the first flush in 0.49 s
    assert "first flush committed (200 events)" in rate["notes"]
    assert "0.490 s, over the 9,800 events after the first" in rate["notes"]
    assert "commit clock" in rate["notes"] and "rebalance" not in rate["notes"]
    # Stricter: from the claim, over every event: 10,000 in 0.79 s.
    assigned = right["ours: k throughput from assignment"]
    assert assigned["value"] == round(10_000 / 0.79)
    assert "claim on assignment" in assigned["notes"]
    assert "0.300 s from the claim to its first flush committed" in assigned["notes"]
    # With the publication: to /v1/kpis seen right, 0.06 s after the last commit.
    shown = right["ours: k throughput to /v1/kpis"]
    assert shown["value"] == round(9_800 / 0.55)
    assert "seen 0.060 s after the last flush committed" in shown["notes"]
    assert f"as polled (the timing before): {round(9_800 / 0.54):,}" in shown["notes"]


def test_a_claim_after_the_first_is_said_in_the_notes() -> None:
    again = {r["metric"]: r for r in ours_rows(measured(epoch=2), "k", FIGURES, "n")}
    assert "a rebalance is inside" in again["ours: k throughput"]["notes"]


def test_every_rate_of_ours_stands_beside_quix_one() -> None:
    quix = {"figures": FIGURES, "rate": 14_000.0, "wall_seconds": 12.0, "peak_rss_mib": 400.0}
    rows = _side_by_side(
        ours_rows(measured(), "k", FIGURES, "n") + quix_rows(quix, "k", FIGURES, "n")
    )
    by = {r["metric"]: r for r in rows}
    rates = [m for m in by if m.startswith("ours: k throughput")]
    assert len(rates) == 3
    for name in rates:
        assert by[name]["reference"] == "quix: k throughput"
        assert by[name]["reference_value"] == 14_000
    assert by["ours: k peak RSS"]["reference"] == "quix: k peak RSS"
    assert "first event consumed" in by["quix: k throughput"]["notes"]
