"""The ingest HTTP application: routes, and the refusal rules applied in order."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.contract import Contract
from services.common.units import UnitRegistry
from services.ingest import problems
from services.ingest.problems import Problem
from services.ingest.publisher import KafkaPublisher, PublishError
from services.ingest.settings import IngestSettings
from services.ingest.telemetry import IngestMetrics
from services.ingest.validation import BATCH, SINGLE, EventValidator, Limits, decode_body


class IngestService:
    """What a request needs: validation rules, the publisher and the service's metrics."""

    def __init__(
        self,
        settings: IngestSettings,
        contract: Contract,
        registry: UnitRegistry,
        publisher: KafkaPublisher,
        metrics_registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.metrics_registry = metrics_registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.metrics_registry)
        limits = Limits(
            clock_skew=timedelta(seconds=settings.clock_skew_s),
            horizon=timedelta(days=settings.horizon_days),
        )
        self.validator = EventValidator(contract, registry, limits)

    async def accept(self, request: Request) -> int:
        """Validate and publish a request's events; returns how many were accepted."""
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type not in (SINGLE, BATCH):
            raise problems.unsupported_media_type(content_type)
        body = await self._read_body(request)
        events = decode_body(body, content_type, self.settings.max_batch_events)
        self.metrics.batch_size.observe(len(events))
        records, errors = self.validator.check(events, datetime.now(UTC))
        if errors:
            for error in errors:
                self.metrics.events.labels("rejected", error.code, "").inc()
            raise problems.invalid_events(errors, len(events))
        started = time.perf_counter()
        try:
            await self.publisher.publish(records)
        except PublishError as exc:
            self.metrics.events.labels("unavailable", "broker", "").inc(len(records))
            raise problems.broker_unavailable(str(exc)) from exc
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        for record in records:
            self.metrics.events.labels("accepted", "", record.event_type).inc()
        return len(records)

    async def _read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise problems.body_too_large(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:  # a chunked body has no Content-Length to check up front
                raise problems.body_too_large(limit)
            chunks.append(chunk)
        return b"".join(chunks)


def create_app(service: IngestService, *, manage_publisher: bool = True) -> Starlette:
    """The ASGI app; with ``manage_publisher`` it starts and stops the Kafka producer."""

    async def post_events(request: Request) -> Response:
        try:
            accepted = await service.accept(request)
        except Problem as problem:
            service.metrics.requests.labels(str(problem.status), problem.slug).inc()
            return problem.to_response()
        service.metrics.requests.labels("202", "").inc()
        return JSONResponse({"accepted": accepted}, status_code=202)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        broker = await service.publisher.ping()
        status = 200 if broker else 503
        return JSONResponse({"broker": broker}, status_code=status)

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage_publisher:
            await service.publisher.start()
        try:
            yield
        finally:
            if manage_publisher:
                await service.publisher.stop()

    return Starlette(
        routes=[
            Route("/v1/events", post_events, methods=["POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
        ],
        lifespan=lifespan,
    )
