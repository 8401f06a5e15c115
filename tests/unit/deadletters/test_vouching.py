"""Review 91: a replay believes a dead letter's publisher only as a worker would."""

from __future__ import annotations

import orjson

from services.common.signing import RecordSigner
from services.deadletters.letters import DeadLetter
from services.deadletters.replay import plan
from services.deadletters.views import Shown
from services.deadletters.vouching import unvouched

KEY = b"k" * 32
NEXT = b"n" * 32
TOPIC = "egov.documents"
VALUE = orjson.dumps({"id": "VB-1", "source": "urn:egov:19:tdoffice"})


def signer(*also: bytes) -> RecordSigner:
    return RecordSigner(KEY, b"contract", also=also)


def letter(reason: str, signed_with: bytes | None = None, **extra: bytes) -> DeadLetter:
    headers: list[tuple[str, bytes]] = [("egov_publisher", b"thai-nguyen")]
    if signed_with is not None:
        headers = RecordSigner(signed_with, b"other").signed_headers(
            VALUE, topic=TOPIC, key=b"19", headers=headers
        )
    headers += [("dlq_reason", reason.encode()), ("dlq_source", f"{TOPIC}[0]@7".encode())]
    headers += [(name, value) for name, value in extra.items()]
    return DeadLetter("egov.dead-letter[0]@3", 0, b"19", VALUE, tuple(headers))


def test_a_forged_publisher_is_never_believed_whatever_the_key() -> None:
    forged = letter("publisher-unsigned")
    for keys in (signer(), None):
        why = unvouched(forged, keys, None)
        assert "'thai-nguyen' is not believed" in why
        assert "--vouch-publisher thai-nguyen" in why


def test_a_letter_whose_ingest_mac_verifies_is_believed_under_another_contract() -> None:
    # A rotation in the wrong order: the worker lacked the next key; the replay holds it.
    rotated = letter("publisher-unsigned", signed_with=NEXT)
    assert unvouched(rotated, signer(), None)
    assert unvouched(rotated, signer(NEXT), None) == ""


def test_a_mac_moved_to_another_topic_does_not_vouch() -> None:
    moved = letter("publisher-unsigned", signed_with=KEY)
    assert unvouched(moved, signer(), None) == ""
    elsewhere = DeadLetter(
        moved.place,
        0,
        moved.key,
        moved.value,
        tuple((k, b"egov.dossiers[0]@7" if k == "dlq_source" else v) for k, v in moved.headers),
    )
    assert unvouched(elsewhere, signer(), None)


def test_other_reasons_need_the_mac_but_a_batch_element_keeps_the_workers_word() -> None:
    assert unvouched(letter("summary-forged"), signer(), None)
    assert unvouched(letter("unknown-unit", signed_with=KEY), signer(), None) == ""
    assert unvouched(letter("unknown-unit", dlq_batch_index=b"2"), signer(), None) == ""
    assert unvouched(letter("unknown-unit"), None, None) == ""  # no key: believed by all


def test_the_operator_vouches_for_one_name_only() -> None:
    forged = letter("publisher-unsigned")
    assert unvouched(forged, signer(), "thai-nguyen") == ""
    assert unvouched(forged, signer(), "bac-kan")
    unbound = DeadLetter("dl[0]@1", 0, None, VALUE, (("dlq_reason", b"publisher-unsigned"),))
    assert unvouched(unbound, signer(), None) == ""  # names none: nothing to believe


def test_the_plan_skips_an_unvouched_letter_saying_why() -> None:
    shown = [Shown(letter("publisher-unsigned"), ({"id": "VB-1"},), "", "", "19")]
    chosen, left = plan(shown, signer())
    assert chosen == []
    assert [line.split(":")[0] for line in left] == [
        "skipped egov.dead-letter[0]@3 (egov.documents[0]@7, publisher-unsigned)"
    ]
    chosen, left = plan(shown, signer(), "thai-nguyen")
    assert chosen == shown and left == []
