"""Kafka record headers that ingest, ``egov-pulse backfill`` and the metrics workers share
(schemas/CONTRACT.md §5): one home, so the producer and the reader agree on them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Final

BACKFILL_HEADER: Final = ("egov_backfill", b"1")
"""Set by ``egov-pulse backfill``: the record's events are history and count in their day
however old. Operator-only: honoured from anyone who can write the topic, so topic ACLs
must restrict producers in production."""

ACCEPTED_HEADER: Final = "egov_accepted_ms"
"""When ingest (or ``backfill``) accepted the record's events, in milliseconds since the
epoch, decimal ASCII: the instant its horizon was judged at. A worker judges "too late"
against it, not against its own clock when it reads the record, so a backlog waiting in
the broker loses nothing ingest accepted."""


def accepted_header(at: datetime) -> tuple[str, bytes]:
    """The header saying the events were accepted at ``at`` (rounded down to the ms, so a
    worker never judges an event later than ingest did)."""
    return (ACCEPTED_HEADER, str(int(at.timestamp() * 1000)).encode())


def accepted_at(headers: Sequence[tuple[str, object]]) -> float | None:
    """Epoch seconds of ``ACCEPTED_HEADER``, or None when absent or not a decimal number."""
    for name, value in headers:
        if name == ACCEPTED_HEADER:
            if isinstance(value, bytes) and 0 < len(value) <= 15 and value.isdigit():
                return int(value) / 1000
            return None
    return None


PUBLISHER_HEADER: Final = "egov_publisher"
"""Set by ingest: the name of the API key that published the record's events (the
integrating system, stable across key rotations), UTF-8. Their dedup identity is
(publisher, source, id) (services/common/summaries.py ``dedup_digest``), so one
publisher's ids never suppress another's events. Absent (``backfill``, records written
straight to Kafka): ``UNBOUND``, the identity (source, id) of every event counted before
publishers were bound. Covered by the record signature like every header."""

_MAX_PUBLISHER_BYTES: Final = 200
"""As long as a key name may be (services/ingest/keys.py ``MAX_NAME_BYTES``)."""


def publisher_header(name: str) -> tuple[str, bytes]:
    """The header naming the publisher of a record's events."""
    return (PUBLISHER_HEADER, name.encode())


def publisher_of(headers: Sequence[tuple[str, object]]) -> str:
    """The record's publisher; "" (unbound) when the header is absent. A header that is not
    a short UTF-8 name raises ValueError: a record that claims a publisher it cannot name
    is not counted under another identity (it is dead-lettered as unprocessable)."""
    for name, value in headers:
        if name == PUBLISHER_HEADER:
            if not isinstance(value, bytes) or not 0 < len(value) <= _MAX_PUBLISHER_BYTES:
                raise ValueError(f"the {PUBLISHER_HEADER} header is not a publisher name")
            if b"\0" in value:  # the ledger stores the name, and PostgreSQL cannot store NUL
                raise ValueError(f"the {PUBLISHER_HEADER} header holds a NUL")
            return value.decode()  # UnicodeDecodeError is a ValueError
    return ""
