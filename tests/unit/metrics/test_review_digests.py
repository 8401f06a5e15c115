"""Review of the dedup digests and dossier facts (issue 18): one event gets the same digest
and fact whichever way a worker reads it: ingest's version-2 summary as groups, the record
ingest signed read event by event, or the record validated in full; a version-1 summary of
document events counts with the digests of the other paths."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import orjson

from services.common.dossierfacts import PAID, RECEIVED, RESOLVED, RESUBMITTED
from services.common.signing import (
    SUMMARY_HEADER,
    SUMMARY_MAC_HEADER,
    VALIDATED_HEADER,
    RecordSigner,
)
from services.common.summaries import summary_fingerprint
from services.common.tally import TallyEvent, dedup_digest
from services.metrics.pipeline import Prepared, Record
from tests.unit.metrics.helpers import catalogue, contract, envelope, registry
from tests.unit.metrics.test_signed_records import KEY, NOW, preparer
from tests.unit.metrics.test_summaries import (
    communes_events,
    contributions,
    ingest_records,
    worker_signer,
)


def every_dossier_kind() -> list[dict[str, Any]]:
    """Receipts, payments, resubmissions and each outcome, with the repeats that are one
    per dossier (a second receipt, a second final outcome, a second payment)."""
    due = (NOW + timedelta(days=2)).isoformat()

    def at(hours: int) -> Any:
        return NOW - timedelta(hours=hours)

    events = [
        envelope(RECEIVED, "01843", at(20), "r1", dossier_id="D1", due_at=due),
        envelope(PAID, "01843", at(19), "p1", dossier_id="D1"),
        envelope(RESOLVED, "01843", at(18), "x1", dossier_id="D1", outcome="returned"),
        envelope(RESUBMITTED, "01843", at(17), "s1", dossier_id="D1"),
        envelope(RESOLVED, "01843", at(16), "x2", dossier_id="D1", outcome="returned"),
        envelope(RESUBMITTED, "01843", at(15), "s2", dossier_id="D1"),
        envelope(RESOLVED, "01843", at(14), "a1", dossier_id="D1", outcome="approved"),
        envelope(RESOLVED, "01843", at(13), "a2", dossier_id="D1", outcome="rejected"),
        envelope(RECEIVED, "01843", at(12), "r1-again", dossier_id="D1", due_at=due),
        envelope(RECEIVED, "01840", at(11), "r2", dossier_id="D2", due_at=due),
        envelope(PAID, "01840", at(10), "p2", dossier_id="D2"),
        envelope(PAID, "01840", at(9), "p2-again", dossier_id="D2"),
        envelope(RESOLVED, "01840", at(8), "w2", dossier_id="D2", outcome="rejected"),
    ]
    for e in events:
        assert contract().validate(e) == [], e
    return events


def seen(prepared: Prepared) -> list[tuple[Any, ...]]:
    def row(e: TallyEvent) -> tuple[Any, ...]:
        return (e.digest, e.type, e.epoch, e.day, e.units, e.counts, e.crosswalked, e.dossier)

    return [row(e) for e in contributions(prepared)]


def other_summary_signer() -> RecordSigner:
    """A worker that loaded another KPI catalogue or registry: the summary is not its own,
    the record signature is (it reads the events one by one, without the schema check)."""
    return worker_signer(summary_fingerprint(b"another contract", catalogue(), registry()))


def test_dossier_events_read_three_ways_give_one_digest_and_fact_each() -> None:
    records = ingest_records(every_dossier_kind())
    summary = preparer(worker_signer()).prepare(records, NOW)
    signed = preparer(other_summary_signer()).prepare(records, NOW)
    full = preparer(None).prepare(records, NOW)
    assert summary.paths == {"summary": 1}
    assert signed.paths == {"signed": 1}
    assert full.paths == {"validated": 1}
    assert seen(summary) == seen(signed) == seen(full)
    assert not summary.dead_letters and not signed.dead_letters and not full.dead_letters


def test_one_per_dossier_where_the_contract_says_so() -> None:
    """Receipt, payment and final outcome share their dossier's digest;
    returns and resubmissions keep their own; payments carry no fact."""
    events = every_dossier_kind()
    views = contributions(preparer(worker_signer()).prepare(ingest_records(events), NOW))
    by_id = {e["id"]: v for e, v in zip(events, views, strict=True)}
    assert by_id["r1"].digest == by_id["r1-again"].digest
    assert by_id["a1"].digest == by_id["a2"].digest
    assert by_id["p2"].digest == by_id["p2-again"].digest
    assert len({by_id[i].digest for i in ("r1", "p1", "x1", "s1", "x2", "s2", "a1")}) == 7
    assert by_id["w2"].dossier is not None and by_id["w2"].dossier.kind == "rejected"
    assert by_id["p1"].dossier is None and by_id["p2"].dossier is None
    assert [v.dossier.kind for v in views if v.dossier] == [
        "received", "returned", "resubmitted", "returned", "resubmitted", "final", "rejected",
        "received", "received", "rejected",
    ]  # fmt: skip


def as_version_1(record: Record) -> Record:
    """The record as ingest wrote it before version 2: its summary without facts, signed
    under version 1's fingerprint (each digest its event's own)."""
    fp = summary_fingerprint(contract().fingerprint, catalogue(), registry(), 1)
    v1 = RecordSigner(KEY, contract().fingerprint, fp)
    parsed = orjson.loads(dict(record.headers)[SUMMARY_HEADER])
    del parsed["f"]
    events = orjson.loads(record.value or b"[]")
    parsed["k"] = b"".join(dedup_digest(e["source"], e["id"]) for e in events).hex()
    macs = (SUMMARY_HEADER, SUMMARY_MAC_HEADER, VALIDATED_HEADER)
    kept = [h for h in record.headers if h[0] not in macs]
    value, topic, key = record.value or b"", record.topic, record.key
    summary = orjson.dumps(parsed)
    headers = kept + v1.summary_headers(value, summary, headers=kept, topic=topic, key=key)
    headers.append(v1.header(value, headers=headers, topic=topic, key=key))
    return dataclasses.replace(record, headers=tuple(headers))


def test_a_version_1_summary_counts_as_groups_with_the_digests_of_version_2() -> None:
    (record,) = ingest_records(communes_events(12))
    v1_record = as_version_1(record)
    worker = worker_signer()
    worker.verifies_summaries_of(
        1, summary_fingerprint(contract().fingerprint, catalogue(), registry(), 1)
    )
    v1 = preparer(worker).prepare([v1_record], NOW)
    v2 = preparer(worker).prepare([record], NOW)
    assert v1.paths == v2.paths == {"summary": 1}
    assert seen(v1) == seen(v2) == seen(preparer(None).prepare([record], NOW))


def test_a_version_1_summary_of_dossier_events_is_read_event_by_event() -> None:
    """Its digests are per event: counted as they are, a second receipt would count."""
    (record,) = ingest_records(every_dossier_kind())
    worker = worker_signer()
    worker.verifies_summaries_of(
        1, summary_fingerprint(contract().fingerprint, catalogue(), registry(), 1)
    )
    v1 = preparer(worker).prepare([as_version_1(record)], NOW)
    assert v1.paths == {"signed": 1}
    assert seen(v1) == seen(preparer(None).prepare([record], NOW))


def withdrawn(event_id: str, dossier: str, hours: int) -> dict[str, Any]:
    """A version-2 withdrawal (the contract's own example, re-dated)."""
    examples = contract().examples(RESOLVED, "valid")
    (example,) = [e for p, e in examples if p.name == "thang-long-withdrawn-v2.json"]
    event = {**example, "data": {**example["data"], "dossier_id": dossier}}
    event.update(
        id=event_id,
        unit="01843",
        time=(NOW - timedelta(hours=hours)).isoformat(),
        source="urn:test:metrics",
    )
    assert contract().validate(event) == [], event
    return event


def test_a_withdrawal_is_a_final_outcome_whichever_way_it_is_read() -> None:
    """Withdrawn, then approved: one final outcome (the approval is a duplicate of the
    withdrawal's digest); its fact says withdrawn."""
    due = (NOW + timedelta(days=2)).isoformat()
    events = [
        envelope(RECEIVED, "01843", NOW - timedelta(hours=9), "r", dossier_id="W1", due_at=due),
        withdrawn("w", "W1", 8),
        envelope(RESOLVED, "01843", NOW - timedelta(hours=7), "a", dossier_id="W1"),
    ]
    events[2]["data"]["outcome"] = "approved"
    records = ingest_records(events)
    summary = preparer(worker_signer()).prepare(records, NOW)
    signed = preparer(other_summary_signer()).prepare(records, NOW)
    full = preparer(None).prepare(records, NOW)
    assert summary.paths == {"summary": 1} and signed.paths == {"signed": 1}
    assert seen(summary) == seen(signed) == seen(full)
    views = contributions(summary)
    assert views[1].digest == views[2].digest != views[0].digest
    assert [v.dossier.kind for v in views if v.dossier] == ["received", "withdrawn", "final"]
