"""An ingest service in-process (real broker, real PostgreSQL), its keys, and topic readers."""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer

from services.common.contract import Contract
from services.common.kafka import ensure_topics
from services.common.kpis import KpiCatalogue
from services.common.settings import CommonSettings
from services.common.summaries import Summarizer, record_signer
from services.common.units import UnitRegistry
from services.ingest.app import IngestService, create_app
from services.ingest.keystore import PgKeySource, create_key
from services.ingest.publisher import KafkaPublisher
from services.ingest.settings import IngestSettings
from services.ingest.validation import BATCH, SINGLE

CONTRACT = Contract.load()
REGISTRY = UnitRegistry.from_dir()
CATALOGUE = KpiCatalogue.load(event_types=CONTRACT.event_types)
ALL_TYPES = sorted(CONTRACT.event_types)

# Thanh Hóa (38) today; two of its sibling communes; Nông Cống district (404) before 2025
# and one of its communes; Thái Nguyên (19) and one of its wards.
THANH_HOA, HAM_RONG, HAC_THANH = "38", "14758", "14797"
NONG_CONG_DISTRICT, NONG_CONG_TOWN_2024 = "404", "16279"
THAI_NGUYEN, BAC_KAN_WARD = "19", "01843"

# The contract's examples publish from https:// sources (and urn: ones): these keys may use
# any; the source tests make keys of their own, bound narrowly.
ANY_SOURCE = ["https:", "urn:"]
KEYS = {
    "province": ([THANH_HOA], ALL_TYPES),
    "commune": ([HAM_RONG], ALL_TYPES),
    "district-2024": ([NONG_CONG_DISTRICT], ALL_TYPES),
    "documents-only": ([THANH_HOA], ["vn.egov.document.issued"]),
    "thai-nguyen": ([THAI_NGUYEN], ALL_TYPES),
}


def event(
    unit: str = HAM_RONG,
    event_type: str = "vn.egov.document.issued",
    at: datetime | None = None,
    **changes: Any,
) -> dict[str, Any]:
    """A valid event of ``event_type`` (from its first valid example), new id, now."""
    example = copy.deepcopy(CONTRACT.examples(event_type, "valid")[0][1])
    example.update(
        id=str(uuid.uuid4()),
        unit=unit,
        time=(at or datetime.now(UTC)).isoformat(),
        **changes,
    )
    return example


@dataclass
class Ingest:
    """What a test drives: the HTTP client, the service, its settings and its keys."""

    client: httpx.AsyncClient
    service: IngestService
    settings: IngestSettings
    keys: dict[str, str]

    async def post(self, body: Any, key: str | None = "province", **kw: Any) -> httpx.Response:
        headers = {"content-type": BATCH if isinstance(body, list) else SINGLE}
        if key is not None:
            headers["authorization"] = f"Bearer {self.keys[key]}"
        headers.update(kw.pop("headers", {}))
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.client.post("/v1/events", content=content, headers=headers, **kw)


def ingest_settings(common: CommonSettings, database_url: str, **overrides: Any) -> IngestSettings:
    values: dict[str, Any] = {**common.model_dump(exclude={"database_url"}), "produce_timeout_s": 5}
    return IngestSettings(**(values | overrides), database_url=database_url)


async def create_keys(database_url: str) -> dict[str, str]:
    conn = await asyncpg.connect(database_url)
    try:
        return {
            name: (await create_key(conn, name, units, types, sources=ANY_SOURCE)).token
            for name, (units, types) in KEYS.items()
        }
    finally:
        await conn.close()


@asynccontextmanager
async def running_ingest(
    settings: IngestSettings,
    key_source: PgKeySource | None = None,
    client: tuple[str, int] = ("127.0.0.1", 50000),
) -> AsyncIterator[Ingest]:
    """The app served in-process over ASGI, with its producer and key pool started; signed
    and summarised as in production when ``settings`` hold a record signing key.
    ``client``: the peer address every request comes from."""
    await ensure_topics(settings)
    keys = await create_keys(settings.database_url.get_secret_value())
    signer = record_signer(settings, CONTRACT, CATALOGUE, REGISTRY)
    service = IngestService(
        settings,
        CONTRACT,
        REGISTRY,
        KafkaPublisher(settings, settings.produce_timeout_s, signer),
        key_source or PgKeySource(settings.database_url.get_secret_value()),
        summarizer=Summarizer(CATALOGUE) if signer is not None else None,
    )
    await service.keys.start()
    await service.publisher.start()
    app = create_app(service, manage_publisher=False)
    transport = httpx.ASGITransport(app=app, client=client)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
            yield Ingest(client, service, settings, keys)
    finally:
        await service.publisher.stop()
        await service.keys.stop()


async def topic_messages(settings: CommonSettings, timeout_s: float = 1.5) -> list[Any]:
    """Every message now on the three event topics, read from the beginning."""
    consumer = AIOKafkaConsumer(
        *settings.event_topics,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    try:
        # Inside the try: a start that fails (a topic Apache Kafka does not have) still
        # closes the consumer, else it is collected during some later test, an error there.
        await consumer.start()
        found: list[Any] = []
        while True:
            batch = await consumer.getmany(timeout_ms=int(timeout_s * 1000))
            if not batch:
                return found
            for messages in batch.values():
                found.extend(messages)
    finally:
        await consumer.stop()


async def topic_events(settings: CommonSettings) -> list[dict[str, Any]]:
    """Every event on the topics: a packed record (a JSON array) holds several."""
    events: list[dict[str, Any]] = []
    for message in await topic_messages(settings):
        value = orjson.loads(message.value)
        events.extend(value if isinstance(value, list) else [value])
    return events


def ids(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((e["source"], e["id"]) for e in events)
