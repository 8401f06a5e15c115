"""Review 91: what today's commits (reviews 85 to 87) got wrong, in pure logic and docs.

1. A refused dossier event's canary copies the dossier's stored ledger row by the id as
   the event carried it (services/metrics/refusals.py:417-420, ``DossierClone(...,
   data["dossier_id"], ...)``), but since review 86 the ledger keys a dossier in Unicode
   NFC (services/common/dossierfacts.py:129, ``canonical_id``): for an id sent decomposed
   (NFD) the clone finds no row, and the canary starts a new dossier where the refused
   event continued a stored one, so the probe judges a different ledger transition from
   the one PostgreSQL refused.

2. docs/security.md:216 still says a record whose MAC is under a key the worker does not
   hold (a rotation's next key, a rolling upgrade) is "read as unsigned: validated in
   full, never rejected", while review 86 dead-letters every such record that names a
   publisher (services/metrics/pipeline.py:516-520, ``publisher-unsigned``), i.e. every
   ingest record after the dedup cut-over: an operator who rotates in the wrong order
   (or reads the table to decide the order) is told nothing is lost when it is
   dead-lettered.

3. "An id sent decomposed (NFD) is the same id as composed" (schemas/CONTRACT.md:33-35,
   docs/ingest.md:69) holds only for short ids: ``maxLength`` (64 for ``dossier_id``,
   128 for ``id``; schemas/events/vn.egov.dossier.received.v1.schema.json:13) counts the
   code points as sent, and an NFD Vietnamese letter is two or three of them (``ệ`` is
   ``e`` + U+0323 + U+0302). A dossier id of 40 composed characters that a normalising
   relay decomposes is refused (422) while the same id composed is accepted: the receipt
   arrives, its outcome through the relay never does, and the dossier is counted late.
"""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import orjson

from services.common.contract import Contract
from services.common.dossierfacts import canonical_id
from services.metrics import refusals
from services.metrics.pipeline import Record

ROOT = Path(__file__).resolve().parents[2]


def test_a_canary_clones_the_dossier_row_under_the_key_the_ledger_stores() -> None:
    dossier = unicodedata.normalize("NFD", "H38.Nông-Cống-261206-0012")
    assert dossier != canonical_id(dossier)  # sent decomposed: stored composed
    event = {
        "specversion": "1.0",
        "id": "RES-1",
        "source": "urn:egov:38:dvc",
        "type": "vn.egov.dossier.resolved",
        "time": "2026-12-06T10:00:00+07:00",
        "unit": "16342",
        "data": {"dossier_id": dossier, "outcome": "approved"},
    }
    record = Record("egov.dossiers", 3, 41, b"38", orjson.dumps(event), (), None)
    made = refusals._canary(refusals._Item(record, datetime.now(UTC)))
    assert made is not None
    _, clones = made
    assert [c.dossier_id for c in clones] == [canonical_id(dossier)]


def test_the_security_table_does_not_promise_a_foreign_keys_records_are_never_rejected() -> None:
    text = (ROOT / "docs" / "security.md").read_text()
    promised = [
        line
        for line in text.splitlines()
        if line.startswith("|") and "does not hold" in line and "never rejected" in line
    ]
    assert all("publisher" in row for row in promised), promised


def test_a_dossier_id_sent_decomposed_is_accepted_as_its_composed_form_is() -> None:
    contract = Contract.load()
    composed = "HS-Xã-Thăng-Bình-Nông-Cống-Thanh-Hóa-Hộ-tịch-261206-0012"
    decomposed = unicodedata.normalize("NFD", composed)
    assert len(composed) <= 64 < len(decomposed)  # the same id (Unicode C6)
    (_, example), *_ = contract.examples("vn.egov.dossier.received", "valid")
    accepted = {**example, "data": {**example["data"], "dossier_id": composed}}
    assert contract.validate(accepted) == []
    relayed = {**example, "data": {**example["data"], "dossier_id": decomposed}}
    assert contract.validate(relayed) == []
