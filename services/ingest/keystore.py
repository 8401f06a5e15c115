"""PostgreSQL adapter for API keys (table ingest_api_keys, migrations 0003 and 0013).

Errors: :class:`KeyStoreError`, with the leaf :class:`KeyNameTaken` (a live key already
has that name). asyncpg's own errors are translated here and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.common.db import Connection, create_pool
from services.ingest.keys import ApiKey, NewKey, new_key


class KeyStoreError(Exception):
    """A key operation that cannot be done as asked."""


class KeyNameTaken(KeyStoreError):
    """A live (unrevoked) key already has this name."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What ``keys list`` shows: never the secret or its hash."""

    key_id: str
    name: str
    units: tuple[str, ...]
    types: tuple[str, ...]
    created_at: datetime
    revoked_at: datetime | None
    sources: tuple[str, ...] = ()


async def create_key(
    conn: Connection,
    name: str,
    units: Iterable[str],
    types: Iterable[str],
    *,
    sources: Iterable[str],
) -> NewKey:
    """Store a new key; raises KeyNameTaken if a live key has this name.

    ``sources``: prefixes of the CloudEvents sources it may publish (keys.py); ``name`` is
    the publisher its events' dedup identity carries, so a rotation keeps it."""
    key = new_key()
    try:
        await conn.execute(
            "INSERT INTO ingest_api_keys (key_id, name, secret_hash, units, types, sources)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            key.key_id,
            name,
            key.secret_hash,
            sorted(set(units)),
            sorted(set(types)),
            sorted(set(sources)),
        )
    except asyncpg.UniqueViolationError as exc:
        raise KeyNameTaken(f"a live key named {name!r} exists; revoke it first") from exc
    return key


async def rotate_key(
    conn: Connection,
    name: str,
    units: Iterable[str],
    types: Iterable[str],
    *,
    sources: Iterable[str],
) -> NewKey:
    """Revoke the live key of this name, if any, and create its successor, atomically."""
    async with conn.transaction():
        await revoke_key(conn, name)
        return await create_key(conn, name, units, types, sources=sources)


async def bind_sources(conn: Connection, name: str, sources: Iterable[str]) -> bool:
    """Set the source prefixes of the live key of this name; False if there is none.
    Ingest sees the change within its key cache TTL; the token stays the same."""
    status = await conn.execute(
        "UPDATE ingest_api_keys SET sources = $2 WHERE name = $1 AND revoked_at IS NULL",
        name,
        sorted(set(sources)),
    )
    return str(status) != "UPDATE 0"


async def revoke_key(conn: Connection, name: str) -> bool:
    """Revoke the live key of this name; False if there is none."""
    status = await conn.execute(
        "UPDATE ingest_api_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL",
        name,
    )
    return str(status) != "UPDATE 0"


async def list_keys(conn: Connection) -> list[KeyInfo]:
    rows = await conn.fetch(
        "SELECT key_id, name, units, types, created_at, revoked_at, sources"
        " FROM ingest_api_keys ORDER BY name, created_at"
    )
    return [
        KeyInfo(
            r["key_id"],
            r["name"],
            tuple(r["units"]),
            tuple(r["types"]),
            r["created_at"],
            r["revoked_at"],
            tuple(r["sources"]),
        )
        for r in rows
    ]


async def find_key(conn: Connection, key_id: str) -> ApiKey | None:
    """The key with this id (revoked or not), or None."""
    row = await conn.fetchrow(
        "SELECT key_id, name, secret_hash, units, types, sources,"
        " revoked_at IS NOT NULL AS revoked FROM ingest_api_keys WHERE key_id = $1",
        key_id,
    )
    if row is None:
        return None
    return ApiKey(
        key_id=row["key_id"],
        name=row["name"],
        units=frozenset(row["units"]),
        types=frozenset(row["types"]),
        secret_hash=bytes(row["secret_hash"]),
        revoked=row["revoked"],
        sources=tuple(row["sources"]),
    )


async def key_named(conn: Connection, name: str) -> ApiKey | None:
    """The live key of this name, else its latest revoked one (a publisher keeps its name,
    and its events their identity, across rotations); None if no key was ever so named."""
    row = await conn.fetchrow(
        "SELECT key_id FROM ingest_api_keys WHERE name = $1"
        " ORDER BY revoked_at IS NULL DESC, created_at DESC LIMIT 1",
        name,
    )
    return None if row is None else await find_key(conn, row["key_id"])


async def find_cutover(conn: Connection) -> datetime | None:
    """The dedup cut-over recorded by migration 0013, or None (nothing was counted before
    identities were bound: every event's identity carries its publisher)."""
    found: datetime | None = await conn.fetchval(
        "SELECT unbound_before FROM ingest_dedup_cutover WHERE only_row"
    )
    return found


LOOKUP_TIMEOUT_S = 3.0
"""Longest wait for a connection, then for the key's row (a publisher's request waits)."""


class PgKeySource:
    """The running service's view of the key table: a small pool, lookups by id, a ping,
    and the dedup cut-over, read once at start."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self.unbound_before: datetime | None = None

    async def start(self) -> None:
        self._pool = await create_pool(self._dsn, min_size=1, max_size=4)
        async with self._pool.acquire(timeout=10) as conn:
            self.unbound_before = await find_cutover(conn)

    async def stop(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def find(self, key_id: str) -> ApiKey | None:
        """The key, or TimeoutError within ``LOOKUP_TIMEOUT_S`` however PostgreSQL fails:
        a database that hangs (a lock, a stalled disk) rather than refuses must not hold
        every request for that key; the caller falls back to the cached key, or 503."""
        if self._pool is None:
            raise KeyStoreError("the key store is not connected")
        async with (
            self._pool.acquire(timeout=LOOKUP_TIMEOUT_S) as conn,
            asyncio.timeout(LOOKUP_TIMEOUT_S),
        ):
            return await find_key(conn, key_id)

    async def ping(self) -> bool:
        """Whether PostgreSQL answers right now."""
        if self._pool is None:
            return False
        try:
            async with self._pool.acquire(timeout=3) as conn:
                await conn.fetchval("SELECT 1", timeout=3)
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return False
        return True
