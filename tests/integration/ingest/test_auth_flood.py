"""A flood of unknown tokens from one address, on the real stack (ingest in-process, the
real broker and PostgreSQL, a real metrics worker): it gets 429s, each guess beyond the
address's small allowance refused before any database lookup, while a valid key from
another address keeps getting 202s and its events are counted."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

import httpx
import orjson
import pytest

from services.common.settings import CommonSettings
from services.ingest.app import create_app
from services.ingest.keys import ApiKey
from services.ingest.keystore import PgKeySource
from services.ingest.validation import BATCH
from tests.integration.ingest.harness import running_ingest
from tests.integration.ingest.test_publisher_trust import (
    TDOFFICE,
    add_key,
    document,
    one_worker,
    settings_for,
    until_counted,
)

pytestmark = pytest.mark.integration


class CountingKeys(PgKeySource):
    """The real key store, counting the lookups that reach PostgreSQL."""

    def __init__(self, dsn: str) -> None:
        super().__init__(dsn)
        self.lookups: list[str] = []

    async def find(self, key_id: str) -> ApiKey | None:
        self.lookups.append(key_id)
        return await super().find(key_id)


async def test_a_flood_of_unknown_tokens_is_429_and_a_valid_key_elsewhere_is_unharmed(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    settings = settings_for(
        common_settings, database_url, auth_failure_per_s=0.01, auth_failure_burst=10
    )
    keys = CountingKeys(database_url)
    async with running_ingest(settings, keys, client=("203.0.113.66", 40000)) as attacker:
        token = await add_key(attacker, "tdoffice-38", [TDOFFICE])
        app = create_app(attacker.service, manage_publisher=False)
        transport = httpx.ASGITransport(app=app, client=("198.51.100.2", 40001))
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as valid:

            async def guess() -> int:
                unknown = f"egp_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
                body = b"[]"  # never read: refused at the key
                headers = {"authorization": f"Bearer {unknown}", "content-type": BATCH}
                response = await attacker.client.post("/v1/events", content=body, headers=headers)
                return response.status_code

            async def publish(n: int) -> int:
                headers = {"authorization": f"Bearer {token}", "content-type": BATCH}
                body = orjson.dumps([document(f"ok-{n}", TDOFFICE + "x")])
                response = await valid.post("/v1/events", content=body, headers=headers)
                return response.status_code

            outcomes = await asyncio.gather(
                *(guess() for _ in range(300)), *(publish(n) for n in range(20))
            )
        guesses, published = outcomes[:300], outcomes[300:]
        assert published == [202] * 20
        assert set(guesses) <= {401, 429} and guesses.count(429) >= 290
        # Each guess that reached the database was paid for by its address first.
        assert len([k for k in keys.lookups if k != token[4:16]]) <= 10
        with one_worker(common_settings, database_url, tmp_path)() as (worker,):
            await until_counted(database_url, 20, worker)
