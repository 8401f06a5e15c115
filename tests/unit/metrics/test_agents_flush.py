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
