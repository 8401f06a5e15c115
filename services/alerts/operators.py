"""Operator tokens: who may acknowledge and comment. Only SHA-256 of a token is stored.

A token is ``egovop_`` + 32 random bytes (urlsafe base64); it is shown once, at
creation (``egov-pulse operators create NAME``), and sent as ``Authorization: Bearer``.
"""

from __future__ import annotations

import hashlib
import secrets

import asyncpg

from services.alerts.store import Conflict, NotFound
from services.common.db import Connection

PREFIX = "egovop_"


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


async def create(conn: Connection, name: str) -> str:
    """A new operator and their token (returned once; never stored in clear)."""
    token = new_token()
    try:
        await conn.execute(
            "INSERT INTO operators (name, token_hash) VALUES ($1, $2)", name, token_hash(token)
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict(f"operator {name!r} exists; revoke it first") from exc
    return token


async def revoke(conn: Connection, name: str) -> None:
    done = await conn.fetchval(
        "UPDATE operators SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL "
        "RETURNING id",
        name,
    )
    if done is None:
        raise NotFound(name)


async def list_names(conn: Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT name, created_at FROM operators WHERE revoked_at IS NULL ORDER BY name"
    )
    return [(r["name"], r["created_at"].isoformat()) for r in rows]


async def authenticate(conn: Connection, token: str) -> str | None:
    """The operator's name for a live token, else None."""
    if not token.startswith(PREFIX):
        return None
    name: str | None = await conn.fetchval(
        "SELECT name FROM operators WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash(token),
    )
    return name
