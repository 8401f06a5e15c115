"""Settings of the ingest service."""

from typing import Self

from pydantic import Field, model_validator

from services.common.settings import CommonSettings, HeadBounds


class IngestSettings(CommonSettings, HeadBounds):
    """HTTP listener, request limits and the clock skew on accepted events (how old an
    event may be is ``counting_grace_days``, shared with the metrics workers). The
    request-head bounds (``EGOV_HEADER_TIMEOUT_S``, ``EGOV_MAX_HEADER_BYTES``) come from
    :class:`HeadBounds`, shared with the alerts API and the wall."""

    ingest_host: str = "127.0.0.1"
    """``EGOV_INGEST_HOST``: address to listen on (0.0.0.0 in a container)."""

    ingest_port: int = Field(default=8080, ge=1, le=65535)
    """``EGOV_INGEST_PORT``: HTTP port (1-65535)."""

    max_batch_events: int = Field(default=1000, ge=1)
    """``EGOV_MAX_BATCH_EVENTS``: events in one batch request, at most (at least 1: 0 made
    every batch a 413)."""

    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    """``EGOV_MAX_BODY_BYTES``: request body size, at most."""

    body_timeout_s: float = Field(default=30.0, gt=0)
    """``EGOV_BODY_TIMEOUT_S``: how long ingest waits for the next part of a request's
    body (408 after that): a stalled body does not hold its connection, a slow but steady
    one is read whatever it takes. A reverse proxy that buffers bodies makes this moot."""

    max_inflight_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    """``EGOV_MAX_INFLIGHT_BYTES``: request bodies ingest holds at once, read and not yet
    answered (decoded, validated, awaiting the broker), at most; at least
    ``EGOV_MAX_BODY_BYTES``. A request that would exceed it is answered 503
    ``broker-unavailable`` with Retry-After at once, before its body is read when it
    declares a Content-Length. A held event costs ~13 times its body in memory (about
    5 KB for a 400-byte event), so the default, 8 MiB, bounds what a stalled broker makes
    ingest hold to ~100 MB, far above the ~1 MiB in flight at full speed."""

    shutdown_grace_s: int = Field(default=15, ge=1, le=3600)
    """``EGOV_SHUTDOWN_GRACE_S``: after SIGTERM, how long requests under way may still
    take (uvicorn's graceful shutdown timeout); those still unanswered then get 503
    ``shutting-down`` with Retry-After. Above ``EGOV_PRODUCE_TIMEOUT_S``, so a request
    that reached the broker before the signal is answered normally, and below an
    orchestrator's grace (30 s by default) before it SIGKILLs."""

    produce_timeout_s: float = Field(default=10.0, gt=0, le=3600, allow_inf_nan=False)
    """``EGOV_PRODUCE_TIMEOUT_S``: how long a request waits for the broker's acknowledgement
    (more than 0: 0 or less timed every request out, a 503 each)."""

    rate_limit_per_s: float = 2000.0
    """``EGOV_RATE_LIMIT_PER_S``: sustained events per second per API key (token bucket;
    a batch of 500 costs 500; a 422 or 403 only its events in error, a 503 nothing)."""

    rate_limit_burst: float = 10000.0
    """``EGOV_RATE_LIMIT_BURST``: events a key may send at once above its sustained rate;
    at least ``EGOV_MAX_BATCH_EVENTS``, or a full batch could never pass."""

    auth_failure_per_s: float = 1.0
    """``EGOV_AUTH_FAILURE_PER_S``: per client address, sustained requests whose key is not
    already known (each costs a database lookup) or fails (401); more get 429 with no lookup."""

    auth_failure_burst: float = 20.0
    """``EGOV_AUTH_FAILURE_BURST``: such requests an address may send at once."""

    auth_failure_addresses: int = 65_536
    """``EGOV_AUTH_FAILURE_ADDRESSES``: client addresses whose buckets are kept (least
    recently used forgotten first), so a scan from many addresses has bounded memory."""

    key_cache_ttl_s: float = 5.0
    """``EGOV_KEY_CACHE_TTL_S``: how long a key looked up in PostgreSQL is trusted; a
    revocation takes effect on every ingest process within this delay."""

    key_cache_max_stale_s: float = 300.0
    """``EGOV_KEY_CACHE_MAX_STALE_S``: while PostgreSQL does not answer, a key seen this
    recently is still honoured (revocations then wait for the database to return)."""

    @model_validator(mode="after")
    def _batch_fits_burst(self) -> Self:
        if self.rate_limit_burst < self.max_batch_events:
            raise ValueError(
                f"EGOV_RATE_LIMIT_BURST ({self.rate_limit_burst:g}) is below "
                f"EGOV_MAX_BATCH_EVENTS ({self.max_batch_events}): a full batch could never pass"
            )
        return self

    @model_validator(mode="after")
    def _body_fits_in_flight(self) -> Self:
        if self.max_inflight_bytes < self.max_body_bytes:
            raise ValueError(
                f"EGOV_MAX_INFLIGHT_BYTES ({self.max_inflight_bytes}) is below "
                f"EGOV_MAX_BODY_BYTES ({self.max_body_bytes}): a full body could never pass"
            )
        return self

    @model_validator(mode="after")
    def _grace_outlasts_produce(self) -> Self:
        if self.shutdown_grace_s <= self.produce_timeout_s:
            raise ValueError(
                f"EGOV_SHUTDOWN_GRACE_S ({self.shutdown_grace_s}) is not above "
                f"EGOV_PRODUCE_TIMEOUT_S ({self.produce_timeout_s:g}): a stop would cut "
                "requests the broker is still acknowledging"
            )
        return self
