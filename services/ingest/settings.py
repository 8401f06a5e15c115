"""Settings of the ingest service."""

from typing import Self

from pydantic import Field, model_validator

from services.common.settings import CommonSettings


class IngestSettings(CommonSettings):
    """HTTP listener, request limits and the clock skew on accepted events (how old an
    event may be is ``counting_grace_days``, shared with the metrics workers)."""

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
