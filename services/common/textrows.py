"""Tab-separated rows a script can split, whatever free text a field holds. Pure.

A reason or a name typed by an operator (or sent to the API) may hold a tab or a line
break; printed raw it splits one row in two. Each field is escaped as C and Python
write strings: a backslash as ``\\\\``, tab ``\\t``, line feed ``\\n``, carriage return
``\\r``, any other control character ``\\xHH``, and the Unicode line and paragraph
separators (which ``str.splitlines`` breaks on) ``\\u2028``/``\\u2029``. Every other
character, Vietnamese included, is printed as it is; a field without these is
unchanged.
"""

from __future__ import annotations

import unicodedata
from typing import Final

_NAMED: Final = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}


def escape_field(text: str) -> str:
    """``text`` with no tab, line break or other control character left in it."""
    return "".join(_escaped(c) for c in text)


def tsv_row(*fields: str) -> str:
    """One line: the fields escaped, joined by tabs."""
    return "\t".join(escape_field(f) for f in fields)


def _escaped(c: str) -> str:
    if c in _NAMED:
        return _NAMED[c]
    category = unicodedata.category(c)
    if category == "Cc":  # C0, DEL and C1: all below U+0100
        return f"\\x{ord(c):02x}"
    if category in ("Zl", "Zp"):
        return f"\\u{ord(c):04x}"
    return c
