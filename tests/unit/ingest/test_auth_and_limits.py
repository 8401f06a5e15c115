"""API key format, the key cache's revocation bound, and token buckets: pure, explicit time."""

from __future__ import annotations

import pytest

from services.ingest.auth import Authenticator
from services.ingest.keys import ApiKey, bearer_token, new_key, parse_token
from services.ingest.problems import Problem
from services.ingest.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


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
    auth = Authenticator(lookup, ttl_s=5, max_stale_s=60, clock=clock)
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
    auth = Authenticator(lookup, ttl_s=5, max_stale_s=60, clock=clock)
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

    auth = Authenticator(lookup, ttl_s=5, max_stale_s=60, clock=Clock())
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
