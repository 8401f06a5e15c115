"""API keys: their format, how they are hashed, and what a key's scope allows.

Pure: no I/O. A key is ``egp_<key_id>_<secret>``: the id (public, 12 hex digits) finds
the row; only SHA-256 of the secret (32 random bytes) is stored. A slow password hash
(bcrypt, scrypt) protects *low-entropy* secrets against guessing after a database leak;
a 256-bit random secret cannot be guessed whatever the hash, and a slow hash would cost
tens of milliseconds of CPU per request at 2,500 requests/s. See docs/ingest.md.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.common.units import ERAS, VN_TZ, UnitRegistry
from services.ingest.problems import InvalidEvent
from services.ingest.validation import Record

PREFIX = "egp_"
_TOKEN = re.compile(r"^egp_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly made key: the token is shown once, only the hash is kept."""

    key_id: str
    token: str
    secret_hash: bytes


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: who it is for and what it may publish."""

    key_id: str
    name: str
    units: frozenset[str]
    types: frozenset[str]
    secret_hash: bytes
    revoked: bool = False
    sources: tuple[str, ...] = ()
    """Prefixes of the CloudEvents ``source`` values it may publish; none: it may publish
    nothing (a key made before sources were bound, until an operator binds it)."""

    @property
    def publisher(self) -> str:
        """The integrating system's stable name (kept across rotations, unlike the key id):
        the first part of its events' dedup identity."""
        return self.name

    def matches(self, secret: str) -> bool:
        """Constant-time comparison, so response timing reveals nothing of the hash."""
        return hmac.compare_digest(hash_secret(secret), self.secret_hash)

    def allows_type(self, event_type: str) -> bool:
        return event_type in self.types

    def allows_source(self, source: str) -> bool:
        return any(source_allowed(source, prefix) for prefix in self.sources)

    def allows_unit(self, registry: UnitRegistry, code: str, at: datetime) -> bool:
        """Whether ``code`` lies in one of the key's unit subtrees at the event's time, or,
        for an event before the 2025 reform, in a unit the crosswalk says went whole into
        one of them (``UnitRegistry.is_within_today``): today's Thái Nguyên key backfills
        old Bắc Kạn, merged into it; a unit only partly merged stays out of scope."""
        return any(registry.is_within_today(code, scope, at) for scope in self.units)


_SOURCE_BOUNDARIES = ("/", ":", "#", "?")
_AUTHORITY = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")
"""A hierarchical URI's scheme and authority (``userinfo@host:port``), RFC 3986 §3.2."""
_PORT = re.compile(r":[0-9]*")


def source_allowed(source: str, prefix: str) -> bool:
    """Whether ``source`` is ``prefix`` or lies under it: the prefix ends at a boundary
    (``/``, ``:``, ``#``, ``?``), or the source continues with one. So the prefix
    ``https://tdoffice.thanhhoa.gov.vn`` allows ``https://tdoffice.thanhhoa.gov.vn/nongcong``
    but not ``https://tdoffice.thanhhoa.gov.vn.example.com/``."""
    if not prefix or not source.startswith(prefix):
        return False
    rest = source[len(prefix) :]
    if not rest:
        return True
    if not (prefix.endswith(_SOURCE_BOUNDARIES) or rest.startswith(_SOURCE_BOUNDARIES)):
        return False
    # Within a URI's authority a ':' starts a port, or ends a user name before '@':
    # ``https://tdoffice.thanhhoa.gov.vn:x@dichvucong.thanhhoa.gov.vn/`` is the host
    # dichvucong. A prefix that ends inside the source's authority allows only a port (one
    # that ends before it, a scheme such as "https:", binds no host at all).
    authority = _AUTHORITY.match(source)
    if authority is not None and authority.start(1) < len(prefix) < authority.end():
        return _PORT.fullmatch(source[len(prefix) : authority.end()]) is not None
    return True


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def new_key() -> NewKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return NewKey(key_id, f"{PREFIX}{key_id}_{secret}", hash_secret(secret))


