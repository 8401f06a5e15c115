"""Review: a summarised record holding one event ahead of the worker's clock.

``Preparer._prepare_summary`` (services/metrics/pipeline.py) means to read such a record
event by event (``max(epochs) > now_s + skew: return False``), so that the one event is
dead-lettered ``time-in-future`` and the others count. But ``sanity.problem`` runs first
and calls every time past ``now + skew`` nonsense: the whole record is dead-lettered as
``summary-nonsense`` and none of its valid events count."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.metrics.helpers import document
from tests.unit.metrics.test_signed_records import NOW, preparer
from tests.unit.metrics.test_summaries import contributions, ingest_records, worker_signer


def test_one_event_ahead_of_the_workers_clock_does_not_refuse_the_record() -> None:
    # Ingest (clock NOW) accepted an event 200 s ahead (its skew is 300 s); the worker's
    # clock is 150 s behind ingest's.
    events = [document("01843", NOW - timedelta(minutes=i), f"e{i}") for i in range(5)]
    events.append(document("01843", NOW + timedelta(seconds=200), "ahead"))
    records = ingest_records(events)
    worker_now = NOW - timedelta(seconds=150)
    prepared = preparer(worker_signer()).prepare(records, worker_now)
    assert [d.reason for d in prepared.dead_letters] == ["time-in-future"]
    assert len(contributions(prepared)) == 5
