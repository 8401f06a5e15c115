"""API key format, the key cache's revocation bound, the per-address limit on bad tokens,
and token buckets: pure, explicit time."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from services.ingest.auth import Authenticator
from services.ingest.keys import ApiKey, bearer_token, new_key, parse_token
from services.ingest.problems import Problem
from services.ingest.ratelimit import RateLimiter
from services.ingest.settings import IngestSettings


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def authenticator(lookup: Any, clock: Clock, failures: RateLimiter | None = None) -> Authenticator:
    if failures is None:
        failures = RateLimiter(rate=1000, burst=1000)
    return Authenticator(lookup, ttl_s=5, max_stale_s=60, failures=failures, clock=clock)


def stored(token: str, *, revoked: bool = False) -> ApiKey:
    parsed = parse_token(token)
    assert parsed is not None
    key_id, secret = parsed
    made = ApiKey(key_id, "n", frozenset({"38"}), frozenset({"t"}), b"", revoked)
    from services.ingest.keys import hash_secret

    return ApiKey(made.key_id, made.name, made.units, made.types, hash_secret(secret), revoked)


def test_a_new_key_parses_and_only_its_hash_matches() -> None:
    key = new_key()
    parsed = parse_token(key.token)
    assert parsed is not None and parsed[0] == key.key_id
    assert key.secret_hash not in key.token.encode()
    assert stored(key.token).matches(parsed[1])
    assert not stored(key.token).matches(parsed[1][:-1] + "x")
    assert new_key().token != key.token


@pytest.mark.parametrize(
    ("header", "token"),
    [(None, None), ("", None), ("Basic x", None), ("Bearer", None), ("bearer abc", "abc")],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


async def test_revocation_takes_effect_after_the_ttl_and_not_before() -> None:
    key = new_key()
    state = {"revoked": False}
    lookups: list[str] = []

    async def lookup(key_id: str) -> ApiKey:
        lookups.append(key_id)
        return stored(key.token, revoked=state["revoked"])

    clock = Clock()
    auth = authenticator(lookup, clock)
    header = f"Bearer {key.token}"
    assert (await auth.authenticate(header)).key_id == key.key_id
    state["revoked"] = True
    clock.now = 4.9
    await auth.authenticate(header)  # cached: no database round trip per request
    assert len(lookups) == 1
    clock.now = 5.0
    with pytest.raises(Problem) as refused:
        await auth.authenticate(header)
    assert refused.value.status == 401 and "revoked" in refused.value.detail


async def test_database_outage_uses_a_recent_key_then_refuses_with_503() -> None:
    key = new_key()
    up = {"value": True}

    async def lookup(_: str) -> ApiKey:
        if not up["value"]:
            raise OSError("connection refused")
        return stored(key.token)

    clock = Clock()
    auth = authenticator(lookup, clock)
    header = f"Bearer {key.token}"
    await auth.authenticate(header)
    up["value"] = False
    clock.now = 30
    await auth.authenticate(header)
    clock.now = 61
    with pytest.raises(Problem) as refused:
        await auth.authenticate(header)
    assert refused.value.status == 503


async def test_unknown_key_is_401_and_cached() -> None:
    calls: list[str] = []

    async def lookup(key_id: str) -> None:
        calls.append(key_id)

    auth = authenticator(lookup, Clock())
    for _ in range(3):
        with pytest.raises(Problem) as refused:
            await auth.authenticate("Bearer egp_0123456789ab_" + "A" * 43)
        assert refused.value.status == 401
    assert len(calls) == 1


def test_token_bucket_allows_burst_then_paces() -> None:
    limiter = RateLimiter(rate=2, burst=3)
    assert [limiter.acquire("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("k", 0.0)
    assert wait == pytest.approx(0.5)
    assert RateLimiter.retry_after_header(wait) == "1"
    assert limiter.acquire("other", 0.0) == 0.0  # buckets are per key
    assert limiter.acquire("k", 0.5) == 0.0
    assert limiter.acquire("k", 0.5) > 0
    assert limiter.acquire("k", 100.0) == 0.0  # refills to the burst, not beyond
    assert [limiter.acquire("k", 100.0) for _ in range(3)][-1] > 0


UNKNOWN = "Bearer egp_{:012x}_" + "A" * 43


async def test_unknown_tokens_from_one_address_get_429_before_any_lookup() -> None:
    """Each guess with a new key id would cost a PostgreSQL lookup: the address pays first,
    and once its bucket is empty it gets 429 with no lookup at all."""
    key = new_key()
    lookups: list[str] = []

    async def lookup(key_id: str) -> ApiKey | None:
        lookups.append(key_id)
        return stored(key.token) if key_id == key.key_id else None

    clock = Clock()
    auth = authenticator(lookup, clock, RateLimiter(rate=1, burst=5))
    valid = f"Bearer {key.token}"
    assert (await auth.authenticate(valid, "10.0.0.2")).key_id == key.key_id
    statuses = []
    for n in range(50):
        with pytest.raises(Problem) as refused:
            await auth.authenticate(UNKNOWN.format(n), "10.0.0.66")
        statuses.append(refused.value.status)
    # An unknown id costs its lookup and its 401: two tokens; then every guess is a 429.
    assert statuses[:3] == [401, 401, 429] and set(statuses[3:]) == {429}
    assert len(lookups) == 1 + 3  # the valid key, then three guesses charged before lookup
    assert refused.value.headers["Retry-After"] == "1"
    # A cached valid key is never charged, from another address or from the flooding one.
    for address in ("10.0.0.2", "10.0.0.66"):
        assert (await auth.authenticate(valid, address)).key_id == key.key_id
    clock.now = 10.0  # the bucket refills: the address may try again
    with pytest.raises(Problem) as refused:
        await auth.authenticate(UNKNOWN.format(999), "10.0.0.66")
    assert refused.value.status == 401


async def test_malformed_and_missing_tokens_are_charged_to_their_address() -> None:
    async def lookup(_: str) -> None:
        raise AssertionError("a malformed token must never be looked up")

    auth = authenticator(lookup, Clock(), RateLimiter(rate=1, burst=2))
    statuses = []
    for header in (None, "Bearer nonsense", "Basic x", None):
        with pytest.raises(Problem) as refused:
            await auth.authenticate(header, "10.0.0.66")
        statuses.append(refused.value.status)
    assert statuses == [401, 401, 429, 429]


def test_requests_cost_their_events_and_a_refusal_costs_nothing() -> None:
    limiter = RateLimiter(rate=10, burst=100)
    assert limiter.acquire("k", 0.0, cost=60) == 0.0
    assert limiter.acquire("k", 0.0, cost=60) == pytest.approx(2.0)  # 20 more at 10/s
    assert limiter.acquire("k", 0.0, cost=40) == 0.0  # the refused 60 took nothing
    assert limiter.acquire("k", 0.0, cost=1) > 0


def test_buckets_are_bounded_least_recently_used_first() -> None:
    limiter = RateLimiter(rate=1, burst=1, max_entries=3)
    for address in ("a", "b", "c"):
        assert limiter.acquire(address, 0.0) == 0.0
    assert limiter.acquire("a", 0.0) > 0  # "a" used again: now the most recent
    assert limiter.acquire("d", 0.0) == 0.0  # evicts "b", the least recently used
    assert len(limiter) == 3
    assert limiter.acquire("c", 0.0) > 0 and limiter.acquire("a", 0.0) > 0
    assert limiter.acquire("b", 0.0) == 0.0  # forgotten: a full bucket again


def test_a_burst_below_one_full_batch_is_refused_at_start_up() -> None:
    """The per-key limit counts events: a burst smaller than a batch would refuse it forever."""
    with pytest.raises(ValidationError, match="EGOV_RATE_LIMIT_BURST"):
        IngestSettings(rate_limit_burst=999, max_batch_events=1000)
    assert IngestSettings(rate_limit_burst=1000, max_batch_events=1000).rate_limit_burst == 1000


async def test_requests_waiting_on_one_lookup_are_charged_once() -> None:
    """A valid key's first requests arrive together: one lookup, one token, all accepted
    (found on the real stack: each waiter was charged and the 3rd of 20 got a 429)."""
    key = new_key()
    release = asyncio.Event()
    lookups: list[str] = []

    async def lookup(key_id: str) -> ApiKey:
        lookups.append(key_id)
        await release.wait()
        return stored(key.token)

    auth = authenticator(lookup, Clock(), RateLimiter(rate=1, burst=2))
    waiting = [
        asyncio.ensure_future(auth.authenticate(f"Bearer {key.token}", "10.0.0.2"))
        for _ in range(20)
    ]
    await asyncio.sleep(0)  # every request is now waiting on the one lookup
    release.set()
    found = await asyncio.gather(*waiting)
    assert {k.key_id for k in found} == {key.key_id} and len(lookups) == 1
