"""Merging the workers' answers, and noticing change."""

from __future__ import annotations

from services.wall.snapshot import SourceState, fingerprint, merge_figures
from tests.unit.wall.factories import fig, snapshot


def test_one_figure_per_unit_kpi_window_the_fresher_wins() -> None:
    old, new = fig("01843", 10, 12), fig("01843", 11, 13)
    other = fig("01850", 1, 1)
    assert merge_figures([[old, other], [new]]) == (new, other)


def test_fingerprint_moves_with_a_count_not_with_the_clock() -> None:
    ok = (SourceState("metrics", "http://w1", True),)
    a = fingerprint((fig("19", 1, 2),), (), (), ok)
    assert a == fingerprint((fig("19", 1, 2),), (), (), ok)
    assert a != fingerprint((fig("19", 2, 3),), (), (), ok)
    failed = (SourceState("metrics", "http://w1", False, "timeout"),)
    assert a != fingerprint((fig("19", 1, 2),), (), (), failed)


def test_stale_when_any_worker_failed_or_none_configured() -> None:
    assert not snapshot([]).stale
    assert snapshot([], sources=(SourceState("metrics", "u", False, "x"),)).stale
    assert snapshot([], sources=()).stale
    alerts_down = (SourceState("metrics", "u", True), SourceState("alerts", "a", False, "x"))
    assert not snapshot([], sources=alerts_down).stale
