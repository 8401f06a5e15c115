"""Review 64: the promise behind ingest's 202 as a hostile publisher tests it (fixed
2026-12-06: the key is checked again once the body is in, and a body has
EGOV_BODY_TIMEOUT_S to arrive).

A 202 means counted or visibly refused; a revoked key publishes nothing once its
revocation took effect (docs/ingest.md, "A revocation takes effect on every ingest
process within that TTL (plus one lookup)").
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

import asyncpg
import orjson
import pytest

from services.common.settings import CommonSettings
from services.ingest.asgi import EventsEndpoint
from services.ingest.keystore import create_key, revoke_key
from services.ingest.validation import SINGLE
from tests.integration.ingest.harness import (
    ALL_TYPES,
    event,
    ids,
    ingest_settings,
    running_ingest,
    topic_events,
)

pytestmark = pytest.mark.integration

TTL_S = 0.2


async def test_a_key_revoked_while_its_body_is_trickled_in_publishes_nothing(
    common_settings: CommonSettings, database_url: str
) -> None:
    settings = ingest_settings(common_settings, database_url, key_cache_ttl_s=TTL_S)
    async with running_ingest(settings) as ingest:
        conn = await asyncpg.connect(database_url)
        try:
            leaked = (
                await create_key(conn, "leaked", ["38"], ALL_TYPES, sources=["https:", "urn:"])
            ).token
        finally:
            await conn.close()
        ingest.keys["leaked"] = leaked
        assert (await ingest.post(event(), key="leaked")).status_code == 202  # the key works

        # A hostile holder of the key opens a request: headers now, body later.
        reading = asyncio.Event()
        release = asyncio.Event()
        smuggled = event()
        body = orjson.dumps(smuggled)

        async def receive() -> MutableMapping[str, Any]:
            reading.set()
            await release.wait()
            return {"type": "http.request", "body": body, "more_body": False}

        sent: list[MutableMapping[str, Any]] = []
        endpoint = EventsEndpoint(ingest.service)
        slow = asyncio.create_task(endpoint(_post(leaked), receive, sent_to(sent)))
        await asyncio.wait_for(reading.wait(), 10)  # authenticated, now waiting for its body

        # The operator revokes the leaked key; it takes effect: a new request is 401.
        conn = await asyncpg.connect(database_url)
        try:
            assert await revoke_key(conn, "leaked")
        finally:
            await conn.close()
        await asyncio.sleep(TTL_S * 3)
        after = await ingest.post(event(), key="leaked")
        assert after.status_code == 401, after.text
        await asyncio.sleep(TTL_S * 3)  # well past the TTL: the revocation is in effect

        release.set()  # the trickled body arrives
        await asyncio.wait_for(slow, 10)
        status = sent[0]["status"]
        published = await topic_events(settings)
        smuggled_on_topic = ids([smuggled])[0] in set(ids(published))
        assert (status, smuggled_on_topic) == (401, False), (
            f"revoked key's trickled request answered {status}; "
            f"its event on the topic: {smuggled_on_topic}"
        )


async def test_a_body_that_does_not_arrive_in_time_is_refused_408_and_publishes_nothing(
    common_settings: CommonSettings, database_url: str
) -> None:
    settings = ingest_settings(common_settings, database_url, body_timeout_s=0.5)
    async with running_ingest(settings) as ingest:
        stalled = event()
        release = asyncio.Event()

        async def receive() -> MutableMapping[str, Any]:
            await release.wait()  # the body never comes while the deadline runs
            return {"type": "http.request", "body": orjson.dumps(stalled), "more_body": False}

        sent: list[MutableMapping[str, Any]] = []
        endpoint = EventsEndpoint(ingest.service)
        await asyncio.wait_for(endpoint(_post(ingest.keys["province"]), receive, sent_to(sent)), 10)
        release.set()
        assert sent[0]["status"] == 408
        problem = orjson.loads(sent[1]["body"])
        assert problem["type"].endswith("/body-too-slow"), problem
        assert "for 0.5 s" in problem["detail"], problem

        # Nothing of the stalled request was published; the same key's next request is.
        sent_on_time = event()
        assert (await ingest.post(sent_on_time)).status_code == 202
        published = set(ids(await topic_events(settings)))
        assert ids([stalled])[0] not in published
        assert ids([sent_on_time])[0] in published


def _post(token: str) -> dict[str, Any]:
    """The ASGI scope of a POST /v1/events with ``token``, one event, its body to come."""
    return {
        "type": "http",
        "method": "POST",
        "path": "/v1/events",
        "headers": [
            (b"authorization", f"Bearer {token}".encode()),
            (b"content-type", SINGLE.encode()),
        ],
        "client": ("127.0.0.1", 50001),
    }


def sent_to(sent: list[MutableMapping[str, Any]]) -> Any:
    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    return send
