"""A worker whose clock lags ingest's counts what ingest accepted ahead of it.

Ingest answers 202 for an event up to the clock skew ahead of its own clock. A worker
used to judge "time-in-future" against its own clock only: lagging ingest's by 150 s, it
dead-lettered an event ingest had accepted 200 s ahead (skew 300 s), a 202 that did not
count. A record ingest signed says when it was accepted (``egov_accepted_ms``, under the
MAC), and the worker judges from the later of that instant and its own clock. A record
nobody vouches for is still judged against the worker's clock, whatever its header says.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from services.common.headers import accepted_header
from services.common.summaries import Summarizer
from services.ingest.publisher import pack, signed
from services.ingest.validation import EventValidator, Limits
from services.metrics.pipeline import Record
from tests.unit.metrics.helpers import catalogue, contract, document, registry
from tests.unit.metrics.test_signed_records import NOW, preparer
from tests.unit.metrics.test_summaries import contributions, summarised, worker_signer

SKEW = timedelta(seconds=300)
WORKER_NOW = NOW - timedelta(seconds=150)  # the worker's clock lags ingest's by 150 s


def accepted_by_ingest(
    events: list[dict[str, Any]], sign: bool = True, judged_at: datetime = NOW
) -> list[Record]:
    """Records as ingest, its clock at NOW, publishes them (acceptance header included)."""
    validator = EventValidator(
        contract(), registry(), Limits(SKEW, horizon=None), Summarizer(catalogue())
    )
    records, errors = validator.check(events, judged_at)
    assert errors == []
    out = signed(pack(records), worker_signer() if sign else None, accepted_header(NOW))
    return [
        Record(f"egov.{r.topic_family}", 0, offset, r.key, r.value, tuple(r.headers))
        for offset, r in enumerate(out)
    ]


def ahead_and_others() -> list[dict[str, Any]]:
    events = [document("01843", NOW - timedelta(minutes=i), f"e{i}") for i in range(5)]
    return [*events, document("01843", NOW + timedelta(seconds=200), "ahead")]


def test_a_summarised_record_ingest_accepted_ahead_of_a_lagging_worker_counts_whole() -> None:
    prepared = preparer(worker_signer()).prepare(accepted_by_ingest(ahead_and_others()), WORKER_NOW)
    assert prepared.dead_letters == []
    assert summarised(prepared) == [6]  # counted from its summary, no look one by one


def test_a_single_event_ingest_accepted_ahead_of_a_lagging_worker_counts() -> None:
    one = [document("01843", NOW + timedelta(seconds=200), "ahead")]
    records = accepted_by_ingest(one)
    assert len(records) == 1
    prepared = preparer(worker_signer()).prepare(records, WORKER_NOW)
    assert prepared.dead_letters == []
    assert [e.epoch for e in contributions(prepared)] == [
        (NOW + timedelta(seconds=200)).timestamp()
    ]


def test_a_signed_event_beyond_the_skew_of_its_acceptance_is_still_refused() -> None:
    # Judged at NOW + 1000 s but stamped as accepted at NOW (an ingest bug, or a clock
    # stepped back between the two): 1200 s ahead of the stamp, 1350 s of the worker.
    far = document("01843", NOW + timedelta(seconds=1200), "far")
    near = document("01843", NOW, "near")
    records = accepted_by_ingest([far, near], judged_at=NOW + timedelta(seconds=1000))
    prepared = preparer(worker_signer()).prepare(records, WORKER_NOW)
    assert [d.reason for d in prepared.dead_letters] == ["time-in-future"]
    assert [e.epoch for e in contributions(prepared)] == [NOW.timestamp()]  # the other counts


def test_an_unsigned_records_acceptance_header_does_not_move_the_workers_clock() -> None:
    # Written straight to Kafka with a header claiming acceptance an hour ahead: nobody
    # vouches for it, so the worker's own clock judges (the event is 350 s ahead of it).
    event = document("01843", NOW + timedelta(seconds=200), "forged")
    (record,) = accepted_by_ingest([event], sign=False)
    forged = accepted_header(NOW + timedelta(hours=1))
    headers = (*[h for h in record.headers if h[0] != forged[0]], forged)
    record = dataclasses.replace(record, headers=headers)
    prepared = preparer(worker_signer()).prepare([record], WORKER_NOW)
    assert [d.reason for d in prepared.dead_letters] == ["time-in-future"]
    assert contributions(prepared) == []
