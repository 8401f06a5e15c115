"""The ingest HTTP application: routes, and the refusal rules applied in order.

Order: 401 key (429 for an address sending bad keys), 415 content type, 413 size, 400
JSON, 429 the key's event rate, 422 contract/units/time, 403 scope (source, type, unit),
503 broker. Nothing is published unless every event of the request passes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from services.common.contract import Contract
from services.common.summaries import Summarizer
from services.common.units import UnitRegistry
from services.ingest import problems
from services.ingest.admission import InFlight
from services.ingest.asgi import (
    EVENTS_PATH,
    ASGIApp,
    EventsEndpoint,
    Submission,
    route_events_first,
)
from services.ingest.auth import Authenticator
from services.ingest.keys import ApiKey, scope_violations
from services.ingest.openapi import build_document
from services.ingest.problems import InvalidEvent
from services.ingest.publisher import KafkaPublisher, PublishError
from services.ingest.ratelimit import RateLimiter
from services.ingest.settings import IngestSettings
from services.ingest.telemetry import IngestMetrics
from services.ingest.validation import (
    BATCH,
    SINGLE,
    EventValidator,
    Limits,
    Record,
    decode_body,
)


class KeySource(Protocol):
    """Where keys are looked up (PostgreSQL in production), and whether it answers."""

    async def find(self, key_id: str) -> ApiKey | None: ...

    @property
    def unbound_before(self) -> datetime | None:
        """The dedup cut-over (migration 0013), read at start."""

    async def ping(self) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class IngestService:
    """What a request needs: keys, rate limits, validation rules, the publisher, metrics."""

    def __init__(
        self,
        settings: IngestSettings,
        contract: Contract,
        registry: UnitRegistry,
        publisher: KafkaPublisher,
        keys: KeySource,
        metrics_registry: CollectorRegistry | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.settings = settings
        self.contract = contract
        self.registry = registry
        self.publisher = publisher
        self.keys = keys
        self.metrics_registry = metrics_registry or CollectorRegistry()
        self.metrics = IngestMetrics(self.metrics_registry)
        self.metrics.prime(contract.event_types)
        self.in_flight = InFlight(settings.max_inflight_bytes)
        self.metrics.inflight_bytes.set_function(lambda: self.in_flight.held)
        # Whether the server is stopping (SIGTERM): server.py points it at uvicorn's flag.
        self.stopping: Callable[[], bool] = lambda: False
        failures = RateLimiter(
            settings.auth_failure_per_s,
            settings.auth_failure_burst,
            settings.auth_failure_addresses,
        )
        self.authenticator = Authenticator(
            keys.find, settings.key_cache_ttl_s, settings.key_cache_max_stale_s, failures
        )
        self.limiter = RateLimiter(settings.rate_limit_per_s, settings.rate_limit_burst)
        limits = Limits(
            clock_skew=timedelta(seconds=settings.clock_skew_s),
            horizon=timedelta(days=settings.counting_grace_days),
        )
        # With a summarizer, packed records carry ingest's summary of their events.
        self.validator = EventValidator(contract, registry, limits, summarizer)

    async def accept(self, submission: Submission) -> int:
        """Authenticate, validate and publish a request's events; returns how many."""
        await self.authenticator.authenticate(submission.authorization, submission.client)
        content_type = submission.content_type.split(";", 1)[0].strip().lower()
        if content_type not in (SINGLE, BATCH):
            raise problems.unsupported_media_type(content_type)
        # Refused at once when ingest holds all it may (a stalled broker), before the body
        # is read when its size is declared; held from when it is read until answered.
        declared = submission.declared_length
        if declared is not None and declared > self.settings.max_body_bytes:
            # Never admissible: a 413, not a 503 its client would retry for ever (review 84).
            raise problems.body_too_large(self.settings.max_body_bytes)
        if declared is not None and not self.in_flight.fits(declared):
            raise problems.overloaded()
        body = await submission.read(self.settings.max_body_bytes, self.settings.body_timeout_s)
        if not self.in_flight.hold(len(body)):
            raise problems.overloaded()
        try:
            return await self._publish_body(submission, content_type, body)
        finally:
            self.in_flight.release(len(body))

    async def _publish_body(self, submission: Submission, content_type: str, body: bytes) -> int:
        """Decode, charge, validate and publish a body read whole."""
        # Again, now the body is in (a lookup in the cache while its entry is fresh): a key
        # revoked, or its scope narrowed, while the body arrived takes effect on this
        # request too, not only on those that start after it (review 64).
        key = await self.authenticator.authenticate(submission.authorization, submission.client)
        events = decode_body(body, content_type, self.settings.max_batch_events)
        self.metrics.batch_size.observe(len(events))
        # Events, not requests: a batch of 500 costs 500. A request refused after it paid
        # gets back what it was not refused for: a 422 or 403 costs only its events in
        # error (the corrected resend of the rest goes through), a 503 nothing.
        wait_s = self.limiter.acquire(key.key_id, time.monotonic(), len(events))
        if wait_s > 0:
            self._count_refused(key, "rate_limited", "rate", len(events))
            raise problems.rate_limited(RateLimiter.retry_after_header(wait_s))
        accepted = datetime.now(UTC)
        records = self._check(key, events, accepted)
        started = time.perf_counter()
        try:
            await self.publisher.publish(records, accepted)
        except PublishError as exc:
            self.limiter.refund(key.key_id, time.monotonic(), len(events))
            self._count_refused(key, "unavailable", "broker", len(records))
            # The cause (hosts, client internals) is logged by the publisher, not shown.
            raise problems.broker_unavailable(
                "The broker did not acknowledge every event in time."
            ) from exc
        self.metrics.produce_seconds.observe(time.perf_counter() - started)
        self._count_accepted(key, records)
        return len(records)

    def _check(self, key: ApiKey, events: list[Any], now: datetime) -> list[Record]:
        """The records of a wholly valid, wholly authorised request, or the Problem."""
        records, errors = self.validator.check(events, now, key.publisher, self.keys.unbound_before)
        denied = scope_violations(key, records, self.registry)
        if errors:
            # The valid events' scope errors too, in the same answer: a publisher that drops
            # only the invalid ones and resends would otherwise meet a 403 next.
            self._count_errors(key, "rejected", errors)
            self._count_errors(key, "out_of_scope", denied)
            both = sorted([*errors, *denied], key=lambda e: e.index)
            self._refund_all_but(key, len(events), both)
            raise problems.invalid_events(both, len(events), len({e.index for e in errors}))
        if denied:
            self._count_errors(key, "out_of_scope", denied)
            self._refund_all_but(key, len(events), denied)
            raise problems.out_of_scope(denied, len(events))
        return records

    def _refund_all_but(self, key: ApiKey, events: int, errors: list[InvalidEvent]) -> None:
        """Give back the tokens of a refused request's events that were not in error."""
        self.limiter.refund(key.key_id, time.monotonic(), events - len({e.index for e in errors}))

    def _count_errors(self, key: ApiKey, outcome: str, errors: list[InvalidEvent]) -> None:
        for error in errors:
            self.metrics.event(outcome, error.code, "").inc()
        self.metrics.key(key.key_id, outcome).inc(len({e.index for e in errors}))

    def _count_refused(self, key: ApiKey, outcome: str, reason: str, count: int) -> None:
        self.metrics.event(outcome, reason, "").inc(count)
        self.metrics.key(key.key_id, outcome).inc(count)

    def _count_accepted(self, key: ApiKey, records: list[Record]) -> None:
        by_type: dict[str, int] = {}
        for record in records:
            by_type[record.event_type] = by_type.get(record.event_type, 0) + 1
        for event_type, count in by_type.items():
            self.metrics.event("accepted", "", event_type).inc(count)
        self.metrics.key(key.key_id, "accepted").inc(len(records))


def create_app(service: IngestService, *, manage_publisher: bool = True) -> ASGIApp:
    """The ASGI app; with ``manage_publisher`` it starts and stops the Kafka producer."""
    post_events = EventsEndpoint(service)

    async def healthz(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(_: Request) -> Response:
        broker, database = await asyncio.gather(service.publisher.ping(), service.keys.ping())
        status = 200 if broker and database else 503
        return JSONResponse({"broker": broker, "database": database}, status_code=status)

    openapi_body = orjson.dumps(build_document(service.settings.schemas_dir))

    async def openapi(_: Request) -> Response:
        return Response(openapi_body, media_type="application/json")

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        if manage_publisher:
            await service.keys.start()
            await service.publisher.start()
        try:
            yield
        finally:
            if manage_publisher:
                await service.publisher.stop()
                await service.keys.stop()

    rest = Starlette(
        routes=[
            Route(EVENTS_PATH, post_events, methods=["POST"]),  # reached only for its 405
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Route("/openapi.json", openapi),
        ],
        lifespan=lifespan,
    )
    return route_events_first(post_events, rest)
