"""Review 26: f452eb7, ingest's third MAC ``egov_ingested`` (the key alone, no fingerprint)
and ``EGOV_RECORD_VERIFYING_KEYS`` (keys a signer verifies under, never signs with).

Reviewed: services/common/signing.py (INGESTED_HEADER, _MAC_HEADERS, _INGESTED_DOMAIN,
the prefix look-ups of ``verifies``/``ingested``/``check_summary``, ``also``),
services/ingest/publisher.py ``signed``, services/metrics/pipeline.py
``Preparer._prepare_record`` (the ``signer.ingested`` branch), services/common/settings.py
``verifying_keys``/``record_signer``, docs/security.md (rotation steps, "What a signature
covers") and docs/metrics.md (the clock paragraph), against the previous commit's code
(``git show f452eb7^:services/common/signing.py``).

Two defects, each a strict xfail first, both fixed the same day (2026-12-05): ingest now
adds ``egov_ingested`` before the summary's MAC and the signature, which cover it as any
``egov_`` header (one home for the order: ``RecordSigner.signed_headers``), so a worker of
the previous release verifies the new ingest's records unchanged; and both key variables
are read stripped, a key holding a comma refused at start-up.

1. A rolling upgrade breaks the workers of the previous release: they cover every
   ``egov_`` header but their two MACs, so the new ``egov_ingested`` is inside their MAC
   input and outside ingest's (publisher.py:303-305 builds both MACs over the headers
   before it; signing.py:55 takes it out of the covered set in the new code only). On a
   worker of f452eb7^ every summarised record of the new ingest is ``summary-forged``
   (dead-lettered: what it counted before the upgrade) and every other record no longer
   verifies (validated in full, its acceptance time no longer believed). The version was
   not bumped, so nothing tells the old worker that this is not its format.
2. The signing key is used as written and the verifying keys are stripped and split at
   commas (settings.py:301 against settings.py:315-316): the same secret (a key file
   ending in a newline, a key holding a comma; both accepted as signing keys) given to
   ingest as ``EGOV_RECORD_SIGNING_KEY`` and to the workers in
   ``EGOV_RECORD_VERIFYING_KEYS``, as the rotation steps say, is two different keys, and
   the records of the rotation read as unsigned, silently.

Claims checked that hold (each can fail): no MAC is accepted in another MAC's header, and
null or non-bytes MAC headers verify nothing; a summary of an older version under a
verifying key verifies as that version, the current version under one as the current
(None); the worker pays at most one HMAC per record whatever the path (the new check runs
only for a record no other MAC vouched for), and ingest one per MAC per record, not per
event; the settings' edge cases (compose's empty default, blanks, the signing key
repeated, a public key refused by its place) and no key material in the settings' repr,
JSON or errors.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
from collections.abc import Sequence
from datetime import timedelta

import pytest
from pydantic import SecretStr

from services.common.settings import CommonSettings, SigningKeyError
from services.common.signing import (
    INGESTED_HEADER,
    SUMMARY_HEADER,
    SUMMARY_MAC_HEADER,
    VALIDATED_HEADER,
    RecordSigner,
    SummaryCheck,
)
from services.common.summaries import summary_fingerprint
from tests.unit.metrics.helpers import catalogue, document, registry
from tests.unit.metrics.test_review11_clock_and_ready import WORKER_NOW, published
from tests.unit.metrics.test_signed_records import KEY, NOW, preparer
from tests.unit.metrics.test_summaries import worker_signer

CONTRACT, SUMMARIES = b"contract-fingerprint", b"summary-fingerprint"
TOPIC, RECORD_KEY, VALUE, SUMMARY = "egov.documents", b"19", b'[{"id": "e1"}]', b'{"g": []}'
BASE = [("content-type", b"application/cloudevents-batch+json"), ("egov_accepted_ms", b"1")]
NEXT = bytes.fromhex("3d" * 8 + "91" * 8 + "c4" * 8 + "08" * 8)
Headers = list[tuple[str, object]]


def as_ingest_signs(s: RecordSigner, summary: bool = True) -> Headers:
    """The headers services/ingest/publisher.py ``signed`` writes, in its order (its one
    home since the fix: ``RecordSigner.signed_headers``)."""
    return list(
        s.signed_headers(
            VALUE, topic=TOPIC, key=RECORD_KEY, headers=BASE, summary=SUMMARY if summary else None
        )
    )


# --- 1. a worker of the previous release reads the new ingest's records -------------------


def _framed(data: bytes | None) -> bytes:
    return (2**64 - 1).to_bytes(8, "big") if data is None else len(data).to_bytes(8, "big") + data


def _hex_id(key: bytes, what: bytes) -> bytes:
    return hmac.new(key, b"id:" + what, hashlib.sha256).hexdigest()[:16].encode()


class PreviousReleaseSigner:
    """f452eb7^'s RecordSigner for its own key and fingerprints, frozen here (the wire
    format its workers still run during a rolling upgrade): it covers every ``egov_``
    header except ``egov_validated`` and ``egov_summary_mac``."""

    _MACS = frozenset({VALIDATED_HEADER, SUMMARY_MAC_HEADER})

    def __init__(self, key: bytes, contract_fp: bytes, summary_fp: bytes) -> None:
        self.key = key
        self.record_fp = b"egov-record/2:" + contract_fp
        self.summary_fp = b"egov-summary/2:" + summary_fp
        key_id = _hex_id(key, b"key-id")
        self.prefix = b"v2:%s:%s:" % (key_id, _hex_id(key, contract_fp))
        self.summary_prefix = b"v2:%s:%s:" % (key_id, _hex_id(key, self.summary_fp))

    def _mac(self, fp: bytes, headers: Sequence[tuple[str, object]]) -> bytes:
        mac = hmac.new(self.key, fp, hashlib.sha256)
        mac.update(_framed(TOPIC.encode()))
        mac.update(_framed(RECORD_KEY))
        covered = sorted(
            (
                (n.encode(), v if isinstance(v, bytes) else None)
                for n, v in headers
                if n.startswith("egov_") and n not in self._MACS
            ),
            key=lambda h: (h[0], h[1] is None, h[1] or b""),
        )
        mac.update(len(covered).to_bytes(8, "big"))
        for name, value in covered:
            mac.update(_framed(name))
            mac.update(_framed(value))
        mac.update(VALUE)
        return mac.hexdigest().encode()

    def verifies(self, headers: Sequence[tuple[str, object]]) -> bool:
        signature = dict(headers).get(VALIDATED_HEADER)
        if not isinstance(signature, bytes) or not signature.startswith(self.prefix):
            return False
        return hmac.compare_digest(self.prefix + self._mac(self.record_fp, headers), signature)

    def check_summary(self, headers: Sequence[tuple[str, object]]) -> SummaryCheck:
        mac = dict(headers).get(SUMMARY_MAC_HEADER)
        assert isinstance(mac, bytes)
        if not mac.startswith(self.summary_prefix):
            return SummaryCheck.NOT_OURS
        expected = self.summary_prefix + self._mac(self.summary_fp, headers)
        return SummaryCheck.VERIFIED if hmac.compare_digest(expected, mac) else SummaryCheck.FORGED


def test_the_frozen_previous_release_verifies_what_the_previous_ingest_wrote() -> None:
    # The frozen copy is faithful: the previous ingest wrote the same MACs, less
    # egov_ingested (neither of the other two covers it), and the old worker trusted them.
    old = PreviousReleaseSigner(KEY, CONTRACT, SUMMARIES)
    s = RecordSigner(KEY, CONTRACT, SUMMARIES)
    previous: Headers = list(BASE)  # the previous ingest: summary, its MAC, the signature
    previous += s.summary_headers(VALUE, SUMMARY, topic=TOPIC, key=RECORD_KEY, headers=previous)
    previous.append(s.header(VALUE, topic=TOPIC, key=RECORD_KEY, headers=previous))
    assert old.verifies(previous)
    assert old.check_summary(previous) is SummaryCheck.VERIFIED
    altered = [(n, b"2" if n == "egov_accepted_ms" else v) for n, v in previous]
    assert old.check_summary(altered) is SummaryCheck.FORGED
    assert not old.verifies(altered)


@pytest.mark.parametrize("summary", [True, False], ids=["summarised", "single"])
def test_a_worker_of_the_previous_release_trusts_the_new_ingests_records(summary: bool) -> None:
    old_worker = PreviousReleaseSigner(KEY, CONTRACT, SUMMARIES)
    headers = as_ingest_signs(RecordSigner(KEY, CONTRACT, SUMMARIES), summary)
    if summary:
        # f452eb7^'s Preparer._prepare_record dead-letters FORGED; NOT_OURS would at
        # least be read event by event.
        assert old_worker.check_summary(headers) is not SummaryCheck.FORGED
        assert old_worker.check_summary(headers) is SummaryCheck.VERIFIED
    assert old_worker.verifies(headers)


# --- 2. the same secret as the signing key and as a verifying key -------------------------


@pytest.mark.parametrize("shape", ["a trailing newline", "a comma inside"])
def test_the_same_secret_signs_and_verifies_through_a_rotation(shape: str) -> None:
    """A strict xfail until fixed the same day: both variables are read stripped, and a
    key holding a comma (which the verifying list would split) is refused at start-up."""
    hexed = secrets.token_hex(32)
    secret = hexed + "\n" if shape == "a trailing newline" else f"{hexed},{secrets.token_hex(32)}"
    ingest = CommonSettings(record_signing_key=SecretStr(secret), embedded_broker=False)
    if shape == "a comma inside":
        with pytest.raises(SigningKeyError, match="comma") as refused:
            ingest.record_signer(CONTRACT, SUMMARIES)
        assert hexed not in str(refused.value)
        return
    worker = CommonSettings(
        record_signing_key=SecretStr(secrets.token_hex(32)),
        record_verifying_keys=SecretStr(secret),  # step 2: the previous key, to verify
        embedded_broker=False,
    )
    ingest_signer = ingest.record_signer(CONTRACT, SUMMARIES)
    worker_signer_ = worker.record_signer(CONTRACT, SUMMARIES)
    assert ingest_signer is not None and worker_signer_ is not None
    headers = as_ingest_signs(ingest_signer)
    assert worker_signer_.verifies(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
    check, _, _ = worker_signer_.check_summary(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
    assert check is SummaryCheck.VERIFIED


# --- claims that hold ---------------------------------------------------------------------


MACS = (VALIDATED_HEADER, SUMMARY_MAC_HEADER, INGESTED_HEADER)


@pytest.mark.parametrize(("taken", "put"), list(itertools.permutations(MACS, 2)))
def test_no_mac_is_accepted_in_another_macs_header(taken: str, put: str) -> None:
    """Each MAC moved into another's header (the originals dropped) verifies nothing,
    under the signing key and a verifying key, whichever contract the worker runs."""
    for ingest_key in (KEY, NEXT):
        signed = as_ingest_signs(RecordSigner(ingest_key, CONTRACT, SUMMARIES))
        value = dict(signed)[taken]
        headers = [h for h in signed if h[0] not in MACS] + [(put, value)]
        for worker in (
            RecordSigner(KEY, CONTRACT, SUMMARIES, also=[NEXT]),
            RecordSigner(KEY, b"other-contract", b"other-summaries", also=[NEXT]),
        ):
            assert not worker.verifies(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
            assert not worker.ingested(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
            check, summary, _ = worker.check_summary(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
            assert summary is None and check is not SummaryCheck.VERIFIED


@pytest.mark.parametrize("value", [None, "text", b"", b"v2:", 7])
def test_an_ingested_header_that_is_not_a_mac_vouches_for_nothing(value: object) -> None:
    headers = as_ingest_signs(RecordSigner(KEY, CONTRACT, SUMMARIES))
    worker = RecordSigner(KEY, b"other-contract", also=[NEXT])
    assert worker.ingested(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
    # First occurrence decides: a junk one before the real one vouches for nothing.
    junk = [(INGESTED_HEADER, value), *headers]
    assert not worker.ingested(VALUE, junk, topic=TOPIC, key=RECORD_KEY)
    alone = [(n, value if n == INGESTED_HEADER else v) for n, v in headers]
    assert not worker.ingested(VALUE, alone, topic=TOPIC, key=RECORD_KEY)


def test_an_older_summary_version_under_a_verifying_key_verifies_as_that_version() -> None:
    """check_summary's version for also-keys: None for the current fingerprint, the
    version given to verifies_summaries_of for an older one, under either key."""
    older = b"summary-fingerprint-of-version-1"
    worker = RecordSigner(NEXT, CONTRACT, SUMMARIES, also=[KEY])
    worker.verifies_summaries_of(1, older)
    for ingest_key in (KEY, NEXT):
        for fp, version in ((SUMMARIES, None), (older, 1)):
            headers = as_ingest_signs(RecordSigner(ingest_key, CONTRACT, fp))
            assert worker.check_summary(VALUE, headers, topic=TOPIC, key=RECORD_KEY) == (
                SummaryCheck.VERIFIED, SUMMARY, version,
            )  # fmt: skip
    # A MAC for the verifying key's own prefix that does not verify: forged, not "not ours".
    headers = as_ingest_signs(RecordSigner(KEY, CONTRACT, older))
    altered = [(n, b"9" if n == "egov_accepted_ms" else v) for n, v in headers]
    check, _, _ = worker.check_summary(VALUE, altered, topic=TOPIC, key=RECORD_KEY)
    assert check is SummaryCheck.FORGED


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = RecordSigner._mac

    def counted(*args: object, **kwargs: object) -> bytes:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RecordSigner, "_mac", staticmethod(counted))
    return calls


@pytest.mark.parametrize("contract_of_ingest", ["ours", "the next"])
@pytest.mark.parametrize("packed", [False, True], ids=["single", "summarised"])
def test_the_worker_pays_at_most_one_hmac_per_record(
    monkeypatch: pytest.MonkeyPatch, contract_of_ingest: str, packed: bool
) -> None:
    """Count, not time: on a lagging worker (every record accepted "ahead" of its clock,
    the case where the new branch runs) a record costs one HMAC whichever path it takes:
    the summary's, the signature's, or egov_ingested's when neither is for this worker."""
    if contract_of_ingest == "ours":
        ingest = worker_signer()
    else:
        fp = summary_fingerprint(b"contract-v2", catalogue(), registry())
        ingest = RecordSigner(KEY, b"contract-v2", fp)
    events = [document("01843", NOW + timedelta(seconds=200), "ahead")]
    if packed:
        events.append(document("01843", NOW - timedelta(minutes=1), "near"))
    records = published(events, NOW, signer=ingest)
    worker = preparer(worker_signer())
    calls = _counting(monkeypatch)
    prepared = worker.prepare(records, WORKER_NOW)
    assert [d.reason for d in prepared.dead_letters] == []
    assert len(calls) == len(records)


