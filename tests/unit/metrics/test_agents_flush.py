"""A flush's per-type counters and lags come from the counted tally batches: every event
counted once, those of an earlier day as late (services/metrics/agents.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.metrics.agents import Counting
from tests.unit.metrics.test_future_and_failures import FakeState, never_sent, preparer, signing

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
DOCUMENT = "vn.egov.document.issued"


async def test_counted_events_are_processed_and_yesterdays_are_late() -> None:
    state = FakeState()
    counting = Counting(preparer(), state, lambda: NOW)  # type: ignore[arg-type]
    yesterday = NOW - timedelta(days=1)
    records = [signing(i, NOW) for i in range(3)] + [signing(3, yesterday)]
    await counting.step(records, never_sent)
    await counting.drain()
    metrics = state.metrics
    assert metrics.processed.labels(DOCUMENT)._value.get() == 4
    assert metrics.late.labels(DOCUMENT)._value.get() == 1
    assert metrics.crosswalked.labels(DOCUMENT)._value.get() == 0
    assert sum(metrics.event_lag._counts) == 4  # one lag per event
    assert metrics.event_lag._sum == 86400.0  # three counted at once, one a day late


async def test_pending_records_of_an_earlier_reading_are_dropped_not_mixed_with_new_ones() -> None:
    """A rebalance took the partition and gave it back while records waited for the
    flush in flight: the consumer hands them over again from the stored position, so
    the pending batch of the earlier reading is dropped (flushed, it would store an
    offset from before the claim; review 13), and the records read again count once."""
    from tests.unit.metrics.test_future_and_failures import TP, GatedState

    state = GatedState()
    counting = Counting(preparer(), state, lambda: NOW)  # type: ignore[arg-type]
    await counting.step([signing(0, NOW)], never_sent)  # in flight, held at the gate
    await counting.step([signing(1, NOW), signing(2, NOW)], never_sent)  # pending
    state.readings[TP] = state.readings.get(TP, 0) + 1  # revoked and claimed again
    await counting.step([signing(1, NOW), signing(2, NOW), signing(3, NOW)], never_sent)
    state.gate.set()
    await counting.drain()
    assert state.started == [[1], [4]]  # 1..2 of the earlier reading never flushed
    assert sum(b.events for b in state.flushed) == 4  # 0, then 1, 2, 3 once each
