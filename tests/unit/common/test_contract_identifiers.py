"""The identifiers the dedup digest and the dossier ledger key on refuse what no one sees.

Review 86: ``id`` and ``dossier_id`` refused only C0 and DEL, so a trailing zero-width
space made one printed receipt code two dossiers, and a bidi override let an id reorder
the row an operator reads. One pattern, in the schema files (the contract), refuses
every control, format and other invisible character; these tests hold it to Unicode.
"""

from __future__ import annotations

import json
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from services.common.contract import ENVELOPE_FILE, EVENTS_DIR, Contract
from services.common.paths import SCHEMAS_DIR
from services.common.textrows import invisible

CONTRACT = Contract.load()

DEFAULT_IGNORABLE = [
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
]  # fmt: skip
"""Default_Ignorable_Code_Point (Unicode 15.1 DerivedCoreProperties.txt): drawn as nothing."""


def _identifier_patterns() -> dict[str, str]:
    """Every pattern of an ``id`` or ``dossier_id``, by where it is."""
    found = {}
    envelope = json.loads((SCHEMAS_DIR / ENVELOPE_FILE).read_text(encoding="utf-8"))
    found[ENVELOPE_FILE] = envelope["properties"]["id"]["pattern"]
    for path in sorted((SCHEMAS_DIR / EVENTS_DIR).glob("*.schema.json")):
        dossier_id = json.loads(path.read_text(encoding="utf-8"))["properties"].get("dossier_id")
        if dossier_id is not None:
            found[path.name] = dossier_id["pattern"]
    return found


PATTERNS = _identifier_patterns()
PATTERN = PATTERNS[ENVELOPE_FILE]


def _refused() -> list[int]:
    """The code points Unicode says an identifier must not hold (this Python's data)."""
    categories = ("Cc", "Cf", "Zl", "Zp")
    out = [c for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) in categories]
    out += [c for first, last in DEFAULT_IGNORABLE for c in range(first, last + 1)]
    return sorted(set(out))


def test_every_dossier_schema_and_the_envelope_share_one_identifier_pattern() -> None:
    assert len(PATTERNS) == 6  # the envelope, received, paid, resolved v1 and v2, resubmitted
    assert set(PATTERNS.values()) == {PATTERN}, PATTERNS


def test_the_pattern_refuses_every_control_format_and_invisible_character() -> None:
    rust = jsonschema_rs.validator_for({"type": "string", "pattern": PATTERN})
    # What fastjsonschema and hypothesis compile it with (whose "$" also matches before a
    # final line feed, so the character is put inside).
    python = re.compile(PATTERN)
    accepted = [
        c for c in _refused() if rust.is_valid(f"H{chr(c)}") or python.search(f"H{chr(c)}8")
    ]
    assert accepted == [], [f"U+{c:04X}" for c in accepted]


def test_printed_identifiers_pass_in_either_normal_form() -> None:
    rust = jsonschema_rs.validator_for({"type": "string", "pattern": PATTERN})
    for text in ("H38.14758-261206-0012", "VB-Nông-Cống-2023", "1172/UBND-VP", "a b", "日本"):
        for form in ("NFC", "NFD"):
            assert rust.is_valid(unicodedata.normalize(form, text)), text
            assert re.search(PATTERN, unicodedata.normalize(form, text)), text


def test_what_the_pattern_refuses_the_dead_letter_rows_escape() -> None:
    """An id refused at a worker is dead-lettered with its event: the operator's rows
    (services/common/textrows.py) must show each character the contract refuses."""
    assert [f"U+{c:04X}" for c in _refused() if not invisible(chr(c))] == []


def event_with(**fields: Any) -> dict[str, Any]:
    path = Path("vn.egov.dossier.resolved/valid/thang-long-withdrawn-v2.json")
    event: dict[str, Any] = json.loads((SCHEMAS_DIR / "examples" / path).read_text())
    data = {**event["data"], **fields.pop("data", {})}
    return {**event, **fields, "data": data}


@pytest.mark.parametrize(
    ("event", "pointer", "named"),
    [
        (event_with(id="res-\u202e1300"), "/id", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        (event_with(id="res-\x85"), "/id", "U+0085"),
        (event_with(data={"dossier_id": "H38.404\u200b"}), "/data/dossier_id", "U+200B ZERO"),
        (event_with(data={"dossier_id": "H38\u3164"}), "/data/dossier_id", "U+3164 HANGUL"),
        (event_with(data={"dossier_id": "H38\U000e0041"}), "/data/dossier_id", "U+E0041 TAG"),
    ],
)
def test_the_refusal_names_the_field_and_shows_the_character(
    event: dict[str, Any], pointer: str, named: str
) -> None:
    (violation,) = CONTRACT.validate(event)
    assert violation.pointer == pointer
    field = pointer.rpartition("/")[2]
    assert violation.reason.startswith(f"'{field}': "), violation.reason
    assert named in violation.reason and "does not match" in violation.reason
    assert violation.reason.isascii() and violation.reason.isprintable(), violation.reason


def test_a_long_value_keeps_the_validators_message() -> None:
    """The character is looked for in identifiers (128 at most), not in a 1 MB field."""
    violations = CONTRACT.validate(event_with(id="x" * 100_000 + "\u200b"))
    assert {v.pointer for v in violations} == {"/id"}  # too long, and holding U+200B
    assert all(len(v.reason) <= 500 for v in violations), violations