def parse_token(token: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed token, else None."""
    match = _TOKEN.match(token)
    return (match.group(1), match.group(2)) if match else None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def split_codes(text: str) -> list[str]:
    """``"19, 38,68"`` -> ``["19", "38", "68"]``: the CLI's comma-separated lists."""
    return [part.strip() for part in text.split(",") if part.strip()]


def check_scope(
    units: Iterable[str], types: Iterable[str], registry: UnitRegistry, known_types: Iterable[str]
) -> list[str]:
    """What is wrong with a scope about to be stored (unknown units or types); [] if sound."""
    problems: list[str] = []
    known_units = {u.code for era in ERAS for u in registry.units(era)}
    problems += [f"unknown unit code {code!r}" for code in units if code not in known_units]
    known = set(known_types)
    problems += [f"unknown event type {t!r}" for t in types if t not in known]
    return problems


MAX_NAME_BYTES = 200
"""A key's name is its events' publisher, sent in a Kafka header the workers read back
(services/common/headers.py ``publisher_of``): no longer than they accept."""


def check_name(name: str) -> list[str]:
    """What is wrong with a key name about to be stored; [] if sound."""
    if not name.strip() or len(name.encode()) > MAX_NAME_BYTES:
        return [f"--name must be 1 to {MAX_NAME_BYTES} bytes (it names the publisher)"]
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return ["--name may not hold control characters (it names the publisher in headers)"]
    return []


def check_sources(sources: Iterable[str]) -> list[str]:
    """What is wrong with a source prefix list about to be stored; [] if sound."""
    listed = list(sources)
    if not listed:
        return ["--sources may not be empty"]
    wrong = [f"source prefix {p!r} has spaces or is empty" for p in listed if not p or " " in p]
    # A prefix is printed back (`keys list`, `keys sources`): a line break in it would
    # forge a line there, and no CloudEvents source holds one.
    wrong += [
        f"source prefix {p!r} may not hold control characters"
        for p in listed
        if any(ord(c) < 0x20 or ord(c) == 0x7F or c in "\u2028\u2029" for c in p)
    ]
    return wrong


def scope_violations(
    key: ApiKey, records: Iterable[Record], registry: UnitRegistry
) -> list[InvalidEvent]:
    """Every event of a request that this key may not publish (its source, type or unit)."""
    errors: list[InvalidEvent] = []
    # A batch names few sources too: one prefix test per distinct source.
    sources: dict[str, bool] = {}
    # A batch names few units: the subtree test is the same for a unit within one era.
    allowed: dict[tuple[str, str], bool] = {}
    for record in records:
        unit_allowed = allowed.get((record.unit, record.era))
        if unit_allowed is None:
            unit_allowed = key.allows_unit(registry, record.unit, record.at)
            allowed[record.unit, record.era] = unit_allowed
        source_ok = sources.get(record.source)
        if source_ok is None:
            source_ok = sources[record.source] = key.allows_source(record.source)
        if not source_ok:
            errors.append(_source_refused(key, record))
        if not key.allows_type(record.event_type):
            errors.append(
                InvalidEvent(
                    record.index,
                    "/type",
                    f"this API key may not publish {record.event_type} events",
                    code="type-out-of-scope",
                )
            )
        if not unit_allowed:
            errors.append(
                InvalidEvent(
                    record.index,
                    "/unit",
                    f"this API key may not publish for unit {record.unit} "
                    # The Vietnam date the era was judged by, not the event's own offset's
                    # (2025-06-30T17:30Z is 1 July there: after the reform; review 61).
                    f"(its units: {', '.join(sorted(key.units))}) on "
                    f"{record.at.astimezone(VN_TZ).date()} in Vietnam",
                    code="unit-out-of-scope",
                )
            )
    return errors


def _source_refused(key: ApiKey, record: Record) -> InvalidEvent:
    if not key.sources:
        reason = (
            f"this API key may not publish source {record.source!r}: it is bound to no "
            f"sources (made before keys were bound to theirs); an operator binds it with "
            f"`egov-pulse keys sources {key.name} --sources PREFIX,...`"
        )
    else:
        reason = (
            f"this API key may not publish source {record.source!r} "
            f"(its sources: {', '.join(key.sources)})"
        )
    return InvalidEvent(record.index, "/source", reason, code="source-out-of-scope")
