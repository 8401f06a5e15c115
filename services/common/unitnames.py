"""Vietnamese unit names: normalisation for matching, and the merger list's predecessor text.

Pure text handling for services/common/unitdata.py: tones and unit-type prefixes are
folded so that "Xã Hòa An" and "xã Hoà An" agree, and the merger list's Vietnamese
descriptions ("một phần diện tích ...", bracketed disambiguations) become mentions.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

# ---------------------------------------------------------------- name normalisation

_TONES = {"\u0300": "2", "\u0301": "1", "\u0303": "4", "\u0309": "3", "\u0323": "5"}
COMMUNE_TYPES = ("thị trấn", "đặc khu", "phường", "xã")
DISTRICT_TYPES = ("thành phố", "thị xã", "huyện", "quận")
PROVINCE_TYPES = ("thành phố", "thủ đô", "tỉnh", "tp")
_PARTIAL = re.compile(r"một phần|phần còn lại")
_FILLER = re.compile(
    r"sau khi .*$|toàn bộ|sắp xếp|một phần|phần còn lại|"
    r"diện tích( tn| tự nhiên)?|quy mô dân số|\bcác\b|\bcủa\b|\btn\b"
)


ALIASES = {"tphcm": "Hồ Chí Minh"}


def _syllable(word: str) -> str:
    """One syllable with its tone moved to a suffix, so "hoà" and "hòa" agree."""
    decomposed = unicodedata.normalize("NFD", word)
    tones = "".join(_TONES[ch] for ch in decomposed if ch in _TONES)
    bare = "".join(ch for ch in decomposed if ch not in _TONES)
    bare = unicodedata.normalize("NFC", bare)
    return str(int(bare)) if bare.isdigit() else bare + tones


def name_key(text: str) -> str:
    """Case-, tone-placement- and punctuation-insensitive key of a name."""
    text = unicodedata.normalize("NFC", text).lower().replace("’", "'")
    words = re.sub(r"[-–.]", " ", text).split()
    return " ".join(_syllable(w) for w in words)


def ascii_key(text: str) -> str:
    """Diacritic-free key, the fallback when the exact key finds nothing."""
    decomposed = unicodedata.normalize("NFD", name_key(text).replace("đ", "d"))
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return re.sub(r"\d+$|(?<=[a-z])\d+", "", bare)


def strip_type(text: str, types: Sequence[str]) -> tuple[str | None, str]:
    """Remove leading unit-type words ("Phường Phường X" -> ("phường", "X"))."""
    kind = None
    rest = text.strip()
    while True:
        low = rest.lower()
        hit = next((t for t in types if low.startswith(t + " ")), None)
        if hit is None:
            return kind, rest
        kind, rest = hit, rest[len(hit) :].strip()


# ---------------------------------------------------------------- predecessor parsing


@dataclass(frozen=True, slots=True)
class Mention:
    """One predecessor named in a merger entry."""

    text: str
    kind: str | None
    name: str
    qualifiers: tuple[str, ...]
    partial: bool
    targets: tuple[str, ...]


def split_top(text: str) -> list[str]:
    """Split on commas, semicolons and " và " outside brackets."""
    parts, depth, buf = [], 0, ""
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and ch in ",;":
            parts.append(buf)
            buf = ""
        else:
            buf += ch
    parts.append(buf)
    return [p for part in parts for p in _split_va(part)]


def _split_va(part: str) -> list[str]:
    pieces, depth, start = [], 0, 0
    for match in re.finditer(r"[()]|\svà\s", part):
        found = match.group()
        if found in "()":
            depth += 1 if found == "(" else -1
        elif depth == 0:
            pieces.append(part[start : match.start()])
            start = match.end()
    pieces.append(part[start:])
    return [p.strip() for p in pieces if p.strip()]


def _targets(bracket: str) -> tuple[str, ...]:
    """New units named in "(phần còn lại sau khi sáp nhập vào xã A, phường B)"."""
    _, _, tail = bracket.partition("sáp nhập vào")
    return tuple(name for _, name in (strip_type(t, COMMUNE_TYPES) for t in split_top(tail)))


def parse_mentions(text: str) -> list[Mention]:
    """Predecessor mentions of one merger entry; partial once "một phần" has been said."""
    mentions, sticky = [], False
    for segment in split_top(unicodedata.normalize("NFC", text)):
        brackets = re.findall(r"\(([^()]*)\)", segment)
        main = re.sub(r"\([^()]*\)", " ", segment)
        sticky = sticky or bool(_PARTIAL.search(main.lower()))
        parts = [b for b in brackets if _PARTIAL.search(b.lower())]
        qualifiers = tuple(b for b in brackets if b not in parts)
        targets = tuple(t for b in parts for t in _targets(b))
        low = main.lower()
        name = _FILLER.sub(" ", low.split(" của ")[-1])
        name = (
            re.split(r"(?:^|\s)(?:xã|phường|thị trấn)\s", name)[-1]
            if name.count("xã ") > 1
            else name
        )
        kind, name = strip_type(" ".join(name.split()), COMMUNE_TYPES + DISTRICT_TYPES)
        if not name or not re.search(r"\w", name):
            continue
        partial = sticky or bool(parts)
        mentions.append(Mention(segment.strip(), kind, name, qualifiers, partial, targets))
    return mentions
