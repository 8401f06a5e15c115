"""Review 82, the pure parts: the admission limit, the stale key served at once after a
failed lookup and refreshed behind, the refunded token of a valid key's first lookup,
and the settings that bound them (the served behaviour: tests/integration/ingest/
test_review82_overload.py)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from services.ingest.admission import InFlight
from services.ingest.keys import ApiKey, new_key
from services.ingest.problems import Problem
from services.ingest.ratelimit import RateLimiter
from services.ingest.settings import IngestSettings
from tests.unit.ingest.test_auth_and_limits import Clock, authenticator, stored


def test_in_flight_bytes_are_bounded_and_given_back() -> None:
    held = InFlight(100)
    assert held.fits(100) and not held.fits(101)
    assert held.hold(60)
    assert not held.hold(41) and held.held == 60  # refused: nothing taken
    assert held.hold(40) and not held.fits(1)
    held.release(60)
    assert held.held == 40 and held.fits(60)


async def test_after_one_failed_lookup_a_stale_key_is_served_at_once_and_refreshed_behind() -> None:
    key = new_key()
    hanging = asyncio.Event()
    lookups: list[str] = []
    answer = {"revoked": False, "hang": False}

    async def lookup(key_id: str) -> ApiKey:
        lookups.append(key_id)
        if answer["hang"]:
            await hanging.wait()  # released only to fail, as a lookup timeout does
            raise TimeoutError("key store")
        return stored(key.token, revoked=answer["revoked"])

    clock = Clock()
    auth = authenticator(lookup, clock)  # ttl 5 s, max stale 60 s
    header = f"Bearer {key.token}"
    await auth.authenticate(header)
    answer["hang"] = True
    clock.now = 6  # stale: this request waits for the lookup, which fails
    first = asyncio.ensure_future(auth.authenticate(header))
    await asyncio.sleep(0)
    hanging.set()
    assert (await first).key_id == key.key_id
    hanging.clear()
    before = len(lookups)
    clock.now = 8  # within the failure's back-off: no lookup, no wait
    assert (await auth.authenticate(header)).key_id == key.key_id
    assert len(lookups) == before
    clock.now = 12  # back-off over: answered at once, one lookup started behind
    for _ in range(3):
        assert (await asyncio.wait_for(auth.authenticate(header), 1)).key_id == key.key_id
    await asyncio.sleep(0)
    assert len(lookups) == before + 1
    # PostgreSQL answers again, with the key revoked: the refresh behind takes it in.
    answer["hang"], answer["revoked"] = False, True
    hanging.set()
    await asyncio.sleep(0.01)
    clock.now = 18
    await asyncio.sleep(0.01)
    with pytest.raises(Problem) as refused:
        for _ in range(3):
            await auth.authenticate(header)
            await asyncio.sleep(0.01)
    assert refused.value.status == 401


async def test_a_stale_key_is_never_served_past_max_stale() -> None:
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
    await auth.authenticate(header)  # the failure is remembered
    clock.now = 61  # past max_stale (60 s) since PostgreSQL last answered
    with pytest.raises(Problem) as refused:
        await auth.authenticate(header)
    assert refused.value.status == 503


async def test_a_valid_keys_first_lookup_costs_its_address_nothing() -> None:
    """Behind a province gateway every commune's key is looked up once after a restart:
    with a burst of 2, 20 valid keys from one address all pass; a guess still pays."""
    keys = [new_key() for _ in range(20)]
    by_id = {k.key_id: k for k in keys}

    async def lookup(key_id: str) -> ApiKey | None:
        made = by_id.get(key_id)
        return stored(made.token) if made else None

    auth = authenticator(lookup, Clock(), RateLimiter(rate=0.001, burst=2))
    for key in keys:
        assert (await auth.authenticate(f"Bearer {key.token}", "10.0.0.9")).key_id == key.key_id
    guesses = [new_key() for _ in range(3)]
    statuses = []
    for guess in guesses:
        with pytest.raises(Problem) as refused:
            await auth.authenticate(f"Bearer {guess.token}", "10.0.0.9")
        statuses.append(refused.value.status)
    assert statuses[-1] == 429


def test_the_overload_settings_are_bounded_at_start_up() -> None:
    with pytest.raises(ValidationError, match="EGOV_MAX_INFLIGHT_BYTES"):
        IngestSettings(max_inflight_bytes=1024, max_body_bytes=2048)
    with pytest.raises(ValidationError, match="EGOV_SHUTDOWN_GRACE_S"):
        IngestSettings(shutdown_grace_s=10, produce_timeout_s=10)
    for field, value in (("header_timeout_s", 0), ("max_header_bytes", 100)):
        with pytest.raises(ValidationError):
            IngestSettings(**{field: value})
    defaults = IngestSettings()
    assert defaults.produce_timeout_s < defaults.shutdown_grace_s < 30
    assert 16 * 1024 <= defaults.max_header_bytes <= 64 * 1024
