"""Tab-separated rows stay one line of a known number of fields whatever the text."""

from __future__ import annotations

import unicodedata

import pytest

from services.common.textrows import escape_field, invisible, tsv_row


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("Kế hoạch CĐS tỉnh 2027", "Kế hoạch CĐS tỉnh 2027"),  # unchanged
        ("a\tb\nc\rd", "a\\tb\\nc\\rd"),
        ("C:\\KH\\12", "C:\\\\KH\\\\12"),  # a backslash is escaped, so \t stays readable
        ("x\x0by\x1cz\x7f\x85", "x\\x0by\\x1cz\\x7f\\x85"),
        ("1\u20282\u20293", "1\\u20282\\u20293"),
    ],
)
def test_a_field_is_escaped_as_a_string_literal_would_be(text: str, shown: str) -> None:
    assert escape_field(text) == shown


def test_a_row_splits_back_into_its_fields_on_one_line() -> None:
    fields = ["every commune of province 19", "Kế hoạch 2027\tsố 12\nphụ lục 2", "\x1e\u2029"]
    row = tsv_row(*fields)
    assert row.splitlines() == [row]
    assert len(row.split("\t")) == len(fields)
    decoded = [f.encode("latin-1", "backslashreplace").decode("unicode_escape") for f in
               row.split("\t")]  # fmt: skip
    assert decoded[0] == fields[0] and decoded[2] == fields[2]


HIDDEN = [
    "\u202a\u202b\u202c\u202d\u202e",  # bidi embeddings and overrides
    "\u2066\u2067\u2068\u2069",  # bidi isolates
    "\u200b\u200c\u200d\u200e\u200f\u2060\ufeff\u00ad",  # zero-width, marks, soft hyphen
    "\U000e0041\U000e007f",  # tags: invisible ASCII
    "\u3164\u115f\ufe0f\U000e0100",  # Hangul fillers, variation selectors
    "\ue000\U000f0000\u0378",  # private use, unassigned
]


@pytest.mark.parametrize("hidden", HIDDEN)
def test_format_and_invisible_characters_are_escaped_and_read_back(hidden: str) -> None:
    """Review 86: a bidi override reorders the rest of a row on the operator's terminal,
    a zero-width space makes one id print as another: each is shown as its escape."""
    shown = escape_field(f"INV-{hidden}-end")
    assert shown.isascii() and shown.isprintable(), shown
    assert shown.encode().decode("unicode_escape") == f"INV-{hidden}-end"
    assert all(invisible(c) for c in hidden)


def test_the_escape_names_the_code_point() -> None:
    assert escape_field("a\u202eb\U000e0041") == "a\\u202eb\\U000e0041"


@pytest.mark.parametrize(
    "text",
    [
        "Nông Cống",
        unicodedata.normalize("NFD", "Nông Cống"),  # combining marks are seen: kept
        "1172/UBND-VP №5 — “trích yếu” 日本 😀",
        "\u00a0 nbsp",  # a space, seen as one
    ],
)
def test_visible_text_is_printed_as_it_is(text: str) -> None:
    assert escape_field(text) == text
    assert not any(invisible(c) for c in text)
    assert not invisible("\\")  # escaped so that escapes read back, but seen
