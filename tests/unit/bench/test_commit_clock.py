"""The metrics worker's commit clock: a span of its flushes' commits, and what it counts."""

from __future__ import annotations

import pytest

from bench.common import NO_COMMIT, Commit, CommitSpan

T0 = 1_796_000_000.0


def span(start: Commit = NO_COMMIT, claims: tuple[int, int] = (6, 6)) -> CommitSpan:
    """400 records of 100 events after ``start``: 40 by the first flush, the last at +0.5 s."""
    base = start.records
    return CommitSpan(
        start,
        Commit(base + 40, T0 + 1.0, 6),
        Commit(base + 390, T0 + 1.45, claims[0]),
        Commit(base + 400, T0 + 1.5, claims[1]),
    )


def test_the_rate_is_over_the_events_after_the_first_flush_between_two_commits() -> None:
    counted = span()
    assert counted.seconds == pytest.approx(0.5)
    assert (counted.records, counted.first_records) == (400, 40)
    assert counted.first_events(40_000) == 4_000
    assert counted.rate(40_000) == pytest.approx(36_000 / 0.5)


def test_a_phase_after_others_counts_from_its_own_start() -> None:
    later = span(Commit(5_000, T0 - 60, 6))
    assert (later.records, later.first_records) == (400, 40)
    assert later.rate(40_000) == pytest.approx(72_000)


def test_batches_of_unequal_size_are_shared_by_their_mean() -> None:
    assert span().first_events(39_950) == round(39_950 * 40 / 400)


def test_all_in_one_flush_is_no_rate_not_a_division_by_zero() -> None:
    one = Commit(400, T0, 6)
    assert CommitSpan(NO_COMMIT, one, NO_COMMIT, one).rate(400) == 0.0


def test_the_span_as_polling_dates_it_is_from_read_to_read() -> None:
    assert span().polled_seconds is None  # reads made without their own time
    seen = CommitSpan(
        NO_COMMIT, Commit(40, T0, 6, T0 + 0.01), NO_COMMIT, Commit(400, T0 + 0.5, 6, T0 + 0.53)
    )
    assert seen.polled_seconds == pytest.approx(0.52)
    assert seen.polled_rate(40_000) == pytest.approx(36_000 / 0.52)


def test_a_claim_between_the_last_two_reads_makes_the_end_unsure() -> None:
    assert span().end_exact and not span().claimed_inside
    late = span(claims=(6, 12))
    assert not late.end_exact and late.claimed_inside
    between = span(claims=(12, 12))
    assert between.end_exact and between.claimed_inside
