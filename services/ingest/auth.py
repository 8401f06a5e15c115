"""Who is publishing: bearer tokens checked against the key store through a short-lived cache.

A cache hit costs a dict lookup and one SHA-256: no database round trip per request.
An entry (a key, or the fact that an id is unknown) lives ``ttl_s`` seconds, so a
revocation takes effect on every ingest process within ``ttl_s`` (plus one lookup) while
the database answers. If the database does not answer, a key seen within ``max_stale_s``
is still honoured (publishing survives a short database outage); otherwise the request
is refused with 503. Once a lookup has failed, the key's requests are served from the
cache at once and the lookup is retried in the background, one at a time, each ``ttl_s``
at most (until 2026-12-06 every request waited out a lookup of its own while PostgreSQL
hung; review 82); the first answer, a revocation included, takes effect.

Guessing is cheap to refuse: a request whose key is not already known in the cache (an
unknown or malformed token, a wrong secret, an id not looked up yet) takes a token from
its client address's bucket *before* any database lookup, and an address whose bucket is
empty gets 429 without one. A known key's requests never touch that bucket, so a flood
of bad tokens from one address costs neither PostgreSQL nor the other publishers; and a
lookup that finds a valid key gives its token back, so a gateway relaying many communes
is not throttled after a restart empties the cache (review 82).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from services.ingest import problems
from services.ingest.keys import ApiKey, bearer_token, parse_token
from services.ingest.ratelimit import RateLimiter

log = logging.getLogger(__name__)

Lookup = Callable[[str], Awaitable[ApiKey | None]]
Clock = Callable[[], float]
_MAX_ENTRIES = 10_000  # unknown ids are cached too; bound what a scanner can make us hold


@dataclass(frozen=True, slots=True)
class _Entry:
    key: ApiKey | None
    fetched: float
    """When the database last answered for this id (``max_stale_s`` counts from it)."""
    expires: float
    """When to look it up again."""
    failed: bool = False
    """The last lookup failed: serve it at once (within ``max_stale_s``) and retry behind."""


class Authenticator:
    """Turns an Authorization header into an ApiKey, or raises the 401/429/503 Problem.

    ``failures``: the per-address limiter of requests that cost a lookup or failed.
    """

    def __init__(
        self,
        lookup: Lookup,
        ttl_s: float,
        max_stale_s: float,
        failures: RateLimiter,
        clock: Clock = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._max_stale_s = max_stale_s
        self._failures = failures
        self._clock = clock
        self._cache: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Future[_Entry]] = {}
        self._refreshing: set[asyncio.Task[_Entry]] = set()  # held: the loop keeps weak refs

    async def authenticate(self, authorization: str | None, address: str = "") -> ApiKey:
        """The key of this request from ``address`` (the client's IP address)."""
        token = bearer_token(authorization)
        if token is None:
            raise self._refused(address, "Send the API key as 'Authorization: Bearer <key>'.")
        parsed = parse_token(token)
        if parsed is None:
            raise self._refused(address, "The API key is not a valid egov-pulse key.")
        key_id, secret = parsed
        entry = self._usable(key_id)
        charged = False
        if entry is None:
            # Joining a lookup under way costs nothing more, nor does refreshing a key
            # this secret matched before (a valid key behind a proxy shared by many is
            # never billed as a guess when its entry ages out); anything else is a guess
            # and costs its address before the lookup.
            known = self._cache.get(key_id)
            refresh = known is not None and known.key is not None and known.key.matches(secret)
            if key_id not in self._pending and not refresh:
                self._charge(address)
                charged = True
            entry = await self._entry(key_id)
        key = entry.key
        if key is None or not key.matches(secret):
            raise self._refused(address, "The API key is unknown.")
        if key.revoked:
            raise self._refused(address, "The API key has been revoked.")
        if charged:
            # It was no guess: behind a province gateway, every commune's first request
            # after a restart would otherwise share the gateway's burst.
            self._failures.refund(address, self._clock(), 1)
        return key

    def _charge(self, address: str) -> None:
        wait_s = self._failures.acquire(address, self._clock())
        if wait_s > 0:
            raise problems.auth_rate_limited(RateLimiter.retry_after_header(wait_s))

    def _refused(self, address: str, detail: str) -> problems.Problem:
        """The 401 for ``detail``, once its address has paid for it (else the 429)."""
        self._charge(address)
        return problems.unauthorized(detail)

    def _usable(self, key_id: str) -> _Entry | None:
        """The cached entry if it may be used without waiting: fresh, or (after a failed
        lookup) not older than ``max_stale_s``, its refresh then started in the background."""
        entry = self._cache.get(key_id)
        if entry is None:
            return None
        now = self._clock()
        if now < entry.expires:
            return entry
        if entry.failed and now - entry.fetched < self._max_stale_s:
            self._refresh_behind(key_id)
            return entry
        return None

    def _refresh_behind(self, key_id: str) -> None:
        if key_id in self._pending:
            return
        task = asyncio.get_running_loop().create_task(self._entry(key_id))
        self._refreshing.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[_Entry]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled():
            task.exception()  # logged by _fetch; a waiting request gets its own answer

    async def _entry(self, key_id: str) -> _Entry:
        now = self._clock()
        entry = self._cache.get(key_id)
        if entry is not None and now < entry.expires:
            return entry
        pending = self._pending.get(key_id)
        if pending is not None:  # one lookup per id at a time, however many requests wait
            return await asyncio.shield(pending)
        future: asyncio.Future[_Entry] = asyncio.get_running_loop().create_future()
        self._pending[key_id] = future
        try:
            fresh = await self._fetch(key_id, entry, now)
            future.set_result(fresh)
            return fresh
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters may be none
            raise
        finally:
            del self._pending[key_id]

    async def _fetch(self, key_id: str, stale: _Entry | None, now: float) -> _Entry:
        try:
            key = await self._lookup(key_id)
        except Exception as exc:
            if stale is not None and now - stale.fetched < self._max_stale_s:
                log.warning("key store unreachable (%r); using the cached key %s", exc, key_id)
                # Remembered, so the key's next requests do not each wait out a lookup.
                kept = _Entry(stale.key, stale.fetched, self._clock() + self._ttl_s, True)
                self._cache[key_id] = kept
                return kept
            log.warning("key store unreachable (%r)", exc)
            raise problems.key_store_unavailable() from exc
        if len(self._cache) >= _MAX_ENTRIES:
            self._cache = {k: e for k, e in self._cache.items() if e.key is not None}
        entry = _Entry(key, now, now + self._ttl_s)
        self._cache[key_id] = entry
        return entry
