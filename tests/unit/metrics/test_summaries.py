"""Ingest's summaries of packed records: counted whole when trusted, and never different.

The records here are made by ingest's own code (validation, packing, signing), then
prepared by a worker: with a signer that trusts the summary, and with none (every event
read and validated). Both must count the same events for the same units, KPIs, days and
buckets, and dead-letter the same; a summary that does not verify, was computed from
another catalogue or unit registry, or is malformed is not used.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import event, given, settings

from services.common.dossierfacts import RECEIVED, RESOLVED
from services.common.kpis import KpiCatalogue
from services.common.signing import SUMMARY_HEADER, SUMMARY_MAC_HEADER, RecordSigner
from services.common.summaries import (
    Summarizer,
    SummaryError,
    SummaryReader,
    encode_entries,
    summary_fingerprint,
)
from services.common.tally import TallyEvent
from services.common.units import UnitRegistry
from services.ingest.publisher import pack, signed
from services.ingest.validation import EventValidator, Limits
from services.metrics.pipeline import Prepared, Record
from tests.unit.metrics.helpers import catalogue, contract, document, envelope, registry
from tests.unit.metrics.test_signed_records import KEY, NOW, preparer, record_cases


def worker_signer(fingerprint: bytes | None = None) -> RecordSigner:
    fp = fingerprint or summary_fingerprint(contract().fingerprint, catalogue(), registry())
    return RecordSigner(KEY, contract().fingerprint, fp)


def ingest_records(
    events: list[dict[str, Any]], signer: RecordSigner | None = None, backfill: bool = False
) -> list[Record]:
    """What ingest would produce for one request holding ``events`` (all must be valid)."""
    limits = Limits(timedelta(seconds=300), horizon=None)
    validator = EventValidator(contract(), registry(), limits, Summarizer(catalogue()))
    records, errors = validator.check(events, NOW)
    assert errors == []
    if backfill:
        records = [
            dataclasses.replace(r, headers=[*r.headers, ("egov_backfill", b"1")]) for r in records
        ]
    out = signed(pack(records), signer or worker_signer())
    return [
        Record(f"egov.{r.topic_family}", 0, offset, r.key, r.value, tuple(r.headers))
        for offset, r in enumerate(out)
    ]


def contributions(prepared: Prepared) -> list[TallyEvent]:
    """Every event prepared, one by one, in offset order."""
    return [e for batch in prepared.batches.values() for e in batch.event_views()]


def summarised(prepared: Prepared) -> list[int]:
    """The events of each batch counted whole from a summary."""
    return [t.events for b in prepared.batches.values() if b.summarised for t in b.tallies]


def communes_events(n: int) -> list[dict[str, Any]]:
    units = ["01843", "01837", "01840"]
    return [
        document(units[i % 3], NOW - timedelta(minutes=7 * i), f"e{i}", signed=i % 4 != 0)
        for i in range(n)
    ]


def test_a_packed_record_from_ingest_is_counted_whole() -> None:
    records = ingest_records(communes_events(30))
    assert len(records) == 1 and any(h[0] == SUMMARY_HEADER for h in records[0].headers)
    prepared = preparer(worker_signer()).prepare(records, NOW)
    batch = prepared.batches[("egov.documents", 0)]
    assert batch.summarised and [t.events for t in batch.tallies] == [30]
    assert prepared.paths == {"summary": 1}
    full = preparer(None).prepare(records, NOW)
    (full_batch,) = full.batches.values()
    assert batch.deltas() == full_batch.deltas()
    assert contributions(prepared) == full_batch.event_views()


def test_a_single_event_carries_no_summary() -> None:
    (record,) = ingest_records(communes_events(1))
    assert not any(h[0] == SUMMARY_HEADER for h in record.headers)


@pytest.mark.parametrize(
    "how",
    ["tampered summary", "tampered value", "another key", "another catalogue", "another registry"],
)
def test_a_summary_that_is_not_trusted_is_not_used(how: str) -> None:
    """Made under another key or fingerprint (a rotation, a rolling upgrade): each event is
    then read (the record signature still spares the schema check, when it verifies), and
    counted exactly as the full path counts it. Tampered with: dead-lettered."""
    (record,) = ingest_records(communes_events(12))
    headers = dict(record.headers)
    worker = worker_signer()
    if how == "tampered summary":
        summary = orjson.loads(headers[SUMMARY_HEADER])
        summary["c"] = ["document_signing:1:1,document_electronic:1:1"] * len(summary["c"])
        headers[SUMMARY_HEADER] = orjson.dumps(summary)
    elif how == "tampered value":
        record = dataclasses.replace(record, value=record.value.replace(b'"e1"', b'"f1"'))
    elif how == "another key":
        fp = summary_fingerprint(contract().fingerprint, catalogue(), registry())
        worker = RecordSigner(b"another key", contract().fingerprint, fp)
    elif how == "another catalogue":
        other = KpiCatalogue(list(catalogue().kpis), hashlib.sha256(b"edited").digest())
        worker = worker_signer(summary_fingerprint(contract().fingerprint, other, registry()))
    else:
        units = UnitRegistry([u for u in _all_units() if u.code != "01843"], [])
        worker = worker_signer(summary_fingerprint(contract().fingerprint, catalogue(), units))
    record = dataclasses.replace(record, headers=tuple(headers.items()))
    prepared = preparer(worker).prepare([record], NOW)
    full = preparer(None).prepare([record], NOW)
    assert summarised(prepared) == []
    if how.startswith("tampered"):
        # Its MAC was made for this key and fingerprint and no longer verifies: forged
        # or altered on the way, so dead-lettered whole, never read (issue 15).
        assert [d.reason for d in prepared.dead_letters] == ["summary-forged"]
        assert contributions(prepared) == []
        return
    assert contributions(prepared) == contributions(full)
    assert [d.reason for d in prepared.dead_letters] == [d.reason for d in full.dead_letters]
    # The record's own signature still spares the schema check unless the key differs.
    validated = how == "another key"
    assert prepared.paths == {"validated" if validated else "signed": 1}


def _all_units() -> list[Any]:
    return [u for era in ("2024", "2025") for u in registry().units(era)]  # type: ignore[arg-type]


def test_a_record_with_an_event_out_of_bounds_is_read_event_by_event() -> None:
    """Too late for the grace (and not backfilled): that event is dead-lettered, the
    others of its record counted, as without a summary."""
    events = communes_events(5)
    events[2] = document("01843", NOW - timedelta(days=9), "old")
    records = ingest_records(events)
    prepared = preparer(worker_signer()).prepare(records, NOW)
    assert summarised(prepared) == []
    assert [d.reason for d in prepared.dead_letters] == ["too-late"]
    assert len(contributions(prepared)) == 4
    backfilled = preparer(worker_signer()).prepare(ingest_records(events, backfill=True), NOW)
    assert summarised(backfilled) == [5]
    assert all(c.backfill for c in contributions(backfilled))


def test_a_malformed_summary_with_a_valid_mac_is_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only a bug in ingest or a stolen key can make one: the worker logs it and
    dead-letters the record (issue 15), never counts it."""
    (record,) = ingest_records(communes_events(6))
    headers = dict(record.headers)
    summary = orjson.loads(headers[SUMMARY_HEADER])
    summary["e"][0] = 99  # a group it does not have
    raw = orjson.dumps(summary)
    signer = worker_signer()
    others = [(k, v) for k, v in headers.items() if k != SUMMARY_MAC_HEADER]
    where = {"topic": record.topic, "key": record.key}
    headers.update(signer.summary_headers(record.value or b"", raw, headers=others, **where))
    record = dataclasses.replace(record, headers=tuple(headers.items()))
    prepared = preparer(signer).prepare([record], NOW)
    assert summarised(prepared) == []
    assert contributions(prepared) == []
    assert [d.reason for d in prepared.dead_letters] == ["summary-nonsense"]
    assert "signed summary is dead-lettered" in caplog.text


