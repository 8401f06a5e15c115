"""The operations-center wall page, served by a metrics worker at /wall.

It reads /v1/kpis and /v1/activity of every worker in ``EGOV_METRICS_URLS`` and the
open alerts of ``EGOV_ALERTS_URL``, and pushes changes to the browser over
server-sent events. Wire it in with :func:`register_wall`; see docs/wall.md.
"""

from __future__ import annotations

from typing import Any, cast

import faust

from services.common.calendar import load_calendar
from services.metrics.settings import MetricsSettings
from services.metrics.wall.hub import Hub
from services.metrics.wall.settings import WallSettings
from services.metrics.wall.sources import Sources
from services.metrics.wall.views import register

__all__ = ["WallSettings", "register_wall"]


def register_wall(app: faust.App, settings: MetricsSettings) -> None:
    """Serve the wall on ``app``'s web server.

    ``settings`` may be plain :class:`MetricsSettings`: the wall's own settings are then
    read from the environment once, here.
    """
    wall = WallSettings.extending(settings)
    sources = Sources(wall.metrics_sources, wall.alerts_url, wall.wall_source_timeout_s)
    hub = Hub(sources, wall.wall_poll_interval_s)
    calendar = load_calendar(wall.wall_holidays_file, always=wall.wall_silent_calendar == "always")
    register(app, wall, hub, calendar)

    async def close_hub(sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        await hub.close()

    # faust's signal stubs reject every coroutine receiver; the call itself is documented.
    cast(Any, app.on_before_shutdown).connect(close_hub)
