"""An id is keyed in Unicode NFC: the same id decomposed is the same event and dossier.

Review 86: the dedup digest hashed an id's code points as sent, so a retry whose
Vietnamese id came decomposed (NFD) counted twice, and a dossier's outcome sent so
started a second dossier. Ids are normalised before keying (``canonical_id``), and an
id already NFC (ASCII above all) keys exactly as it always did.
"""

from __future__ import annotations

import hashlib
import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from services.common.dossierfacts import RECEIVED, RESOLVED, canonical_id, fact_of, ledger_id
from services.common.tally import UNBOUND, dedup_digest, event_digest

COMPOSED = unicodedata.normalize("NFC", "VB-Nông-Cống-2023-011703")
DECOMPOSED = unicodedata.normalize("NFD", COMPOSED)
SOURCE = "urn:egov:38:tdoffice"


def test_an_ascii_or_composed_id_is_itself() -> None:
    ascii_id = "H38.14758-261206-0012"
    assert canonical_id(ascii_id) is ascii_id
    assert canonical_id(COMPOSED) == COMPOSED
    assert COMPOSED != DECOMPOSED and canonical_id(DECOMPOSED) == COMPOSED


def test_a_composed_ids_digest_is_the_one_stored_before_ids_were_normalised() -> None:
    text = f"{len(SOURCE)}:{SOURCE}{COMPOSED}"
    stored = hashlib.blake2b(text.encode(), digest_size=16).digest()
    assert dedup_digest(SOURCE, COMPOSED) == stored == dedup_digest(SOURCE, DECOMPOSED)
    bound = hashlib.blake2b(f"p6:motcua{text}".encode(), digest_size=16).digest()
    assert dedup_digest(SOURCE, DECOMPOSED, "motcua") == bound


def test_a_dossier_is_one_dossier_in_either_form() -> None:
    for event_type, data in (
        (RECEIVED, {"service_level": "full", "channel": "online"}),
        (RESOLVED, {"outcome": "approved"}),
    ):
        forms = [{**data, "dossier_id": f"HS-{form}"} for form in (COMPOSED, DECOMPOSED)]
        digests = {event_digest(SOURCE, event_type, "e1", d, "motcua") for d in forms}
        assert len(digests) == 1
        for publisher in (UNBOUND, "motcua"):
            facts = [fact_of(event_type, d, publisher) for d in forms]
            keys = {f.dossier_id for f in facts if f is not None}
            assert keys == {ledger_id(f"HS-{COMPOSED}", publisher)}


@given(st.text(max_size=40), st.sampled_from([UNBOUND, "motcua", "hội nghị"]))
def test_canonically_equivalent_ids_share_a_digest(text: str, publisher: str) -> None:
    forms = {unicodedata.normalize(form, text) for form in ("NFC", "NFD", "NFKC")}
    equivalent = {f for f in forms if unicodedata.normalize("NFC", f) == canonical_id(text)}
    assert len({dedup_digest(SOURCE, f, publisher) for f in equivalent}) == 1
    assert unicodedata.is_normalized("NFC", canonical_id(text))
