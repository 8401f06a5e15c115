"""``egov-pulse grafana generate|push``: write the dashboards, or upsert them into Grafana."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import SecretStr


def _generate(args: argparse.Namespace) -> int:
    from services.dashboards.render import render_all

    directory: Path = args.output
    directory.mkdir(parents=True, exist_ok=True)
    stale = []
    for name, text in render_all().items():
        path = directory / name
        if args.check:
            if not path.exists() or path.read_text("utf-8") != text:
                stale.append(str(path))
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print(
            "out of date (run `egov-pulse grafana generate`): " + ", ".join(stale), file=sys.stderr
        )
        return 1
    return 0


def _push(args: argparse.Namespace) -> int:
    from services.dashboards.push import PushError, push_all
    from services.dashboards.settings import GrafanaSettings

    settings = GrafanaSettings()
    overrides: dict[str, object] = {}
    if args.url:
        overrides["grafana_url"] = args.url
    if args.token:
        overrides["grafana_token"] = SecretStr(args.token)
    if args.folder:
        overrides["grafana_folder_uid"] = args.folder
    settings = settings.model_copy(update=overrides)
    models = {
        path.name: json.loads(path.read_text("utf-8"))
        for path in sorted(args.dashboards.glob("*.json"))
    }
    if not models:
        print(
            f"no dashboards in {args.dashboards}: run `egov-pulse grafana generate`",
            file=sys.stderr,
        )
        return 1
    try:
        pushed = push_all(settings, models)
    except PushError as error:
        print(f"grafana push failed: {error}", file=sys.stderr)
        return 1
    for item in pushed:
        print(f"{item.uid} version {item.version} {item.url}")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from services.dashboards.render import DASHBOARDS_DIR

    grafana = sub.add_parser("grafana", help="generate or push the Grafana dashboards")
    actions = grafana.add_subparsers(dest="grafana_command", required=True)

    generate = actions.add_parser("generate", help="write deploy/grafana/dashboards/*.json")
    generate.add_argument("--output", type=Path, default=DASHBOARDS_DIR)
    generate.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed file is out of date",
    )
    generate.set_defaults(handler=_generate)

    push = actions.add_parser("push", help="upsert the dashboards into a running Grafana")
    push.add_argument("--url", help="Grafana base URL (default: GRAFANA_URL)")
    push.add_argument(
        "--token",
        help="service-account token (default: GRAFANA_TOKEN; "
        "prefer the variable: arguments show in the process list)",
    )
    push.add_argument("--folder", help="folder uid (default: EGOV_GRAFANA_FOLDER_UID)")
    push.add_argument(
        "--dashboards",
        type=Path,
        default=DASHBOARDS_DIR,
        help="directory of generated dashboards to push",
    )
    push.set_defaults(handler=_push)
