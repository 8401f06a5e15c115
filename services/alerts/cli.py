"""Command-line subcommands of the alerts service: the service, operators, targets."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def _serve(_: argparse.Namespace) -> int:
    from services.alerts.server import serve
    from services.alerts.settings import AlertsSettings

    asyncio.run(serve(AlertsSettings()))
    return 0


def _with_db(work: Callable[..., Awaitable[T]]) -> T:
    async def run() -> T:
        import asyncpg

        from services.alerts.settings import AlertsSettings
        from services.common.db import migrate

        conn = await asyncpg.connect(AlertsSettings().database_url.get_secret_value(), timeout=10)
        try:
            await migrate(conn)
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _operators(args: argparse.Namespace) -> int:
    from services.alerts import operators
    from services.alerts.store import StoreError

    try:
        if args.action == "create":
            token = _with_db(lambda c: operators.create(c, args.name))
            print(f"operator {args.name} created; token (shown once):\n{token}")
        elif args.action == "revoke":
            _with_db(lambda c: operators.revoke(c, args.name))
            print(f"operator {args.name} revoked")
        else:
            for name, created in _with_db(operators.list_names):
                print(f"{name}\t{created}")
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _targets(args: argparse.Namespace) -> int:
    from services.alerts import targets
    from services.alerts.store import StoreError

    who = getattr(args, "by", None) or getpass.getuser()
    try:
        if args.action == "set":
            _with_db(lambda c: targets.set_override(c, args.unit, args.kpi, args.target, who,
                                                    args.reason))  # fmt: skip
        elif args.action == "unset":
            _with_db(lambda c: targets.unset_override(c, args.unit, args.kpi, who, args.reason))
        for o in _with_db(lambda c: targets.list_overrides(c, getattr(args, "unit", None))):
            print(f"{o.unit}\t{o.kpi or '*'}\t{o.target:g}\t{o.changed_by}\t{o.changed_at}\t"
                  f"{o.reason}")  # fmt: skip
    except (StoreError, targets.InvalidTarget) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("alerts", help="run the alerts service").set_defaults(handler=_serve)

    ops = sub.add_parser("operators", help="operator tokens for the alerts API")
    ops_sub = ops.add_subparsers(dest="action", required=True)
    for action in ("create", "revoke"):
        p = ops_sub.add_parser(action)
        p.add_argument("name")
    ops_sub.add_parser("list")
    ops.set_defaults(handler=_operators)

    tgt = sub.add_parser("targets", help="per-unit KPI target overrides")
    tgt_sub = tgt.add_subparsers(dest="action", required=True)
    listing = tgt_sub.add_parser("list")
    listing.add_argument("--unit")
    setting = tgt_sub.add_parser("set")
    setting.add_argument("unit")
    setting.add_argument("target", type=float, help="ratio 0..1 (0.9 = 90%%)")
    unsetting = tgt_sub.add_parser("unset")
    unsetting.add_argument("unit")
    for p in (setting, unsetting):
        p.add_argument("--kpi", help="one KPI id; omitted: every KPI of the unit")
        p.add_argument("--reason", required=True, help="why (kept in the history)")
        p.add_argument("--by", help="who (default: the login name)")
    tgt.set_defaults(handler=_targets)
