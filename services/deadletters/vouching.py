"""Whether a replay may believe a dead letter's ``egov_publisher``. Pure.

A publisher is ingest's to name (schemas/CONTRACT.md §5): with a signing key, a worker
believes the header only under one of ingest's MACs (the record signature, the summary's
MAC or ``egov_ingested``) and dead-letters a record naming one without it as
``publisher-unsigned`` (review 86). A replay re-signs a letter's events as the publisher
it names, so it believes that name on the same terms (review 91): an ingest MAC on the
letter verifies under the replay's keys (``EGOV_RECORD_SIGNING_KEY`` and
``EGOV_RECORD_VERIFYING_KEYS``), or the operator vouches for the name
(``--vouch-publisher``). Else the letter is skipped, saying why.

- ``publisher-unsigned``: only a verifying MAC (a record of a key the worker did not hold
  yet, replayed once the keys agree) or the operator's word; never the reason itself.
- A copy of a whole record: its MACs are checked over its topic, key, headers and value.
- An element of a batch, a reference: the letter does not carry the record the MACs
  cover, and the worker wrote it only after it believed the record's publisher (every
  other reason is judged after that check), so the worker's judgement stands.
- No signing key (the embedded development default): the workers believe the header
  from anyone who can write the topic, and so does the replay.
"""

from __future__ import annotations

from services.common.signing import RecordSigner, SummaryCheck
from services.deadletters.letters import DeadLetter

PUBLISHER_UNSIGNED = "publisher-unsigned"


def unvouched(letter: DeadLetter, signer: RecordSigner | None, vouched_for: str | None) -> str:
    """Why ``letter``'s publisher is not believed ("" when it is, or it names none)."""
    named = letter.publisher_text
    if named is None or named == vouched_for:
        return ""
    if letter.reason != PUBLISHER_UNSIGNED:
        if signer is None or letter.batch_index is not None or letter.is_reference:
            return ""
    if signer is not None and not letter.is_reference and _signed(letter, signer):
        return ""
    if signer is None:
        why = "no signing key is configured here to check ingest's MAC on it"
    elif letter.is_reference:
        why = "it is a reference: the record its MAC covers is not in the letter"
    else:
        why = "no ingest MAC on it verifies under EGOV_RECORD_SIGNING_KEY or a verifying key"
    return (
        f"its {named!r} is not believed: {why} (a producer writing straight to Kafka can name"
        f" any publisher); not replayed. If {named!r} confirms these events are its own,"
        f" replay them with --vouch-publisher {named}; else let it send them again through"
        " ingest, or leave them"
    )


def _signed(letter: DeadLetter, signer: RecordSigner) -> bool:
    """Whether one of ingest's MACs on the letter's record verifies under ``signer``."""
    value, headers, key = letter.value, letter.headers, letter.key
    topic = letter.source_topic
    if signer.ingested(value, headers, topic=topic, key=key):
        return True
    if signer.verifies(value, headers, topic=topic, key=key):
        return True
    check, _, _ = signer.check_summary(value, headers, topic=topic, key=key)
    return check is SummaryCheck.VERIFIED
