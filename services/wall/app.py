"""The wall's ASGI app: its routes, and the hub closed when the process stops."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from services.wall.downloads import Downloads
from services.wall.views import WallViews


def create_app(views: WallViews, downloads: Downloads) -> Starlette:
    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            # Ends every open stream and stops reading the sources.
            await views.hub.close()

    return Starlette(routes=[*views.routes(), *downloads.routes()], lifespan=lifespan)
