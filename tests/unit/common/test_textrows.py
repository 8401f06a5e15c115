"""Tab-separated rows stay one line of a known number of fields whatever the text."""

from __future__ import annotations

import pytest

from services.common.textrows import escape_field, tsv_row


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