def good_summary() -> dict[str, Any]:
    (record,) = ingest_records(communes_events(4))
    return orjson.loads(dict(record.headers)[SUMMARY_HEADER])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s.pop("k"),
        lambda s: s.update(k=s["k"][:-2]),
        lambda s: s.update(t=s["t"][:-1]),
        lambda s: s.update(t=["x"] * len(s["t"])),
        lambda s: s["g"][0].append(1),
        lambda s: s["g"][0].__setitem__(5, 99),
        lambda s: s["g"][0].__setitem__(1, 7),
        lambda s: s["g"][0].__setitem__(0, -1),
        lambda s: s["g"][0].__setitem__(4, "0"),
        lambda s: s.update(c=["document_signing:x:1"]),
        lambda s: s["e"].__setitem__(0, len(s["g"])),
        lambda s: s.update(g=[]),
    ],
)
def test_the_reader_refuses_a_summary_whose_parts_disagree(damage: Any) -> None:
    summary = good_summary()
    SummaryReader().read(orjson.dumps(summary))
    damage(summary)
    with pytest.raises(SummaryError):
        SummaryReader().read(orjson.dumps(summary))
    with pytest.raises(SummaryError):
        SummaryReader().read(b"{not json")


def test_encoding_an_empty_record_and_reading_it_back() -> None:
    summary = SummaryReader().read(encode_entries([]))
    assert len(summary.group_type) == 0 and summary.index == [] and summary.digests == b""


def test_fingerprints_follow_what_a_summary_depends_on() -> None:
    assert UnitRegistry.from_dir().fingerprint == registry().fingerprint
    assert KpiCatalogue.load().fingerprint == catalogue().fingerprint
    fewer = UnitRegistry([u for u in _all_units() if u.code != "01843"], [])
    assert fewer.fingerprint != registry().fingerprint
    base = summary_fingerprint(contract().fingerprint, catalogue(), registry())
    assert summary_fingerprint(b"other contract", catalogue(), registry()) != base


