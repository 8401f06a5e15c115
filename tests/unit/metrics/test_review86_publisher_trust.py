"""With a signing key, a worker believes ``egov_publisher`` only under ingest's MAC.

Review 86: a worker took the ingest-only header of an unsigned record written straight
to Kafka at its word, so a producer with topic access could name another system and
spend its ids first: that system's genuine events were then duplicates. Such a record
is dead-lettered (``publisher-unsigned``), never counted as that publisher's nor under
another identity; ingest's own records (signed under this contract or, in a rolling
upgrade, only ``egov_ingested`` under another) keep their publisher. Without a key (the
embedded default) the header is believed, as before. Ids are compared in NFC on every
path (services/common/dossierfacts.py ``canonical_id``).
"""

from __future__ import annotations

import dataclasses
import unicodedata

import orjson
import pytest

from services.common.headers import PUBLISHER_HEADER, publisher_header
from services.common.signing import INGESTED_HEADER, VALIDATED_HEADER, RecordSigner
from services.common.summaries import dedup_digest
from services.metrics.pipeline import Record
from tests.unit.metrics.helpers import contract, counted_digests, document
from tests.unit.metrics.test_publisher_identity import through_ingest
from tests.unit.metrics.test_signed_records import KEY, NOW, preparer
from tests.unit.metrics.test_summaries import worker_signer

VICTIM = "thai-nguyen"


def straight_to_kafka(*headers: tuple[str, bytes]) -> Record:
    value = orjson.dumps(document("01843", NOW, "VB-19-2026-000042"))
    return Record("egov.documents", 0, 0, b"19", value, headers)


@pytest.mark.parametrize(
    "signer",
    [
        pytest.param(worker_signer(), id="summaries"),
        pytest.param(RecordSigner(KEY, contract().fingerprint), id="signatures"),
    ],
)
@pytest.mark.parametrize(
    "forged",
    [
        pytest.param((), id="no MAC"),
        pytest.param(((VALIDATED_HEADER, b"v2:" + b"f" * 80),), id="a forged signature"),
        pytest.param(((INGESTED_HEADER, b"v2:" + b"f" * 80),), id="a forged ingested MAC"),
    ],
)
def test_an_unsigned_record_naming_a_publisher_is_dead_lettered(
    signer: RecordSigner, forged: tuple[tuple[str, bytes], ...]
) -> None:
    prepared = preparer(signer).prepare([straight_to_kafka(publisher_header(VICTIM), *forged)], NOW)
    assert counted_digests(prepared) == set()
    (dead,) = prepared.dead_letters
    assert dead.reason == "publisher-unsigned"


def test_an_unsigned_record_without_a_publisher_still_counts_unbound() -> None:
    record = straight_to_kafka(("traceparent", b"00-abc-01"))
    prepared = preparer(worker_signer()).prepare([record], NOW)
    assert prepared.dead_letters == []
    assert counted_digests(prepared) == {dedup_digest("urn:test:metrics", "VB-19-2026-000042")}


def test_without_a_key_the_header_is_believed_as_before() -> None:
    prepared = preparer(None).prepare([straight_to_kafka(publisher_header(VICTIM))], NOW)
    assert prepared.dead_letters == []
    expected = dedup_digest("urn:test:metrics", "VB-19-2026-000042", VICTIM)
    assert counted_digests(prepared) == {expected}


def test_ingests_records_keep_their_publisher_on_every_path() -> None:
    events = [document("01843", NOW, f"e{i}") for i in range(3)]
    records = through_ingest(events, VICTIM, signer=worker_signer())
    expected = {dedup_digest(e["source"], e["id"], VICTIM) for e in events}
    for signer in (worker_signer(), RecordSigner(KEY, contract().fingerprint), None):
        prepared = preparer(signer).prepare(records, NOW)
        assert prepared.dead_letters == [] and counted_digests(prepared) == expected


def test_a_record_of_ingest_under_another_contract_keeps_its_publisher() -> None:
    """A rolling upgrade: ingest signed under the contract before; its ``egov_ingested``
    MAC (under the key alone) still vouches for the publisher it names."""
    event = document("01843", NOW, "e1")
    records = through_ingest([event], VICTIM, signer=RecordSigner(KEY, b"the contract before"))
    worker = RecordSigner(KEY, contract().fingerprint)
    assert not worker.verifies(
        records[0].value, records[0].headers, topic="egov.documents", key=b"19"
    )
    prepared = preparer(worker).prepare(records, NOW)
    assert prepared.dead_letters == []
    assert counted_digests(prepared) == {dedup_digest(event["source"], "e1", VICTIM)}


def test_a_signed_records_publisher_cannot_be_changed() -> None:
    (record,) = through_ingest([document("01843", NOW, "e1")], "dvc-19", signer=worker_signer())
    headers = tuple(
        publisher_header(VICTIM) if name == PUBLISHER_HEADER else (name, value)
        for name, value in record.headers
    )
    swapped = dataclasses.replace(record, headers=headers)
    prepared = preparer(RecordSigner(KEY, contract().fingerprint)).prepare([swapped], NOW)
    assert counted_digests(prepared) == set()
    assert [d.reason for d in prepared.dead_letters] == ["publisher-unsigned"]


def test_a_decomposed_id_counts_as_its_composed_self_on_every_path() -> None:
    composed = unicodedata.normalize("NFC", "VB-Nông-Cống-2023-011703")
    for form in ("NFC", "NFD"):
        event = document("01843", NOW, unicodedata.normalize(form, composed))
        records = through_ingest(
            [event, document("01843", NOW, "other")], VICTIM, signer=worker_signer()
        )
        for signer in (worker_signer(), RecordSigner(KEY, contract().fingerprint), None):
            found = counted_digests(preparer(signer).prepare(records, NOW))
            assert dedup_digest(event["source"], composed, VICTIM) in found
