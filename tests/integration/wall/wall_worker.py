"""A metrics worker with the wall registered, for the wall's integration tests.

Until services/metrics/worker.py calls ``register_wall`` itself, this wrapper adds it;
once it does, the wrapper only runs the worker.
"""

from __future__ import annotations

import faust

from services.metrics.compat import install_leave_group_shim
from services.metrics.wall import WallSettings, register_wall
from services.metrics.worker import build_app


def main() -> None:
    install_leave_group_shim()
    settings = WallSettings()
    settings.metrics_data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    if "/wall" not in app.web.views:
        register_wall(app, settings)
    faust.Worker(app, loglevel="info").execute_from_commandline()


if __name__ == "__main__":
    main()
