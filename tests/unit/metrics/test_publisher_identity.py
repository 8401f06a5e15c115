"""Dedup identity per publisher: (publisher, source, id), on every path a worker counts by.

Records are made by ingest's own code (validation with a publisher and a cut-over,
packing, the ``egov_publisher`` header, signing), then prepared by a worker three ways:
trusting summaries, trusting signatures only, and validating everything. All three must
give the same dedup digests, and those digests are the publisher's, so that one
publisher's ids never meet another's.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.headers import PUBLISHER_HEADER
from services.common.signing import RecordSigner
from services.common.summaries import UNBOUND, Summarizer, dedup_digest
from services.ingest.publisher import pack, published_by, signed
from services.ingest.validation import EventValidator, Limits
from services.metrics.dossiers import event_identity
from services.metrics.pipeline import Record
from tests.unit.metrics.helpers import catalogue, contract, counted_digests, document, registry
from tests.unit.metrics.test_signed_records import KEY, NOW, preparer, record_cases
from tests.unit.metrics.test_summaries import worker_signer

PUBLISHERS = st.sampled_from([UNBOUND, "tdoffice-38", "dvc-19", "hội nghị"])


def through_ingest(
    events: list[dict[str, Any]],
    publisher: str,
    unbound_before: Any = None,
    signer: RecordSigner | None = None,
) -> list[Record]:
    """What ingest produces for one request of ``events`` from ``publisher`` (the valid
    ones: a request with any invalid event would be refused whole)."""
    limits = Limits(timedelta(seconds=300), horizon=None)
    validator = EventValidator(contract(), registry(), limits, Summarizer(catalogue()))
    records, _ = validator.check(events, NOW, publisher, unbound_before)
    out = signed(published_by(pack(records)), signer)
    return [
        Record(f"egov.{r.topic_family}", 0, offset, r.key, r.value, tuple(r.headers))
        for offset, r in enumerate(out)
    ]


def test_the_unbound_identity_is_the_digest_every_stored_key_holds() -> None:
    """Keys stored before the upgrade are blake2b-16 of len(source):source id."""
    old = hashlib.blake2b(b"7:urn:a:b1", digest_size=16).digest()
    assert dedup_digest("urn:a:b", "1") == old == dedup_digest("urn:a:b", "1", UNBOUND)
    assert dedup_digest("urn:a:b", "1", "tdoffice-38") != old


def test_publishers_never_share_an_identity() -> None:
    assert dedup_digest("urn:a", "1", "a") != dedup_digest("urn:a", "1", "b")
    assert dedup_digest("urn:a", "1", "ab") != dedup_digest("urn:a", "1", "a") != b""
    # Length-prefixed: moving characters between the parts changes the identity.
    assert dedup_digest("b:urn", "1", "a") != dedup_digest("urn", "1", "a:b")
    # A bound identity's text starts with "p", an unbound one's with a digit: an unbound
    # source cannot be chosen to spell a bound identity.
    assert dedup_digest("a1:urn", "1", "") != dedup_digest("urn", "1", "a")


def test_a_record_of_another_publisher_counts_under_its_own_identity() -> None:
    """The same (source, id) from two publishers: two digests, each the publisher's."""
    event = document("01843", NOW, "receipt-0042")
    signer = worker_signer()
    for name in ("tdoffice-38", "dvc-19"):
        records = through_ingest([event], name, signer=signer)
        assert (PUBLISHER_HEADER, name.encode()) in records[0].headers
        for worker in (preparer(signer), preparer(None)):
            found = counted_digests(worker.prepare(records, NOW))
            assert found == {dedup_digest(event["source"], "receipt-0042", name)}


def test_events_before_the_cut_over_keep_the_identity_they_were_counted_under() -> None:
    """An event dated before the cut-over may have been counted before the upgrade: it
    keeps (source, id) and travels without the header, in its own record."""
    old, new = document("01843", NOW - timedelta(hours=2)), document("01843", NOW, "e2")
    records = through_ingest([old, new], "tdoffice-38", NOW - timedelta(hours=1), worker_signer())
    assert len(records) == 2  # two identities are never packed together
    assert [dict(r.headers).get(PUBLISHER_HEADER) for r in records] == [None, b"tdoffice-38"]
    for worker in (preparer(worker_signer()), preparer(None)):
        assert counted_digests(worker.prepare(records, NOW)) == {
            dedup_digest(old["source"], old["id"]),
            dedup_digest(new["source"], new["id"], "tdoffice-38"),
        }


def test_a_publisher_header_that_names_nothing_is_dead_lettered_not_counted_unbound() -> None:
    value = orjson.dumps(document("01843", NOW))
    for bad in (b"", b"\xff\xfe", b"x" * 201):
        record = Record("egov.documents", 0, 0, b"19", value, ((PUBLISHER_HEADER, bad),))
        prepared = preparer(None).prepare([record], NOW)
        assert counted_digests(prepared) == set()
        assert [d.reason for d in prepared.dead_letters] == ["unprocessable"]


@given(record_cases(8), PUBLISHERS, st.sampled_from([None, 0, 90, 100_000]))
@settings(max_examples=60, deadline=None)
def test_every_path_counts_the_same_identities(case: Any, publisher: str, cut: Any) -> None:
    """Random requests through ingest with a publisher and a cut-over: trusted summaries,
    trusted signatures and full validation give the same digests, the publisher's for
    events from the cut-over on and (source, id) before it."""
    sizes, events, _ = case
    unbound_before = None if cut is None else NOW - timedelta(minutes=cut)
    records: list[Record] = []
    start = 0
    for size in sizes:
        part = events[start : start + size]
        start += size
        for i, element in enumerate(part):
            element["id"] = f"e{start}-{i}"
        for r in through_ingest(part, publisher, unbound_before, worker_signer()):
            records.append(dataclasses.replace(r, offset=len(records)))
    by_summary = counted_digests(preparer(worker_signer()).prepare(records, NOW))
    by_signature = counted_digests(
        preparer(RecordSigner(KEY, contract().fingerprint)).prepare(records, NOW)
    )
    validated = counted_digests(preparer(None).prepare(records, NOW))
    assert by_summary == by_signature == validated
    expected = set()
    for e in events:  # the invalid ones never reach a worker
        before = unbound_before is not None and _parse(e["time"]) < unbound_before
        identity = event_identity(e["type"], e["id"], e["data"])  # one per dossier
        expected.add(dedup_digest(e["source"], identity, UNBOUND if before else publisher))
    assert validated <= expected  # too-late events are dead-lettered, never re-identified


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.upper())
