"""Tab-separated rows a script can split, whatever free text a field holds. Pure.

A reason or a name typed by an operator (or sent to the API) may hold a tab or a line
break; printed raw it splits one row in two. Each field is escaped as C and Python
write strings: a backslash as ``\\\\``, tab ``\\t``, line feed ``\\n``, carriage return
``\\r``, any other control character ``\\xHH``, and as ``\\uHHHH`` (``\\UHHHHHHHH``
beyond U+FFFF) every character a terminal draws as nothing or that rearranges what
follows: the line and paragraph separators (which ``str.splitlines`` breaks on), the
format characters (category Cf: bidi overrides and isolates, which reorder the rest of
a row, the zero-width ones, which make one id print as another, the soft hyphen, tags),
surrogates, private-use and unassigned code points, and the other default-ignorable
ones (Hangul fillers, variation selectors). Every other character, Vietnamese included
(composed or with combining marks), is printed as it is; a field without these is
unchanged, and every field decodes back to itself (``unicode_escape``).
"""

from __future__ import annotations

import unicodedata
from typing import Final

_NAMED: Final = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}

_IGNORABLE: Final = frozenset(
    chr(c)
    for first, last in (
        (0x034F, 0x034F),  # combining grapheme joiner
        (0x115F, 0x1160),  # Hangul choseong and jungseong fillers
        (0x17B4, 0x17B5),  # Khmer inherent vowels
        (0x180B, 0x180F),  # Mongolian free variation selectors, vowel separator
        (0x3164, 0x3164),  # Hangul filler
        (0xFE00, 0xFE0F),  # variation selectors
        (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
        (0xE0100, 0xE01EF),  # variation selectors supplement
    )
    for c in range(first, last + 1)
)
"""Default-ignorable code points (Unicode's DerivedCoreProperties.txt) outside the
categories escaped whole: drawn as nothing, so one string prints like another."""


def escape_field(text: str) -> str:
    """``text`` with no tab, line break, control, format or invisible character left in it."""
    return "".join(_escaped(c) for c in text)


def invisible(c: str) -> bool:
    """Whether the character ``c`` is one ``escape_field`` escapes (a backslash aside):
    a control, format or other invisible character, which no reader can see (a backslash
    is escaped only so that the escapes read back)."""
    return c != "\\" and _escaped(c) != c


def tsv_row(*fields: str) -> str:
    """One line: the fields escaped, joined by tabs."""
    return "\t".join(escape_field(f) for f in fields)


def _escaped(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    category = unicodedata.category(c)
    if category == "Cc":  # C0, DEL and C1: all below U+0100
        return f"\\x{ord(c):02x}"
    if category[0] == "C" or category in ("Zl", "Zp") or c in _IGNORABLE:
        code = ord(c)
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return c
