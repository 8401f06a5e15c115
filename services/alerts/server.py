"""Entry point of the alerts service."""

from __future__ import annotations

import uvicorn

from services.alerts.app import AlertsService, create_app
from services.alerts.settings import AlertsSettings


async def serve(settings: AlertsSettings) -> None:
    app = create_app(AlertsService(settings))
    config = uvicorn.Config(
        app, host=settings.alerts_host, port=settings.alerts_port, log_level="warning"
    )
    await uvicorn.Server(config).serve()
