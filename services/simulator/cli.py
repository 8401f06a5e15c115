"""``egov-pulse simulate``: flags, signal handling and the one-line summary."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from services.simulator.runner import run
from services.simulator.settings import SimulatorSettings
from services.simulator.stats import SimulatorStats


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags override the ``EGOV_SIMULATOR_*`` environment; unset flags leave it alone."""
    parser.add_argument("--ingest-url", help="ingest base URL (default http://127.0.0.1:8080)")
    parser.add_argument(
        "--rate", type=float, help="events per second, weekly average (default 0.25)"
    )
    parser.add_argument("--provinces", help="comma-separated province codes (default 19,38,68)")
    parser.add_argument(
        "--api-key-file",
        type=Path,
        help="file holding the ingest API key (else EGOV_SIMULATOR_API_KEY, else none)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--seed", type=int, help="seed of the plan (default 2025)")
    parser.add_argument(
        "--history",
        type=float,
        dest="history_s",
        help="first publish this many seconds of past traffic (default: the past day, "
        "at most about 30,000 events)",
    )


def settings_from_args(args: argparse.Namespace) -> SimulatorSettings:
    overrides: dict[str, Any] = {}
    for flag in ("ingest_url", "rate", "provinces", "seed", "history_s"):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[flag] = value
    key_file: Path | None = getattr(args, "api_key_file", None)
    if key_file is not None:
        overrides["api_key"] = SecretStr(key_file.read_text(encoding="utf-8").strip())
    return SimulatorSettings(**overrides)


def main(args: argparse.Namespace) -> int:
    """Simulate until Ctrl-C, SIGTERM or ``--duration``; 1 if events were refused or lost."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    settings = settings_from_args(args)
    stats = asyncio.run(_run(settings, getattr(args, "duration", None)))
    print(stats.summary())
    return 1 if stats.refused or stats.failed else 0


async def _run(settings: SimulatorSettings, duration: float | None) -> SimulatorStats:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    timer = loop.call_later(duration, stop.set) if duration is not None else None
    try:
        return await run(settings, stop)
    finally:
        if timer is not None:
            timer.cancel()
        for signum in signals:
            loop.remove_signal_handler(signum)
