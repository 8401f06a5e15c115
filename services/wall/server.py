"""Composition root of the wall service: real HTTP sources wired into the app; uvicorn."""

from __future__ import annotations

import uvicorn
from starlette.applications import Starlette

from services.common.calendar import load_calendar
from services.common.contract import kpi_families
from services.common.httphead import head_limited
from services.common.scorecard import Scorecard
from services.common.units import UnitRegistry
from services.wall.app import create_app
from services.wall.directory import TodayUnits
from services.wall.downloads import Downloads
from services.wall.hub import Hub
from services.wall.limits import Limits
from services.wall.overview import Silence
from services.wall.settings import WallSettings
from services.wall.sources import Sources
from services.wall.views import WallViews

SHUTDOWN_GRACE_S = 3
"""How long a stop waits for open pages' streams (they never end by themselves)."""


def build_app(settings: WallSettings) -> Starlette:
    registry = UnitRegistry.from_dir(settings.units_dir)
    sources = Sources(
        settings.metrics_sources,
        settings.alerts_url,
        settings.wall_source_timeout_s,
        registry=registry,
    )
    hub = Hub(sources, settings.wall_poll_interval_s)
    always = settings.wall_silent_calendar == "always"
    calendar = load_calendar(settings.wall_holidays_file, always=always)
    silence = Silence(
        settings.wall_silence_minutes,
        calendar,
        kpi_families(),
        weekly_minutes=settings.wall_silence_weekly_minutes,
    )
    limits = Limits.of(settings)  # one set per process: the pages and the files share it
    downloads = Downloads(
        hub, sources, Scorecard.load(), settings.wall_lang, silence=silence, limits=limits
    )
    views = WallViews(settings, hub, calendar, silence, limits, TodayUnits.of(registry))
    return create_app(views, downloads)


async def serve(settings: WallSettings) -> None:
    config = uvicorn.Config(
        build_app(settings),
        host=settings.wall_host,
        port=settings.wall_port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # httptools with a deadline and a size bound on each request head: uvicorn has
        # neither, so one client's endless or trickled head grew the wall's memory or
        # held its socket for ever (review 87). The deadline stops at the end of a head:
        # an event stream, one long answer, is never cut by it.
        http=head_limited(settings.header_timeout_s, settings.max_header_bytes),
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )
    await uvicorn.Server(config).serve()
