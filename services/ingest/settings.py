"""Settings of the ingest service."""

from services.common.settings import CommonSettings


class IngestSettings(CommonSettings):
    """HTTP listener, request limits and the clock skew on accepted events (how old an
    event may be is ``counting_grace_days``, shared with the metrics workers)."""

    ingest_host: str = "127.0.0.1"
    """``EGOV_INGEST_HOST``: address to listen on (0.0.0.0 in a container)."""

    ingest_port: int = 8080
    """``EGOV_INGEST_PORT``: HTTP port."""

    max_batch_events: int = 1000
    """``EGOV_MAX_BATCH_EVENTS``: events in one batch request, at most."""

    max_body_bytes: int = 4 * 1024 * 1024
    """``EGOV_MAX_BODY_BYTES``: request body size, at most."""

    clock_skew_s: float = 300.0
    """``EGOV_CLOCK_SKEW_S``: how far ahead an event time may be (publisher clocks drift)."""

    produce_timeout_s: float = 10.0
    """``EGOV_PRODUCE_TIMEOUT_S``: how long a request waits for the broker's acknowledgement."""

    rate_limit_per_s: float = 50.0
    """``EGOV_RATE_LIMIT_PER_S``: sustained requests per second per API key (token bucket)."""

    rate_limit_burst: float = 100.0
    """``EGOV_RATE_LIMIT_BURST``: requests a key may send at once above its sustained rate."""

    key_cache_ttl_s: float = 5.0
    """``EGOV_KEY_CACHE_TTL_S``: how long a key looked up in PostgreSQL is trusted; a
    revocation takes effect on every ingest process within this delay."""

    key_cache_max_stale_s: float = 300.0
    """``EGOV_KEY_CACHE_MAX_STALE_S``: while PostgreSQL does not answer, a key seen this
    recently is still honoured (revocations then wait for the database to return)."""
