"""PostgreSQL's binary COPY format, for the rows the counting writes by the thousand.

``asyncpg``'s ``copy_records_to_table`` encodes each value through its generic codecs;
for a ``text[]`` column that is three ``isinstance`` checks against ``collections.abc``
classes per row and two more per element, each a Python-level call
(``ABCMeta.__instancecheck__``). A flush writes one ``dossier_state`` row per dossier of
the flush (40,000 per 100,000 events of the bench's backlog), and that encoding was
~8 % of the in-process counting's time. Here a row is a join of byte strings, and the
parts that recur (a unit chain, a status, an appointment) are encoded once per stream.

The format: https://www.postgresql.org/docs/current/sql-copy.html#id-1.9.3.55.9.4 (a
header, then per row a 16-bit field count and each field as a 32-bit length, -1 for
NULL, and its binary ``send`` form; a 16-bit -1 ends the stream).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from datetime import date
from typing import Final

HEADER: Final = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, no flags, no extension
TRAILER: Final = b"\xff\xff"
NULL: Final = b"\xff\xff\xff\xff"
PG_EPOCH_ORDINAL: Final = date(2000, 1, 1).toordinal()
"""PostgreSQL counts dates in days from 2000-01-01."""
TEXT_OID: Final = 25
"""``pg_type.oid`` of ``text``: an array names the type of its elements."""

_LENGTH = struct.Struct(">i")
_INT4 = struct.Struct(">ii")
_FLOAT8 = struct.Struct(">id")
_ARRAY_1D = struct.Struct(">iiiiii")  # length, ndim 1, no NULLs, element type, size, from 1


def fields(count: int) -> bytes:
    """The start of a row of ``count`` fields."""
    return struct.pack(">h", count)


def text(value: str) -> bytes:
    """A ``text`` field (UnicodeEncodeError for a string UTF-8 cannot hold, as asyncpg)."""
    raw = value.encode()
    return _LENGTH.pack(len(raw)) + raw


def raw(value: bytes) -> bytes:
    """A ``bytea`` field."""
    return _LENGTH.pack(len(value)) + value


def int4(value: int) -> bytes:
    """An ``integer`` field."""
    return _INT4.pack(4, value)


def day(value: date) -> bytes:
    """A ``date`` field."""
    return _INT4.pack(4, value.toordinal() - PG_EPOCH_ORDINAL)


def float8(value: float) -> bytes:
    """A ``double precision`` field."""
    return _FLOAT8.pack(8, value)


def text_array(values: Sequence[str]) -> bytes:
    """A one-dimensional ``text[]`` field without NULLs (the empty array has no dimension)."""
    if not values:
        return struct.pack(">iiii", 12, 0, 0, TEXT_OID)
    elements = [text(v) for v in values]
    size = 20 + sum(map(len, elements))
    return _ARRAY_1D.pack(size, 1, 0, TEXT_OID, len(values), 1) + b"".join(elements)
