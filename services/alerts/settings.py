"""Settings of the alerts service."""

from services.common.settings import CommonSettings


class AlertsSettings(CommonSettings):
    """HTTP listener and where notifications go."""

    alerts_host: str = "127.0.0.1"
    """``EGOV_ALERTS_HOST``: address to listen on."""

    alerts_port: int = 8082
    """``EGOV_ALERTS_PORT``: HTTP port."""

    alertmanager_url: str = "http://127.0.0.1:9093"
    """``EGOV_ALERTMANAGER_URL``: base URL of Prometheus Alertmanager (v2 API)."""