@given(record_cases(8))
@settings(max_examples=60, deadline=None)
def test_summaries_count_exactly_as_the_full_path(case: Any) -> None:
    """Requests of random events through ingest: the same contributions, sums, dead
    letters, too-late events and offsets with summaries trusted as with none."""
    sizes, events, backfill = case
    records: list[Record] = []
    start = 0
    for size in sizes:
        part = events[start : start + size]
        start += size
        for i, element in enumerate(part):
            element["id"] = f"e{start}-{i}"
        valid, _ = EventValidator(
            contract(), registry(), Limits(timedelta(seconds=300), horizon=None)
        ).check(part, NOW)
        kept = [orjson.loads(r.value) for r in valid]
        if kept:
            for r in ingest_records(kept, backfill=backfill):
                records.append(dataclasses.replace(r, offset=len(records)))
    fast = preparer(worker_signer()).prepare(records, NOW)
    full = preparer(None).prepare(records, NOW)
    packed = sum(summarised(fast))
    event("packed events: " + ("none" if not packed else "some"))
    sums_fast = {tp: b.deltas() for tp, b in fast.batches.items()}
    sums_full = {tp: b.deltas() for tp, b in full.batches.items()}
    assert sums_fast == sums_full
    assert contributions(fast) == contributions(full)
    assert [(d.value, d.reason) for d in fast.dead_letters] == [
        (d.value, d.reason) for d in full.dead_letters
    ]
    assert fast.too_late == full.too_late
    assert {tp: b.next_offset for tp, b in fast.batches.items()} == {
        tp: b.next_offset for tp, b in full.batches.items()
    }
    assert all(
        h[0] != SUMMARY_MAC_HEADER or h[1].startswith(b"v2:") for r in records for h in r.headers
    )


def dossier_events() -> list[dict[str, Any]]:
    """Two dossiers received; one approved twice (two event ids: one dossier, one final
    outcome), one returned."""
    due = (NOW + timedelta(days=3)).isoformat()
    events = [
        envelope(RECEIVED, "01843", NOW - timedelta(hours=5), "r1", dossier_id="H1", due_at=due),
        envelope(RECEIVED, "01837", NOW - timedelta(hours=4), "r2", dossier_id="H2", due_at=due),
        envelope(RESOLVED, "01843", NOW - timedelta(hours=3), "a1", dossier_id="H1"),
        envelope(RESOLVED, "01843", NOW - timedelta(hours=2), "a2", dossier_id="H1"),
        envelope(RESOLVED, "01837", NOW - timedelta(hours=1), "x1", dossier_id="H2"),
    ]
    for e in events[2:4]:
        e["data"]["outcome"] = "approved"
    events[4]["data"]["outcome"] = "returned"
    assert all(contract().validate(e) == [] for e in events), events
    return events


def test_a_summary_with_dossier_events_is_counted_as_groups_and_facts() -> None:
    """Version 2: no event read one by one; each dossier event's fact and per-dossier
    digest exactly as the full path gives them (a second approval is the first's key)."""
    (record,) = ingest_records(dossier_events())
    prepared = preparer(worker_signer()).prepare([record], NOW)
    assert prepared.paths == {"summary": 1} and summarised(prepared) == [5]
    full = preparer(None).prepare([record], NOW)
    fast = contributions(prepared)
    assert fast == contributions(full)
    assert [e.dossier.kind if e.dossier else None for e in fast] == [
        "received",
        "received",
        "final",
        "final",
        "returned",
    ]
    assert fast[2].digest == fast[3].digest != fast[4].digest
    assert {tp: b.deltas() for tp, b in prepared.batches.items()} == {
        tp: b.deltas() for tp, b in full.batches.items()
    }


def test_a_version_2_summary_without_its_dossier_facts_is_nonsense() -> None:
    """Its MAC verified (a bug in ingest or a stolen key): the ledger would miss them."""
    (record,) = ingest_records(dossier_events())
    headers = dict(record.headers)
    summary = orjson.loads(headers[SUMMARY_HEADER])
    summary["f"] = {key: column[:-1] for key, column in summary["f"].items()}
    raw = orjson.dumps(summary)
    signer = worker_signer()
    others = [(k, v) for k, v in headers.items() if k != SUMMARY_MAC_HEADER]
    where = {"topic": record.topic, "key": record.key}
    headers.update(signer.summary_headers(record.value or b"", raw, headers=others, **where))
    prepared = preparer(signer).prepare(
        [dataclasses.replace(record, headers=tuple(headers.items()))], NOW
    )
    assert [d.reason for d in prepared.dead_letters] == ["summary-nonsense"]
    assert contributions(prepared) == []
