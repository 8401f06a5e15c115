"""Operator tokens: who may acknowledge, comment and set targets, and where. Only SHA-256
of a token is stored.

A token is ``egovop_`` + 32 random bytes (urlsafe base64); it is shown once, at
creation (``egov-pulse operators create NAME --provinces 19,38`` or ``--national``), and
sent as ``Authorization: Bearer``. Its scope is the provinces it may act on, or the
whole country (the ministry's national scope); ``operators list`` shows it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

import asyncpg

from services.alerts.store import Conflict, NotFound
from services.common.db import Connection

PREFIX = "egovop_"


class InvalidScope(ValueError):
    """An operator without a scope, or with one that names no real province."""


@dataclass(frozen=True, slots=True)
class Operator:
    """An authenticated operator and the provinces they may act on."""

    name: str
    provinces: frozenset[str]
    national: bool = False

    def may_act_on(self, province: str) -> bool:
        return self.national or province in self.provinces

    @property
    def scope(self) -> str:
        """The scope in words, for a refusal and the listing."""
        if self.national:
            return "national (every province)"
        if not self.provinces:
            return "none (created before scopes; re-create it with --provinces)"
        return "provinces " + ", ".join(sorted(self.provinces))


@dataclass(frozen=True, slots=True)
class Listed:
    """One live operator as ``operators list`` shows it."""

    operator: Operator
    created_at: str


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def check_scope(provinces: Iterable[str], national: bool, known: frozenset[str]) -> list[str]:
    """The provinces of a new token, sorted; refused when empty or not real provinces."""
    chosen = sorted(set(provinces))
    if national and chosen:
        raise InvalidScope("a national operator acts on every province: give no --provinces")
    if not national and not chosen:
        raise InvalidScope("say where the operator acts: --provinces 19,38 or --national")
    if unknown := [p for p in chosen if p not in known]:
        raise InvalidScope(f"not a province code today (data/units): {', '.join(unknown)}")
    return chosen


async def create(
    conn: Connection, name: str, provinces: Iterable[str] = (), national: bool = False
) -> str:
    """A new operator and their token (returned once; never stored in clear).

    ``provinces`` are checked by the caller (``check_scope``) against today's units.
    """
    token = new_token()
    try:
        await conn.execute(
            "INSERT INTO operators (name, token_hash, provinces, national) VALUES ($1, $2, $3, $4)",
            name,
            token_hash(token),
            sorted(set(provinces)),
            national,
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
        raise NotFound(f"no live operator named {name!r} (revoked already, or never created)")


async def list_live(conn: Connection) -> list[Listed]:
    rows = await conn.fetch(
        "SELECT name, provinces, national, created_at FROM operators "
        "WHERE revoked_at IS NULL ORDER BY name"
    )
    return [Listed(_operator(r), r["created_at"].isoformat()) for r in rows]


async def authenticate(conn: Connection, token: str) -> Operator | None:
    """The operator of a live token, else None."""
    if not token.startswith(PREFIX):
        return None
    row = await conn.fetchrow(
        "SELECT name, provinces, national FROM operators "
        "WHERE token_hash = $1 AND revoked_at IS NULL",
        token_hash(token),
    )
    return _operator(row) if row is not None else None


def _operator(row: asyncpg.Record) -> Operator:
    return Operator(row["name"], frozenset(row["provinces"]), row["national"])
