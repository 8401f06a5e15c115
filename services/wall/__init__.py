"""The operations-center wall: a service of its own (``egov-pulse wall``, port 8083).

It reads /v1/kpis and /v1/activity of every worker in ``EGOV_METRICS_URLS`` and the
open alerts of ``EGOV_ALERTS_URL``, and pushes changes to the browser over
server-sent events; it counts nothing. :mod:`services.wall.server` wires it; see
docs/wall.md.
"""

from services.wall.settings import WallSettings

__all__ = ["WallSettings"]
