"""A command-line tool's connection to PostgreSQL, and the one line it prints when none.

``connect`` turns every way a connection can fail (refused, unreachable, timed out,
authentication, no such database) into :class:`DatabaseDown`, whose message names
PostgreSQL and its host:port and never the user or password of ``DATABASE_URL``. The
``keys``, ``operators``, ``targets`` and ``backfill`` commands share it, so an operator
reads one line instead of asyncpg's traceback.
"""

from __future__ import annotations

import sys
from typing import Final
from urllib.parse import parse_qs, urlsplit

import asyncpg

CONNECT_ERRORS: Final = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What asyncpg raises when no usable connection is made (ConnectionRefusedError and
socket.gaierror are OSErrors; a wrong password or database is a PostgresError)."""

CONNECT_TIMEOUT_S: Final = 10.0
"""How long a command waits for a connection before saying PostgreSQL did not answer."""

EXIT_DOWN: Final = 3
"""Exit status of a command stopped because PostgreSQL did not answer (as ``backfill``
stopped by the broker): nothing was done, run it again once it answers."""


class DatabaseDown(Exception):
    """PostgreSQL did not answer a connection; the message says where, without secrets."""

    def __init__(self, dsn: str, cause: BaseException) -> None:
        self.where = where(dsn)
        reason = f"{type(cause).__name__}: {cause}"
        parts = urlsplit(dsn) if "://" in dsn else None
        password = parts.password if parts else None
        if password:  # asyncpg never quotes it, but a message is no place to bet on that
            reason = reason.replace(password, "***")
        user = parts.username if parts else None
        if user:  # PostgreSQL names the role it refused: `for user "alice"`, `role "alice"`
            reason = reason.replace(f'"{user}"', '"***"')
        super().__init__(f"PostgreSQL at {self.where} did not answer ({reason})")

    def refusal(self) -> str:
        """The line a command prints on stderr before it exits with ``EXIT_DOWN``."""
        return f"stopped: {self}; nothing was changed: start it, or set DATABASE_URL"


def where(dsn: str) -> str:
    """host:port of a ``postgresql://`` URL (several, comma-separated, for a multi-host
    one); the part before ``@`` (user and password) is never part of it."""
    if "://" not in dsn:
        return "the DATABASE_URL given (not a postgresql:// URL)"
    parts = urlsplit(dsn)
    hosts = parts.netloc.rpartition("@")[2]
    query = parse_qs(parts.query)
    if not hosts:  # a socket or a host given as ?host=...&port=...
        hosts = query.get("host", ["localhost"])[0]
        if "port" in query:
            return f"{hosts}:{query['port'][0]}"
    return hosts if ":" in hosts.rsplit("]", 1)[-1] else f"{hosts}:5432"


async def connect(dsn: str) -> asyncpg.Connection:
    """One connection, or :class:`DatabaseDown` naming where PostgreSQL was looked for."""
    try:
        return await asyncpg.connect(dsn, timeout=CONNECT_TIMEOUT_S)
    except CONNECT_ERRORS as exc:
        raise DatabaseDown(dsn, exc) from exc


def say_down(down: DatabaseDown) -> int:
    """Print the one line on stderr; the exit status to return."""
    print(down.refusal(), file=sys.stderr)
    return EXIT_DOWN
