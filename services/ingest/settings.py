"""Settings of the ingest service."""

from services.common.settings import CommonSettings


class IngestSettings(CommonSettings):
    """HTTP listener, request limits and the time bounds on accepted events."""

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

    horizon_days: float = 30.0
    """``EGOV_HORIZON_DAYS``: older events are refused here and enter through ``backfill``."""

    produce_timeout_s: float = 10.0
    """``EGOV_PRODUCE_TIMEOUT_S``: how long a request waits for the broker's acknowledgement."""
