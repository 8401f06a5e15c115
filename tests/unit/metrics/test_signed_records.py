"""Records ingest validated and signed skip the schema check in the workers; nothing else does.

The proof that the check is skipped is an event the contract refuses but that decodes
(an unknown extra attribute): counted when ingest's signature verifies, dead-lettered
with its reason otherwise.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.contract import Contract
from services.common.paths import SCHEMAS_DIR
from services.common.settings import CommonSettings
from services.common.signing import VALIDATED_HEADER, RecordSigner
from services.ingest.publisher import signed
from services.ingest.validation import Record as IngestRecord
from services.metrics.pipeline import Prepared, Preparer, Record
from tests.unit.metrics.helpers import (
    as_bytes,
    catalogue,
    contract,
    decoder,
    document,
    envelope,
)

NOW = datetime(2026, 11, 23, 3, 0, tzinfo=UTC)
KEY = b"k" * 32


def preparer(signer: RecordSigner | None) -> Preparer:
    return Preparer(decoder(), contract(), catalogue(), timedelta(days=7), signer=signer)


def batch_with_an_extra_attribute() -> bytes:
    good = document("01843", NOW, "e1")
    odd = document("01843", NOW, "e2")
    odd["x_unknown"] = "the contract allows no other attribute"
    assert contract().validate(good) == [] and contract().validate(odd) != []
    return as_bytes(good, odd)


def record(value: bytes, headers: list[tuple[str, bytes]], offset: int = 0) -> Record:
    return Record("egov.documents", 0, offset, b"19", value, tuple(headers))


def test_a_record_signed_by_ingest_is_not_validated_again() -> None:
    signer = RecordSigner(KEY, contract().fingerprint)
    value = batch_with_an_extra_attribute()
    prepared = preparer(signer).prepare(
        [record(value, [signer.header(value, topic="egov.documents", key=b"19")])], NOW
    )
    counted = prepared.batches[("egov.documents", 0)].event_views()
    assert len(counted) == 2
    assert prepared.dead_letters == []


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param(lambda v: [], id="unsigned"),
        pytest.param(
            lambda v: [
                RecordSigner(b"another key", contract().fingerprint).header(
                    v, topic="egov.documents", key=b"19"
                )
            ],
            id="another key",
        ),
        pytest.param(
            lambda v: [
                RecordSigner(KEY, b"another contract").header(v, topic="egov.documents", key=b"19")
            ],
            id="another contract",
        ),
        pytest.param(
            lambda v: [
                RecordSigner(KEY, contract().fingerprint).header(
                    v + b" ", topic="egov.documents", key=b"19"
                )
            ],
            id="another value",
        ),
        pytest.param(lambda v: [(VALIDATED_HEADER, b"")], id="empty signature"),
    ],
)
def test_anything_else_is_validated_and_the_invalid_event_dead_lettered(headers: object) -> None:
    signer = RecordSigner(KEY, contract().fingerprint)
    value = batch_with_an_extra_attribute()
    assert callable(headers)
    prepared = preparer(signer).prepare([record(value, headers(value))], NOW)
    counted = prepared.batches[("egov.documents", 0)].event_views()
    assert len(counted) == 1  # the valid element is still counted
    [dead] = prepared.dead_letters
    assert dead.reason == "schema-violation"
    assert ("dlq_batch_index", b"1") in dead.headers
    assert b"x_unknown" in (dead.value or b"")


def test_a_worker_without_a_key_validates_signed_records_too() -> None:
    signer = RecordSigner(KEY, contract().fingerprint)
    value = batch_with_an_extra_attribute()
    prepared = preparer(None).prepare(
        [record(value, [signer.header(value, topic="egov.documents", key=b"19")])], NOW
    )
    assert [d.reason for d in prepared.dead_letters] == ["schema-violation"]


def test_trust_skips_only_the_schema_check_not_units_or_clock() -> None:
    signer = RecordSigner(KEY, contract().fingerprint)
    unknown_unit = document("99999", NOW, "e1")
    future = document("01843", NOW + timedelta(hours=1), "e2")
    too_late = document("01843", NOW - timedelta(days=8), "e3")
    value = as_bytes(unknown_unit, future, too_late)
    prepared = preparer(signer).prepare(
        [record(value, [signer.header(value, topic="egov.documents", key=b"19")])], NOW
    )
    assert sorted(d.reason for d in prepared.dead_letters) == [
        "time-in-future",
        "too-late",
        "unit-unknown",
    ]
    assert prepared.batches[("egov.documents", 0)].event_views() == []


def test_ingest_signs_every_record_it_sends_when_a_key_is_set() -> None:
    signer = RecordSigner(KEY, contract().fingerprint)
    records = [
        IngestRecord("documents", b"19", b'{"a":1}', [], "t", 0, "u", NOW, "2025"),  # type: ignore[arg-type]
        IngestRecord(
            "documents", b"19", b"[1,2]", [("egov_backfill", b"1")], "t", 1, "u", NOW, "2025"
        ),  # type: ignore[arg-type]
    ]
    out = signed(records, signer)
    assert [
        signer.verifies(r.value, r.headers, topic="egov.documents", key=b"19") for r in out
    ] == [True, True]
    assert ("egov_backfill", b"1") in out[1].headers
    assert records[0].headers == []  # the caller's records are not changed
    assert signed(records, None) is records


def test_the_signer_comes_from_the_settings_and_only_with_a_key() -> None:
    fingerprint = contract().fingerprint
    assert CommonSettings().record_signer(fingerprint) is None
    assert CommonSettings(record_signing_key="").record_signer(fingerprint) is None
    signer = CommonSettings(record_signing_key="s3cret").record_signer(fingerprint)
    assert signer is not None
    where = {"topic": "t", "key": None}
    assert signer.verifies(b"v", [signer.header(b"v", **where)], **where)
    assert "s3cret" not in repr(CommonSettings(record_signing_key="s3cret"))


def test_the_contract_fingerprint_follows_the_schema_files(tmp_path: Path) -> None:
    assert Contract.load().fingerprint == contract().fingerprint
    copy = tmp_path / "schemas"
    shutil.copytree(SCHEMAS_DIR, copy)
    assert Contract.load(copy).fingerprint == contract().fingerprint
    schema = next((copy / "events").glob("*.schema.json"))
    schema.write_text(schema.read_text().replace('"description"', '"description" ', 1))
    assert Contract.load(copy).fingerprint != contract().fingerprint


UNITS = st.sampled_from(["01843", "01837", "19", "06", "99999", "38", "16342"])
TYPES = st.sampled_from(sorted(contract().event_types))
OFFSETS_S = st.sampled_from([-9 * 86400, -8 * 86400, -86400, -3600, -60, 0, 200, 400, 3600])


@st.composite
def envelopes(draw: st.DrawFn, n: int) -> dict[str, object]:
    event_type = draw(TYPES)
    event = envelope(
        event_type,
        draw(UNITS),
        NOW + timedelta(seconds=draw(OFFSETS_S)),
        f"e{n}",
    )
    # Vary what the KPI conditions read, within the contract.
    data = event["data"]
    assert isinstance(data, dict)
    for name in ("electronic", "signed", "classified", "paperless"):
        if name in data:
            data[name] = draw(st.booleans())
    if "channel" in data:
        data["channel"] = draw(st.sampled_from(["online", "counter", "postal"]))
    if "mode" in data:
        data["mode"] = draw(st.sampled_from(["online", "hybrid", "in_person"]))
    if "due_at" in data:
        due = NOW + timedelta(seconds=draw(st.integers(-7200, 7200)))
        data["due_at"] = due.isoformat()
    if "dossier_id" in data:  # one count per dossier: the identity both lanes give it
        data["dossier_id"] = draw(st.sampled_from(["H1", "H2"]))
    if "outcome" in data:
        data["outcome"] = draw(st.sampled_from(["approved", "rejected", "returned"]))
    return event


def record_cases(largest: int) -> st.SearchStrategy[Any]:
    """(sizes of up to 4 records, that many events in all, backfilled or not)."""
    return st.lists(st.integers(1, largest), min_size=1, max_size=4).flatmap(
        lambda sizes: st.tuples(
            st.just(sizes),
            st.lists(envelopes(0), min_size=sum(sizes), max_size=sum(sizes)),
            st.booleans(),
        )
    )


@given(record_cases(6))
@settings(max_examples=60, deadline=None)
def test_the_fast_lane_decides_exactly_as_the_full_path(case: object) -> None:
    """Signed or not, the same records give the same contributions and dead letters."""
    sizes, events, backfill = case  # type: ignore[misc]
    for i, event in enumerate(events):
        event["id"] = f"e{i}"
    assert all(contract().validate(e) == [] for e in events)
    signer = RecordSigner(KEY, contract().fingerprint)
    records_plain, records_signed, start = [], [], 0
    for offset, size in enumerate(sizes):
        part = events[start : start + size]
        start += size
        value = orjson.dumps(part[0] if size == 1 else part)
        extra = [("egov_backfill", b"1")] if backfill else []
        records_plain.append(record(value, extra, offset))
        records_signed.append(
            record(
                value,
                [*extra, signer.header(value, headers=extra, topic="egov.documents", key=b"19")],
                offset,
            )
        )
    full = preparer(None).prepare(records_plain, NOW)
    fast = preparer(signer).prepare(records_signed, NOW)
    # The plain records are keyed b"19" whatever their events' provinces: the full path
    # publishes those events again keyed by their province, and counts them when they
    # come back on its partition (services/metrics/rekeying.py). Both readings together
    # decide as the fast lane, which trusts ingest's keys (its MAC covers them).
    moved = [
        Record(f.topic, 1, i, f.key, f.value, f.headers, f.timestamp)
        for i, f in enumerate(full.forwards)
    ]
    again = preparer(None).prepare(moved, NOW)
    assert again.forwards == [] and again.dead_letters == []
    assert all(f.key != b"19" for f in full.forwards)

    def contributions(prepared: Prepared) -> list[tuple[object, ...]]:
        return [
            (
                c.digest,
                c.type,
                c.family,
                c.epoch,
                c.day,
                c.units,
                c.counts,
                c.crosswalked,
                c.backfill,
                c.dossier,
            )
            for b in prepared.batches.values()
            for c in b.event_views()
        ]

    def dead(prepared: Prepared) -> list[tuple[object, ...]]:
        found = []
        for d in prepared.dead_letters:
            headers = [h for h in d.headers if h[0] != VALIDATED_HEADER]
            found.append((d.key, d.value, tuple(headers), d.reason, d.topic))
        return found

    assert sorted(contributions(fast), key=repr) == sorted(
        contributions(full) + contributions(again), key=repr
    )
    assert dead(fast) == dead(full)
    assert fast.too_late == full.too_late
    assert {tp: b.next_offset for tp, b in fast.batches.items()} == {
        tp: b.next_offset for tp, b in full.batches.items() if tp[1] == 0
    }
