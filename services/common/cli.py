"""Command-line subcommands for the whole system: migrate, units, up."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
from pathlib import Path

from pydantic import ValidationError


def _migrate(_: argparse.Namespace) -> int:
    from services.common.bootstrap import prepare_database
    from services.common.settings import CommonSettings

    loaded = asyncio.run(prepare_database(CommonSettings()))
    print(f"database ready; {loaded} unit rows loaded")
    return 0


def _up(args: argparse.Namespace) -> int:
    from services.devstack import StackOptions, run_stack

    options = StackOptions(
        simulator=args.simulator == "on",
        broker=args.broker,
        broker_port=args.broker_port,
        postgres_port=args.postgres_port,
        ports={
            "ingest": args.ingest_port,
            "metrics": args.metrics_port,
            "alerts": args.alerts_port,
            "wall": args.wall_port,
        },
        monitoring=args.monitoring == "on",
    )
    given = {
        "prometheus": args.prometheus_port,
        "alertmanager": args.alertmanager_port,
        "notifications": args.notifications_port,
    }
    ports = options.monitoring_ports | {k: v for k, v in given.items() if v is not None}
    options = dataclasses.replace(options, monitoring_ports=ports)
    if options.simulator:
        try:
            rate = _simulator_rate(args.simulator_rate)
        except ValidationError as error:
            print(f"up: the simulator's settings are refused: {error}", file=sys.stderr)
            return 2
        options = dataclasses.replace(options, simulator_rate=rate)
    return asyncio.run(run_stack(options))


def _simulator_rate(flag: float | None) -> float:
    """The simulator's rate: ``--simulator-rate`` when given, else the simulator's own
    setting (``EGOV_SIMULATOR_RATE``, else its default), read where the simulator reads it."""
    from services.simulator.settings import SimulatorSettings

    return SimulatorSettings().rate if flag is None else SimulatorSettings(rate=flag).rate


def _units(args: argparse.Namespace) -> int:
    from services.common.paths import UNITS_DIR
    from services.common.unitdata import build

    print(build(Path(args.source), UNITS_DIR))
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser(
        "migrate", help="create the database schema and load the unit registry"
    ).set_defaults(handler=_migrate)

    up = sub.add_parser("up", help="run the whole system (embedded broker by default)")
    up.add_argument("--simulator", choices=["on", "off"], default="on")
    up.add_argument(
        "--simulator-rate",
        type=float,
        help="events per second, averaged over a week (default: EGOV_SIMULATOR_RATE, else 0.25)",
    )
    up.add_argument(
        "--broker",
        choices=["tansu", "kafka"],
        default="tansu",
        help="tansu: embedded, memory-only; kafka: Apache Kafka with its log in var/kafka",
    )
    up.add_argument("--broker-port", type=int, default=9092)
    up.add_argument(
        "--postgres-port",
        type=int,
        default=5433,
        help="port of the PostgreSQL server started in var/postgres (DATABASE_URL unset)",
    )
    up.add_argument("--ingest-port", type=int, default=8080)
    up.add_argument("--metrics-port", type=int, default=8081)
    up.add_argument("--alerts-port", type=int, default=8082)
    up.add_argument("--wall-port", type=int, default=8083)
    up.add_argument(
        "--monitoring",
        choices=["on", "off"],
        default="on",
        help="Prometheus and Alertmanager with production's rules and routes (default: on)",
    )
    # Unset: StackOptions' (services/devstack.py), beside the Debian services' ports.
    up.add_argument("--prometheus-port", type=int, help="default 9190")
    up.add_argument("--alertmanager-port", type=int, help="default 9193")
    up.add_argument(
        "--notifications-port",
        type=int,
        help="the sink that stands for on-call's webhooks (default 9197)",
    )
    up.set_defaults(handler=_up)

    units = sub.add_parser("units", help="rebuild data/units from the official unit lists")
    units.add_argument("source", help="folder with the vn-units JSON files")
    units.set_defaults(handler=_units)
