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

The same lookup finds the chunk's events already counted under the run's *own* identity: a
re-run of a file is published, and the workers count none of those again. The report says
so: a re-run recounts nothing, and the stored figures keep the KPI definitions they were
counted under (recounting after a catalogue change is not supported: docs/ingest.md).
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
    """Events of a chunk already counted under another identity: for each identity (a
    publisher's name, or ``UNBOUND``), the lines holding them; and the lines of events
    counted already under the run's own identity, which the workers will not count again."""

    lines: dict[str, list[int]]
    again: tuple[int, ...] = ()

    @property
    def elsewhere(self) -> bool:
        """Whether any event was counted under another identity: the run must stop."""
        return bool(self.lines)

    def message(self, mine: str, first_line: int) -> str:
        """What the operator reads: what was counted as what, what this run published, and
        where to resume (``first_line``: the chunk's first line, where nothing was
        published from)."""
        run = _flag(mine)
        found = "; ".join(
            f"{_flag(other)}: line{'s' if len(ls) > 1 else ''} {_lines(ls)}"
            for other, ls in sorted(self.lines.items())
        )
        resume = (
            f"lines 1 to {first_line - 1} were published by this run as {run}; "
            if first_line > 1
            else ""
        )
        return (
            f"events of this file were counted already under another identity than {run}'s "
            f"({found}): backfilled or sent live as such, they would count again. Nothing from "
            f"line {first_line} on was published; {resume}re-run the file from line "
            f"{first_line} (tail -n +{first_line} FILE | egov-pulse backfill - ...) with the "
            f"identity its events were counted under, splitting it if they name several"
        )


def _flag(identity: str) -> str:
    return "--unbound" if identity == UNBOUND else f"--publisher {identity!r}"


def _lines(numbers: list[int]) -> str:
    shown = sorted(set(numbers))
    text = ", ".join(map(str, shown[:10]))
    return text + (f" and {len(shown) - 10} more" if len(shown) > 10 else "")


def recount_notice(again: int) -> str:
    """What the operator reads of a run's events counted already under its own identity."""
    return (
        f"{again} of these events were already counted (by an earlier run or live) and will"
        " not be counted again: a re-run recounts nothing, and the stored figures keep the"
        " KPI definitions they were counted under (recounting after a change to"
        " data/kpis.json is not supported: docs/ingest.md, Backfill)"
    )


class LookupFailed(Exception):
    """PostgreSQL did not answer the lookup: the run stops before the chunk, unpublished."""


class CountedElsewhere:
    """Looks a chunk's events up under the identities a run does not give them.

    A run's events (a ``--publisher`` run's dated after the cut-over) are looked up under
    every identity but its own: unbound, and every publisher a key was ever named for
    (revoked ones too: their events were counted under their names). Until 2026-12-05 a
    ``--publisher`` run was looked up unbound only, and a file counted as one publisher's
    counted again when run as another's (review 50). They are looked up under their own
    identity too, in the same query: those found are reported as not counted again
    (review 63: a re-run said only "published", as if it had recounted them)."""

    def __init__(
        self, pool: asyncpg.Pool, mine: str, publishers: list[str], unbound_before: datetime | None
    ) -> None:
        self._pool = pool
        self._others = sorted((set(publishers) | {UNBOUND}) - {mine})
        self._unbound_before = unbound_before

    async def __call__(self, records: list[Record]) -> Counted | None:
        # digest -> (line, identity) of every line holding it; None: the identity the
        # record itself carries (its publisher, or unbound before the cut-over).
        wanted: dict[bytes, list[tuple[int, str | None]]] = {}
        for record in records:
            event = orjson.loads(record.value)
            data = event.get("data") or {}
            own = event_digest(
                record.source, record.event_type, event["id"], data, record.publisher
            )
            wanted.setdefault(own, []).append((record.index, None))
            if self._unbound_before is not None and record.at < self._unbound_before:
                continue  # unbound in either run: the same identity, nothing to compare
            for other in self._others:
                digest = event_digest(record.source, record.event_type, event["id"], data, other)
                # A line repeated in the file (or a dossier's second receipt) shares
                # its digest: every line holding it is named.
                wanted.setdefault(digest, []).append((record.index, other))
        if not wanted:
            return None
        rows = await self._stored(list(wanted))
        found: dict[str, list[int]] = {}
        again: set[int] = set()
        for digest in rows:
            for line, whose in wanted[digest]:
                if whose is None:
                    again.add(line)
                else:
                    found.setdefault(whose, []).append(line)
        return Counted(found, tuple(sorted(again))) if found or again else None

    async def _stored(self, digests: list[bytes]) -> list[bytes]:
        """Those of ``digests`` the workers stored as counted."""
        try:
            async with self._pool.acquire(timeout=LOOKUP_TIMEOUT_S) as conn:
                rows = await conn.fetch(
                    "SELECT digest FROM metrics_seen_events WHERE digest = ANY($1::bytea[])",
                    digests,
                    timeout=LOOKUP_TIMEOUT_S,
                )
        except asyncpg.UndefinedTableError:
            return []  # no metrics worker ever ran on this database: nothing counted
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise LookupFailed(f"PostgreSQL did not answer the lookup ({exc!r})") from exc
        return [bytes(row["digest"]) for row in rows]
