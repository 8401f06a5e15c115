"""Entry point of the alerts service."""

from __future__ import annotations

import uvicorn

from services.alerts.app import AlertsService, create_app
from services.alerts.settings import AlertsSettings
from services.common.httphead import head_limited


async def serve(settings: AlertsSettings) -> None:
    app = create_app(AlertsService(settings))
    config = uvicorn.Config(
        app,
        host=settings.alerts_host,
        port=settings.alerts_port,
        log_level="warning",
        # httptools with a deadline and a size bound on each request head: uvicorn has
        # neither, so one client of the port published for operators could grow this
        # process's memory, or hold a socket for ever, beside the on-call loops (review
        # 87). The event loop stays uvicorn's choice.
        http=head_limited(settings.header_timeout_s, settings.max_header_bytes),
    )
    await uvicorn.Server(config).serve()
