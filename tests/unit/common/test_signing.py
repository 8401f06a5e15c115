"""Record signatures, version 2 (issue 15): they cover the topic, the record key and every
``egov_`` header; older or foreign MACs are read as unsigned, forged ones are told apart;
and the key itself is refused at start-up when missing, public or weak."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import pytest
from pydantic import SecretStr

from services.common.settings import (
    CommonSettings,
    SigningKeyError,
    key_entropy_bits,
    signing_key_problem,
)
from services.common.signing import (
    SUMMARY_HEADER,
    SUMMARY_MAC_HEADER,
    VALIDATED_HEADER,
    RecordSigner,
    SummaryCheck,
)

KEY = bytes.fromhex("5c" * 8 + "0f" * 8 + "a1" * 8 + "e7" * 8)
CONTRACT, SUMMARIES = b"contract-fingerprint", b"summary-fingerprint"
TOPIC, RECORD_KEY, VALUE, SUMMARY = "egov.documents", b"19", b'[{"id": "e1"}]', b'{"g": []}'
BASE = [("content-type", b"application/cloudevents-batch+json"), ("egov_accepted_ms", b"1")]


def signer(key: bytes = KEY, summaries: bytes = SUMMARIES) -> RecordSigner:
    return RecordSigner(key, CONTRACT, summaries)


def signed_headers(s: RecordSigner | None = None) -> list[tuple[str, object]]:
    """As ingest signs (services/ingest/publisher.py ``signed``): summary, then record."""
    s = s or signer()
    headers: list[tuple[str, object]] = list(BASE)
    headers += s.summary_headers(VALUE, SUMMARY, topic=TOPIC, key=RECORD_KEY, headers=headers)
    headers.append(s.header(VALUE, topic=TOPIC, key=RECORD_KEY, headers=headers))
    return headers


def verdict(
    headers: Sequence[tuple[str, object]], topic: str = TOPIC, key: bytes | None = RECORD_KEY
) -> tuple[bool, SummaryCheck]:
    s = signer()
    check, _, _ = s.check_summary(VALUE, headers, topic=topic, key=key)
    return s.verifies(VALUE, headers, topic=topic, key=key), check


def test_a_record_as_ingest_signed_it_verifies() -> None:
    headers = signed_headers()
    assert verdict(headers) == (True, SummaryCheck.VERIFIED)
    assert signer().verified_summary(VALUE, headers, topic=TOPIC, key=RECORD_KEY) == SUMMARY


def test_a_summary_of_an_older_version_verifies_as_that_version() -> None:
    """A worker writes one summary version and reads the older ones it was told of: each
    summary says which fingerprint (and so version) its MAC was made under."""
    older = signer(summaries=b"older-summary-fingerprint")
    reader = signer()
    assert reader.check_summary(VALUE, signed_headers(older), topic=TOPIC, key=RECORD_KEY)[0] is (
        SummaryCheck.NOT_OURS
    )
    reader.verifies_summaries_of(1, b"older-summary-fingerprint")
    where = {"topic": TOPIC, "key": RECORD_KEY}
    assert reader.check_summary(VALUE, signed_headers(older), **where) == (
        SummaryCheck.VERIFIED,
        SUMMARY,
        1,
    )
    assert reader.check_summary(VALUE, signed_headers(), **where) == (
        SummaryCheck.VERIFIED,
        SUMMARY,
        None,
    )
    forged = [(k, v) for k, v in signed_headers(older) if k != SUMMARY_HEADER]
    forged.append((SUMMARY_HEADER, b'{"g": [1]}'))
    assert reader.check_summary(VALUE, forged, **where)[0] is SummaryCheck.FORGED
    other_key = signer(key=b"x" * 32, summaries=b"older-summary-fingerprint")
    assert reader.check_summary(VALUE, signed_headers(other_key), **where)[0] is (
        SummaryCheck.NOT_OURS
    )


@pytest.mark.parametrize(
    ("change", "where"),
    [
        pytest.param(lambda h: h, {"topic": "egov.dossiers"}, id="copied to another topic"),
        pytest.param(lambda h: h, {"key": b"38"}, id="re-keyed"),
        pytest.param(lambda h: h, {"key": None}, id="key dropped"),
        pytest.param(lambda h: [*h, ("egov_backfill", b"1")], {}, id="backfill header added"),
        pytest.param(lambda h: [*h, ("egov_publisher", b"other")], {}, id="publisher added"),
        pytest.param(
            lambda h: [(k, b"2" if k == "egov_accepted_ms" else v) for k, v in h],
            {},
            id="acceptance time changed",
        ),
        pytest.param(lambda h: [*h, ("egov_accepted_ms", b"1")], {}, id="header duplicated"),
        pytest.param(
            lambda h: [(k, v) for k, v in h if k != "egov_accepted_ms"], {}, id="header removed"
        ),
    ],
)
def test_what_the_signature_covers(change: object, where: dict[str, object]) -> None:
    """Each change makes both MACs of a signed record fail, so the summary is forged."""
    assert callable(change)
    headers = change(signed_headers())
    topic = str(where.get("topic", TOPIC))
    key = where["key"] if "key" in where else RECORD_KEY
    assert verdict(headers, topic, key) == (False, SummaryCheck.FORGED)  # type: ignore[arg-type]


def test_headers_outside_egov_and_their_order_are_not_covered() -> None:
    headers = [("traceparent", b"00-ab-01"), *reversed(signed_headers())]
    assert verdict(headers) == (True, SummaryCheck.VERIFIED)


def test_version_1_signatures_are_read_as_unsigned_not_forged() -> None:
    """What ingest wrote before this version: the bare hex HMAC of the value."""
    headers = [*BASE, (SUMMARY_HEADER, SUMMARY), (SUMMARY_MAC_HEADER, b"ab" * 32)]
    headers.append((VALIDATED_HEADER, b"cd" * 32))
    assert verdict(headers) == (False, SummaryCheck.NOT_OURS)


def test_another_key_or_fingerprint_is_not_ours_and_not_forged() -> None:
    """A key rotation or a rolling upgrade of the catalogue: read the events, never reject."""
    other_key = signer(key=bytes(reversed(KEY)))
    assert verdict(signed_headers(other_key)) == (False, SummaryCheck.NOT_OURS)
    other_catalogue = signer(summaries=b"another catalogue")
    assert verdict(signed_headers(other_catalogue)) == (True, SummaryCheck.NOT_OURS)


def test_a_summary_without_a_mac_is_unsigned() -> None:
    headers = [h for h in signed_headers() if h[0] != SUMMARY_MAC_HEADER]
    assert verdict(headers)[1] is SummaryCheck.UNSIGNED
    headers = [(k, None if k == SUMMARY_MAC_HEADER else v) for k, v in signed_headers()]
    assert verdict(headers)[1] is SummaryCheck.UNSIGNED
    # A null summary header claims nothing.
    assert verdict([*BASE, (SUMMARY_HEADER, None)])[1] is SummaryCheck.NONE


def test_a_guessed_mac_with_our_ids_is_forged() -> None:
    headers = signed_headers()
    mac = dict(headers)[SUMMARY_MAC_HEADER]
    assert isinstance(mac, bytes)
    guessed = mac[:-64] + b"0" * 64
    headers = [(k, guessed if k == SUMMARY_MAC_HEADER else v) for k, v in headers]
    assert verdict(headers)[1] is SummaryCheck.FORGED


# --------------------------------------------------------------- the key at start-up


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (None, "is required"),
        ("", "is required"),
        ("egov-dev-only-signing-key", "public default"),
        ("0123456789abcdef" * 2, "too weak"),  # 32 hex digits: 128 bits
        ("k" * 64, "too weak"),
        ("correct horse battery staple", "too weak"),
    ],
)
def test_a_missing_public_or_weak_key_stops_a_service_outside_the_embedded_broker(
    key: str | None, why: str
) -> None:
    settings = CommonSettings(
        record_signing_key=None if key is None else SecretStr(key), embedded_broker=False
    )
    with pytest.raises(SigningKeyError, match=why) as error:
        settings.record_signer(CONTRACT)
    if key:
        assert key not in str(error.value)  # the message never repeats the key


def test_a_strong_key_is_accepted() -> None:
    for key in (secrets.token_hex(32), secrets.token_urlsafe(32)):
        settings = CommonSettings(record_signing_key=SecretStr(key), embedded_broker=False)
        assert settings.signs_records and settings.record_signer(CONTRACT) is not None


def test_the_embedded_default_may_run_unsigned_but_never_with_the_public_key() -> None:
    assert (
        CommonSettings(record_signing_key=None, embedded_broker=True).record_signer(CONTRACT)
        is None
    )
    assert CommonSettings(record_signing_key=SecretStr("short"), embedded_broker=True).signs_records
    with pytest.raises(SigningKeyError, match="public default"):
        CommonSettings(
            record_signing_key=SecretStr("egov-dev-only-signing-key"), embedded_broker=True
        ).record_signer(CONTRACT)


def test_entropy_estimate() -> None:
    assert key_entropy_bits(secrets.token_hex(32)) == 256
    assert key_entropy_bits("ab" * 40) == 80  # two symbols: one bit each
    assert signing_key_problem("", required=False) is None


NEXT = bytes.fromhex("3d" * 8 + "91" * 8 + "c4" * 8 + "08" * 8)


def test_a_rotation_verifies_records_and_summaries_of_the_next_key() -> None:
    """The worker verifies the next key (``EGOV_RECORD_VERIFYING_KEYS``) before ingest
    signs with it: records and summaries of either key verify, as the current version;
    a MAC of the next key that does not verify is forged, a third key's is not ours."""
    worker = RecordSigner(KEY, CONTRACT, SUMMARIES, also=[NEXT])
    for ingest in (signer(), signer(NEXT)):
        headers = signed_headers(ingest)
        assert worker.verifies(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
        assert worker.check_summary(VALUE, headers, topic=TOPIC, key=RECORD_KEY) == (
            SummaryCheck.VERIFIED, SUMMARY, None,
        )  # fmt: skip
        assert not worker.verifies(VALUE, headers, topic="egov.meetings", key=RECORD_KEY)
    altered = [(n, b"2" if n == "egov_accepted_ms" else v) for n, v in signed_headers(signer(NEXT))]
    assert (
        worker.check_summary(VALUE, altered, topic=TOPIC, key=RECORD_KEY)[0] is SummaryCheck.FORGED
    )
    third = signed_headers(signer(b"t" * 32))
    assert (
        worker.check_summary(VALUE, third, topic=TOPIC, key=RECORD_KEY)[0] is SummaryCheck.NOT_OURS
    )
    assert not worker.verifies(VALUE, third, topic=TOPIC, key=RECORD_KEY)


def test_the_ingested_mac_holds_across_contracts_and_only_for_the_record_it_covers() -> None:
    """``egov_ingested``: under the key alone, so a worker on another contract knows the
    record came from ingest; any change to the record, its topic or its egov_ headers, or
    another key, and it does not verify."""
    ingest = RecordSigner(KEY, b"next-contract", SUMMARIES)
    headers: list[tuple[str, object]] = list(BASE)
    headers.append(ingest.ingested_header(VALUE, topic=TOPIC, key=RECORD_KEY, headers=BASE))
    headers.append(ingest.header(VALUE, topic=TOPIC, key=RECORD_KEY, headers=BASE))
    worker = signer()
    assert worker.ingested(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
    assert not worker.verifies(VALUE, headers, topic=TOPIC, key=RECORD_KEY)  # another contract
    assert not worker.ingested(VALUE + b" ", headers, topic=TOPIC, key=RECORD_KEY)
    assert not worker.ingested(VALUE, headers, topic="egov.meetings", key=RECORD_KEY)
    later = [(n, b"9" if n == "egov_accepted_ms" else v) for n, v in headers]
    assert not worker.ingested(VALUE, later, topic=TOPIC, key=RECORD_KEY)
    assert not signer(NEXT).ingested(VALUE, headers, topic=TOPIC, key=RECORD_KEY)
    assert RecordSigner(NEXT, CONTRACT, also=[KEY]).ingested(
        VALUE, headers, topic=TOPIC, key=RECORD_KEY
    )


def test_verifying_keys_are_refused_like_the_signing_key() -> None:
    strong = secrets.token_hex(32)
    settings = CommonSettings(
        record_signing_key=SecretStr(secrets.token_hex(32)),
        record_verifying_keys=SecretStr(f"{strong}, "),
        embedded_broker=False,
    )
    assert settings.verifying_keys == (strong.encode(),)
    weak = CommonSettings(
        record_signing_key=SecretStr(secrets.token_hex(32)),
        record_verifying_keys=SecretStr(f"{strong},k{'k' * 63}"),
        embedded_broker=False,
    )
    with pytest.raises(SigningKeyError, match=r"VERIFYING_KEYS key 2 .*too weak") as error:
        weak.record_signer(CONTRACT)
    assert strong not in str(error.value)