@pytest.mark.parametrize("events", [1, 40])
def test_ingest_pays_one_hmac_per_mac_per_record_not_per_event(
    monkeypatch: pytest.MonkeyPatch, events: int
) -> None:
    """Ingest's added cost: egov_ingested is one more HMAC over each record (two for a
    single event, three with a summary), whatever the number of events it packs."""
    calls = _counting(monkeypatch)
    many = [document("01843", NOW - timedelta(seconds=i + 1), f"e{i}") for i in range(events)]
    records = published(many, NOW)
    assert len(records) == 1
    assert len(calls) == (2 if events == 1 else 3)


def test_verifying_keys_settings_edge_cases() -> None:
    signing = secrets.token_hex(32)
    strong = secrets.token_hex(32)

    def settings(raw: str) -> CommonSettings:
        return CommonSettings(
            record_signing_key=SecretStr(signing),
            record_verifying_keys=SecretStr(raw),
            embedded_broker=False,
        )

    # docker-compose.yml's default is the empty string; blanks and spaces are no keys.
    assert settings("").verifying_keys == ()
    assert settings(" , ,").verifying_keys == ()
    assert settings(f" {strong} ,{strong}").verifying_keys == (strong.encode(),) * 2
    # The signing key repeated among them changes nothing: it signs and verifies as before.
    repeated = settings(f"{signing},{strong}").record_signer(CONTRACT, SUMMARIES)
    alone = CommonSettings(
        record_signing_key=SecretStr(signing), embedded_broker=False
    ).record_signer(CONTRACT, SUMMARIES)
    assert repeated is not None and alone is not None
    assert as_ingest_signs(repeated) == as_ingest_signs(alone)
    assert repeated.verifies(VALUE, as_ingest_signs(alone), topic=TOPIC, key=RECORD_KEY)
    # A public key is refused by its place; no key is ever written back.
    public = settings(f"{strong},,egov-dev-only-signing-key")
    with pytest.raises(SigningKeyError, match=r"VERIFYING_KEYS key 3 is the public default"):
        public.record_signer(CONTRACT)
    shown = repr(public) + public.model_dump_json() + str(public.record_verifying_keys)
    assert strong not in shown and signing not in shown and "dev-only" not in shown


def test_a_summary_of_a_verifying_key_is_trusted_only_with_its_own_record() -> None:
    """Replay: a summary and its MAC (or egov_ingested) from a record of a verifying key,
    put on another record, do not verify (forged, not counted)."""
    worker = RecordSigner(KEY, CONTRACT, SUMMARIES, also=[NEXT])
    donor = as_ingest_signs(RecordSigner(NEXT, CONTRACT, SUMMARIES))
    other_value = VALUE + b" "
    for topic, value in ((TOPIC, other_value), ("egov.meetings", VALUE)):
        check, summary, _ = worker.check_summary(value, donor, topic=topic, key=RECORD_KEY)
        assert (check, summary) == (SummaryCheck.FORGED, None)
        assert not worker.ingested(value, donor, topic=topic, key=RECORD_KEY)
        assert not worker.verifies(value, donor, topic=topic, key=RECORD_KEY)
    assert dict(donor)[SUMMARY_HEADER] == SUMMARY
