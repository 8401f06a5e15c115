"""schemathesis against the served OpenAPI document, on a real port: never a 5xx."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import schemathesis.specs.openapi.schemas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.broker import free_port
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.ingest.harness import create_keys, topic_events
from tests.integration.processes import running_service, service_env

pytestmark = pytest.mark.integration


async def test_schemathesis_finds_no_server_error(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    await ensure_topics(common_settings)
    keys = await create_keys(database_url)
    env = service_env(common_settings, database_url)
    port = free_port()
    env["EGOV_INGEST_PORT"] = str(port)
    with running_service(["ingest"], env, port, tmp_path / "ingest.log") as base:
        async with httpx.AsyncClient() as client:
            document = (await client.get(base + "/openapi.json")).json()
        operation = schemathesis.openapi.from_dict(document)["/v1/events"]["POST"]
        statuses = await asyncio.to_thread(_fuzz, operation, base, keys)
        log = (tmp_path / "ingest.log").read_text()
    assert all(status < 500 for status in statuses), (statuses, log[-3000:])
    assert "Traceback" not in log
    assert len(statuses) >= 20
    accepted = statuses.count(202)
    assert len(await topic_events(common_settings)) >= accepted  # acknowledged => on the topic


def _fuzz(operation: Any, base: str, keys: dict[str, str]) -> list[int]:
    statuses: list[int] = []
    key_choice = st.sampled_from([None, *keys.values()])

    # Sent with httpx: schemathesis' own requests transport trips over the urllib3 here.
    with httpx.Client(base_url=base, timeout=10) as client:

        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), key=key_choice)
        def run(case: Any, key: str | None) -> None:
            # The generated Authorization values are not all legal HTTP; send ours.
            headers = {"Content-Type": case.media_type}
            if key:
                headers["Authorization"] = f"Bearer {key}"
            body = json.dumps(case.body).encode()
            response = client.request(
                case.method, case.formatted_path, content=body, headers=headers
            )
            statuses.append(response.status_code)
            assert response.status_code < 500, response.text

        run()
    return statuses
