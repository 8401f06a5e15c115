"""Entry point of the ingest service: wires the real adapters and runs uvicorn."""

from __future__ import annotations

import gc

import uvicorn

from services.common.contract import Contract
from services.common.httphead import head_limited
from services.common.kafka import ensure_topics
from services.common.kpis import KpiCatalogue
from services.common.summaries import Summarizer, record_signer
from services.common.units import UnitRegistry
from services.ingest.app import IngestService, create_app
from services.ingest.keystore import PgKeySource
from services.ingest.publisher import KafkaPublisher
from services.ingest.settings import IngestSettings


def build_service(settings: IngestSettings) -> IngestService:
    contract = Contract.load(settings.schemas_dir)
    registry = UnitRegistry.from_dir(settings.units_dir)
    catalogue = KpiCatalogue.load(
        event_types=contract.event_types, schemas_dir=contract.schemas_dir
    )
    signer = record_signer(settings, contract, catalogue, registry)
    publisher = KafkaPublisher(settings, settings.produce_timeout_s, signer)
    return IngestService(
        settings,
        contract,
        registry,
        publisher,
        PgKeySource(settings.database_url.get_secret_value()),
        # Summaries are worth their cost only to workers that can trust them (same key).
        summarizer=Summarizer(catalogue) if signer is not None else None,
    )


async def serve(settings: IngestSettings) -> None:
    # Built first: a refused signing key (SigningKeyError) stops the start in one line,
    # before any wait on the broker.
    service = build_service(settings)
    await ensure_topics(settings)
    app = create_app(service)
    # The contract and the unit registry are ~120k long-lived objects: every full
    # collection walked them all (~60 ms pauses here, landing in the batch p99). Freezing
    # moves what exists now out of the collector's reach; requests' garbage is unaffected.
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(
        app,
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # uvloop and httptools: measured in docs/ingest.md; the hot path is CPU-bound.
        # httptools with a deadline and a size bound on each request head (httphead.py):
        # uvicorn has neither, so a slow or endless head held a connection for ever.
        loop="uvloop",
        http=head_limited(
            settings.header_timeout_s,
            settings.max_header_bytes,
            service.metrics.connection_refused,
            settings.body_timeout_s,
        ),
        # After SIGTERM, requests under way get this long; the rest are cancelled and
        # answered 503 (asgi.py), so a body trickled in cannot hold the stop for ever.
        timeout_graceful_shutdown=settings.shutdown_grace_s,
        # The auth-failure limit is per peer address: X-Forwarded-* is not believed, or a
        # client could pick a fresh bucket per request (behind a proxy, all share one).
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    service.stopping = lambda: server.should_exit
    await server.serve()
