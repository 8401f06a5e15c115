"""Command-line subcommands of the metrics service."""

from __future__ import annotations

import argparse


def _worker(args: argparse.Namespace) -> int:
    from services.metrics.heap import collect_young_every, fix_mmap_threshold
    from services.metrics.settings import MetricsSettings
    from services.metrics.worker import run_worker

    settings = MetricsSettings()
    # Before Faust starts its consumer thread and the first fetch is freed.
    fix_mmap_threshold(settings.metrics_malloc_mmap_threshold)
    collect_young_every(settings.metrics_gc_gen0_threshold)
    run_worker(settings, loglevel=args.loglevel)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    metrics = sub.add_parser("metrics", help="run one metrics worker (Faust)")
    metrics.add_argument("--loglevel", default="info", choices=["crit", "error", "warn", "info"])
    metrics.set_defaults(handler=_worker)
