"""Settings of the metrics service (a Faust worker)."""

from pathlib import Path

from services.common.settings import CommonSettings


class MetricsSettings(CommonSettings):
    """Worker identity, its web port and how records are batched."""

    metrics_app_id: str = "egov-metrics"
    """``EGOV_METRICS_APP_ID``: Faust app id, also the consumer group; workers share it."""

    metrics_web_host: str = "127.0.0.1"
    """``EGOV_METRICS_WEB_HOST``: address of /metrics and the JSON API."""

    metrics_web_port: int = 8081
    """``EGOV_METRICS_WEB_PORT``: port of /metrics; each worker on one host needs its own."""

    metrics_batch_size: int = 2000
    """``EGOV_METRICS_BATCH_SIZE``: records taken from the stream per step, at most."""

    metrics_batch_within_s: float = 0.2
    """``EGOV_METRICS_BATCH_WITHIN_S``: how long a step waits to fill its batch."""

    metrics_data_dir: Path = Path("var/metrics")
    """``EGOV_METRICS_DATA_DIR``: Faust's working directory for this worker."""
