"""PostgreSQL adapter: connection pools and versioned SQL migrations."""

from __future__ import annotations

import logging
from importlib import resources

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A plain connection or one borrowed from a pool: both run the same queries.
Connection = asyncpg.Connection | PoolConnectionProxy

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same in every process that migrates.
_MIGRATION_LOCK = 0x65676F76


def migration_files() -> list[tuple[str, str]]:
    """(version, SQL) of every migration shipped with the package, in order."""
    folder = resources.files("services.common").joinpath("migrations")
    files = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".sql")),
        key=lambda entry: entry.name,
    )
    return [(entry.name.removesuffix(".sql"), entry.read_text("utf-8")) for entry in files]


async def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction.

    An advisory lock serialises concurrent starters (three services may start at once).
    """
    applied_now: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(migration_files()[0][1])
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, sql in migration_files():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute("INSERT INTO schema_migrations(version) VALUES ($1)", version)
            applied_now.append(version)
            log.info("applied migration %s", version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied_now


def quote_identifier(name: str) -> str:
    """A PostgreSQL identifier, quoted (CREATE DATABASE takes no bind parameters)."""
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(dsn: str) -> bool:
    """Create the database named in ``dsn`` if it does not exist; True if created."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except asyncpg.InvalidCatalogNameError:
        pass
    else:
        await conn.close()
        return False
    name = dsn.rsplit("/", 1)[1].split("?", 1)[0]
    admin_dsn = dsn.rsplit("/", 1)[0] + "/postgres"
    admin = await asyncpg.connect(admin_dsn, timeout=10)
    try:
        await admin.execute(f"CREATE DATABASE {quote_identifier(name)}")
    except asyncpg.DuplicateDatabaseError:
        return False
    except asyncpg.UniqueViolationError:
        # Another CREATE DATABASE of the same name committed while ours ran (two
        # ``egov-pulse migrate`` at once on a new server): the server's catalog index
        # (pg_database_datname_index) refuses ours with 23505, not 42P04. It exists.
        return False
    finally:
        await admin.close()
    return True


DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # connection refused or reset
    TimeoutError,  # a pool that timed out acquiring, a statement past command_timeout
    asyncpg.PostgresConnectionError,  # class 08, ConnectionDoesNotExistError among them
    asyncpg.InterfaceError,  # asyncpg's connection closed under a query
    asyncpg.TransactionRollbackError,  # class 40: deadlock, serialization failure
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, out of memory
    asyncpg.OperatorInterventionError,  # class 57: shutdown, cannot connect now, cancel
    asyncpg.LockNotAvailableError,  # 55P03: lock_timeout (an operator's lock)
    asyncpg.ReadOnlySQLTransactionError,  # 25006: a failover left us on a standby
    asyncpg.IdleInTransactionSessionTimeoutError,  # 25P03: the server ended the session
)
"""What "PostgreSQL is away or cannot take this now" looks like through asyncpg: the
state of the server, never of the data sent. Every service retries these (the metrics
worker blocks, the alerts service keeps its journal) and never treats them as a
record's fault. One definition, so the services agree on what a database outage is."""

READ_ONLY = asyncpg.ReadOnlySQLTransactionError
"""A server refusing writes. A pooled connection stays on the server it reached: after a
failover, only connections opened anew may reach the new primary
(:func:`expire_if_read_only`)."""


def outage_cause(exc: BaseException) -> str:
    """What ``exc`` (one of ``DATABASE_UNAVAILABLE``) says happened, for a log line an
    operator can act on: a lock wait is not an outage, a full server is not a down one."""
    if isinstance(exc, asyncpg.LockNotAvailableError):
        return f"waited past lock_timeout for a lock another session holds ({exc})"
    if isinstance(exc, TimeoutError):
        return "no answer in time (a lock wait, an overloaded server or a lost network)"
    if isinstance(exc, asyncpg.InsufficientResourcesError):
        return f"PostgreSQL has no room for us ({exc})"
    if isinstance(exc, READ_ONLY):
        return f"PostgreSQL refuses writes, a failover to a standby? ({exc})"
    if isinstance(exc, asyncpg.QueryCanceledError):
        return f"the statement was cancelled ({exc})"
    return f"PostgreSQL unavailable ({exc!r})"


async def expire_if_read_only(pool: asyncpg.Pool, exc: BaseException) -> None:
    """After a read-only refusal, have ``pool`` replace its connections as they are
    released, so the retry connects again (through DNS or a proxy) to the server now
    taking writes instead of asking the demoted one forever."""
    if isinstance(exc, READ_ONLY):
        await pool.expire_connections()


SESSION_LIMITS = {
    # A statement waits at most this long for a row lock (a partition's offsets row, held
    # by the worker flushing it), then fails with 55P03, which callers retry.
    "lock_timeout": "10s",
    # A transaction left open by a stuck or vanished client is ended, and its locks freed.
    "idle_in_transaction_session_timeout": "60s",
    # The server probes an idle connection after 10 s, every 5 s, 3 times: a client host
    # that died without a FIN (power, network) loses its session, and the rows it had
    # locked, in about 25 s instead of the kernel's two hours.
    "tcp_keepalives_idle": "10",
    "tcp_keepalives_interval": "5",
    "tcp_keepalives_count": "3",
}
"""Bounds on what one session can hold up, set on every pooled connection."""


async def migrate_database(dsn: str) -> list[str]:
    """:func:`migrate` on a connection of its own, for a service migrating at start-up.

    Not on a pooled connection: the pools cancel a statement after 30 s (15 s the alerts
    service's), and a migration that rebuilds an index over a large table takes as long
    as it takes (0019: about 1.7 s a million dossier rows; a worker cancelled every
    attempt past ~18 M rows and retried for ever, review 52). It waits for a lock no
    longer than a pooled session (``lock_timeout``), and the caller retries: a DDL
    queued behind a long reader would hold up every query queued behind it."""
    conn = await asyncpg.connect(dsn, timeout=10, server_settings=SESSION_LIMITS)
    try:
        return await migrate(conn)
    finally:
        await conn.close()


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """A pool with explicit timeouts: a hung database must not hang a request forever,
    and a dead client must not hold locks for hours (``SESSION_LIMITS``)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=10,
        command_timeout=30,
        server_settings=SESSION_LIMITS,
    )
    if pool is None:  # asyncpg types the result as optional; it never is here
        raise RuntimeError("asyncpg returned no pool")
    return pool
