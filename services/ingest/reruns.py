"""A backfill refuses events already counted under the other dedup identity.

An event's dedup identity is (publisher, source, id) when its publisher is bound, (source,
id) otherwise (services/common/tally.py ``dedup_digest``). A file backfilled ``--unbound``
and then again ``--publisher NAME`` (or the other way round) gives its events dated after
the cut-over two identities, and the second run would count every one of them again; so
would an ``--unbound`` run of events the live stream counted as a publisher's. Before a
chunk of a run is published, its events' digests under the *other* identity are looked up
among the keys the workers stored (``metrics_seen_events``: a backfill's are never pruned,
live ones after their grace): one found stops the run, naming the identity to re-run with,
and nothing of that chunk is published.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

import asyncpg
import orjson

from services.common.tally import UNBOUND, event_digest
from services.ingest.validation import Record

LOOKUP_TIMEOUT_S: Final = 30.0


@dataclass(frozen=True, slots=True)
class Counted:
    """Events of a chunk already counted under another identity: their line numbers, and
    the identity (a publisher's name, or ``UNBOUND``) each was counted under."""

    lines: dict[int, str]

    def message(self, mine: str) -> str:
        first = min(self.lines)
        others = sorted(set(self.lines.values()))
        named = ", ".join("--unbound" if o == UNBOUND else f"--publisher {o!r}" for o in others)
        run = "--unbound" if mine == UNBOUND else f"--publisher {mine!r}"
        return (
            f"{len(self.lines)} events of this chunk (the first on line {first}) were counted "
            f"already under another identity than {run}'s ({named}): this file, or these "
            f"events, were backfilled or sent live as such, and would count again. Re-run it "
            f"with {named}; nothing from this chunk on was published"
        )


class CountedElsewhere:
    """Looks a chunk's events up under the identities a run does not give them.

    A ``--publisher`` run's events (dated after the cut-over) are looked up unbound; an
    ``--unbound`` run's under every publisher a key was ever named for (revoked ones too:
    their events were counted under their names)."""

    def __init__(
        self, pool: asyncpg.Pool, mine: str, publishers: list[str], unbound_before: datetime | None
    ) -> None:
        self._pool = pool
        self._mine = mine
        self._others = [UNBOUND] if mine != UNBOUND else sorted(set(publishers))
        self._unbound_before = unbound_before

    @property
    def mine(self) -> str:
        return self._mine

    async def __call__(self, records: list[Record]) -> Counted | None:
        wanted: dict[bytes, tuple[int, str]] = {}
        for record in records:
            if self._unbound_before is not None and record.at < self._unbound_before:
                continue  # unbound in either run: the same identity, nothing to compare
            event = orjson.loads(record.value)
            for other in self._others:
                digest = event_digest(
                    record.source, record.event_type, event["id"], event.get("data") or {}, other
                )
                wanted[digest] = (record.index, other)
        if not wanted:
            return None
        async with self._pool.acquire(timeout=LOOKUP_TIMEOUT_S) as conn:
            try:
                rows = await conn.fetch(
                    "SELECT digest FROM metrics_seen_events WHERE digest = ANY($1::bytea[])",
                    list(wanted),
                    timeout=LOOKUP_TIMEOUT_S,
                )
            except asyncpg.UndefinedTableError:
                return None  # no metrics worker ever ran on this database: nothing counted
        found = dict(wanted[bytes(r["digest"])] for r in rows)
        return Counted(found) if found else None
