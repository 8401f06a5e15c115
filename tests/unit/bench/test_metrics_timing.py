"""The metrics benchmark's timing: its phases on the worker's commit clock, its ceiling's
first batch."""

from __future__ import annotations

import pytest

from bench.common import Commit, CommitSpan
from bench.metrics import Ceiling, FilledRun

T0 = 1_796_000_000.0
# A phase after others: 12,000 records counted before; 400 batch records of ~100 events,
# 40 in the first flush (at T0), the last committed 0.8 s later.
SPAN = CommitSpan(
    Commit(12_000, T0 - 30, 30),
    Commit(12_040, T0, 30, T0 + 0.015),
    Commit(12_380, T0 + 0.75, 30, T0 + 0.77),
    Commit(12_400, T0 + 0.8, 30, T0 + 0.835),
)


def test_a_filled_phase_is_timed_between_two_commits_over_the_events_after_the_first() -> None:
    run = FilledRun(SPAN, 40_000, 0.9, 44_000.0, 12)
    assert run.first_events == 4_000
    assert run.rate == pytest.approx(36_000 / 0.8)
    notes = run.notes()
    assert "from its first flush committed (4,000 events)" in notes
    assert "0.800 s, over the 36,000 events after the first" in notes
    assert "commit clock" in notes and "rebalance" not in notes
    # The positions polled would have dated it 0.015 s and 0.035 s late: 0.82 s.
    assert f"polled every 20 ms, as before: {36_000 / 0.82:,.0f} events/s" in notes


def test_from_the_worker_let_go_every_event_counts_and_the_first_flush_is_inside() -> None:
    """Let go 0.1 s before the first flush committed: 40,000 events over 0.9 s, against
    36,000 over 0.8 s for the row timed from the first commit."""
    run = FilledRun(SPAN, 40_000, 0.9, 44_000.0, 12, let_go_at=T0 - 0.1)
    assert run.rate_from_let_go == pytest.approx(40_000 / 0.9)
    assert run.rate_from_let_go < run.rate
    assert FilledRun(SPAN, 40_000, 0.9, 44_000.0, 12).rate_from_let_go is None  # not timed
    assert FilledRun(SPAN, 40_000, 0.9, 44_000.0, 12, T0 + 1).rate_from_let_go is None


def test_a_long_pause_or_a_claim_while_counting_is_said() -> None:
    paused = FilledRun(SPAN, 40_000, 7.5, 5_000.0, 12)
    assert "paused 7.5 s, beyond its" in paused.notes()
    claimed = CommitSpan(SPAN.start, SPAN.first, SPAN.before_last, Commit(12_400, T0 + 0.8, 36))
    said = FilledRun(claimed, 40_000, 0.9, 44_000.0, 12).notes()
    assert "partitions claimed again while counting" in said


def test_the_ceiling_says_what_its_first_batch_held_and_its_rate_without_it() -> None:
    ceiling = Ceiling(104_000, 24_000, 0.1)
    assert ceiling.rate == pytest.approx(1_040_000)
    assert ceiling.rate_after_first == pytest.approx(800_000)
    assert "first batch held 24,000 events" in ceiling.notes()
    assert "800,000 events/s" in ceiling.notes()
    assert Ceiling(10, 10, 0.0).rate == 0.0
