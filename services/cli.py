"""The single command-line entry point: ``egov-pulse <service-or-tool> ...``.

Each package registers its own subcommands, so a service's commands live beside it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from pydantic import ValidationError

from services.alerts import cli as alerts_cli
from services.common import cli as common_cli
from services.common.settings import KafkaTlsError, SigningKeyError
from services.common.variables import RetiredVariable, refusal_lines
from services.dashboards import cli as dashboards_cli
from services.deadletters import cli as deadletters_cli
from services.ingest import cli as ingest_cli
from services.metrics import cli as metrics_cli
from services.simulator import cli as simulator_cli
from services.wall import cli as wall_cli

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="egov-pulse", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    modules = (ingest_cli, metrics_cli, alerts_cli, wall_cli, common_cli, dashboards_cli)
    for module in (*modules, deadletters_cli):
        module.register(sub)
    simulate = sub.add_parser("simulate", help="publish realistic simulated traffic")
    simulator_cli.add_arguments(simulate)
    simulate.set_defaults(handler=simulator_cli.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # httpx logs every request at INFO: the alerts service's reads of each worker every
    # cycle, the wall's, the ready polls. They buried the lines on-call reads (a failed
    # push, a transition) under one line per request; its warnings still show.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except ValidationError as refused:
        lines = refusal_lines(refused, os.environ)
        if lines is None:
            raise  # not a settings class's: a bug, shown in full
        return _refuse(args.command, lines)
    except (SigningKeyError, KafkaTlsError, RetiredVariable) as refused:
        return _refuse(args.command, [str(refused)])


def _refuse(command: str, lines: list[str]) -> int:
    """A refused setting: one line per error naming its variable, and exit status 2 (as
    argparse's usage errors), never a traceback an operator must read for the name."""
    for line in lines:
        print(f"egov-pulse {command}: {line}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
