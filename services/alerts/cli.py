"""Command-line subcommands of the alerts service: the service, operators, targets.

Refusals and PostgreSQL not answering are one line on stderr (exit 1, and 3 for the
database: services/common/pgconnect.py), never a traceback. ``targets list`` prints one
tab-separated row per override, its fields escaped (services/common/textrows.py).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from typing import TypeVar

T = TypeVar("T")


def _serve(_: argparse.Namespace) -> int:
    from services.alerts.server import serve
    from services.alerts.settings import AlertsSettings

    asyncio.run(serve(AlertsSettings()))
    return 0


def _with_db(work: Callable[..., Awaitable[T]]) -> T:
    async def run() -> T:
        from services.alerts.settings import AlertsSettings
        from services.common.db import migrate
        from services.common.pgconnect import connect

        # DatabaseDown, raised before anything is sent, is caught by the command's handler.
        conn = await connect(AlertsSettings().database_url.get_secret_value())
        try:
            await migrate(conn)
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(run())


def _operators(args: argparse.Namespace) -> int:
    from services.alerts import operators
    from services.alerts.api import KnownIds
    from services.alerts.store import StoreError
    from services.common.pgconnect import DatabaseDown, say_down
    from services.common.textrows import escape_field, tsv_row

    try:
        if args.action == "create":
            provinces = _provinces(args.provinces)
            known = KnownIds.load().units
            real = frozenset(p for p in provinces if (u := known.get(p)) and u.level == "province")
            chosen = operators.check_scope(provinces, args.national, real)
            token = _with_db(lambda c: operators.create(c, args.name, chosen, args.national))
            scope = "national" if args.national else "provinces " + ", ".join(chosen)
            name = escape_field(args.name)
            print(f"operator {name} created ({scope}); token (shown once):\n{token}")
        elif args.action == "revoke":
            _with_db(lambda c: operators.revoke(c, args.name))
            print(f"operator {escape_field(args.name)} revoked")
        else:
            for listed in _with_db(operators.list_live):
                print(tsv_row(listed.operator.name, listed.operator.scope, listed.created_at))
    except (StoreError, operators.InvalidScope) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DatabaseDown as down:
        return say_down(down)
    return 0


def _provinces(raw: str | None) -> list[str]:
    return [p.strip() for p in (raw or "").split(",") if p.strip()]


def _targets(args: argparse.Namespace) -> int:
    """Overrides from the command line (the operator's own machine: no scope check, as
    for ``operators create``; the API checks scopes). Ids are checked as the API does."""
    from services.alerts import targets
    from services.alerts.api import KnownIds
    from services.alerts.http import ApiError, ratio_bp
    from services.alerts.store import StoreError
    from services.common.pgconnect import EXIT_DOWN, DatabaseDown, say_down
    from services.common.targets import InvalidScope
    from services.common.textrows import tsv_row

    who = getattr(args, "by", None) or getpass.getuser()
    stored = False
    try:
        if args.action in ("set", "unset"):
            known = KnownIds.load()
            fields = {"unit": args.unit, "province": args.province, "level": args.level}
            scope = known.scope(fields, new=args.action == "set")
            change = targets.Change(scope, known.kpi(args.kpi), who, args.reason, args.valid_from)
            if args.action == "set":
                bp = ratio_bp(args.target)
                _with_db(lambda c: targets.set_override(c, change, bp, args.valid_until))
            else:
                _with_db(lambda c: targets.unset_override(c, change))
            stored = True
        for o in _with_db(targets.list_overrides):
            since = o.valid_from.isoformat() if o.valid_from else "-"
            until = o.valid_until.isoformat() if o.valid_until else "-"
            changed = o.changed_at.isoformat() if o.changed_at else ""
            print(tsv_row(str(o.scope), o.kpi, f"{o.target_bp} bp", f"{since}..{until}",
                          o.changed_by, changed, o.reason))  # fmt: skip
    except (StoreError, targets.InvalidTarget, ApiError, InvalidScope, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except DatabaseDown as down:
        if not stored:
            return say_down(down)
        # The change is stored; only the listing after it met PostgreSQL gone.
        print(f"{args.action} done; the overrides could not be listed: {down}", file=sys.stderr)
        return EXIT_DOWN
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("alerts", help="run the alerts service").set_defaults(handler=_serve)

    ops = sub.add_parser("operators", help="operator tokens for the alerts API")
    ops_sub = ops.add_subparsers(dest="action", required=True)
    creating = ops_sub.add_parser("create")
    creating.add_argument("name")
    where = creating.add_mutually_exclusive_group(required=True)
    where.add_argument("--provinces", help="province codes it may act on: 19,38")
    where.add_argument("--national", action="store_true", help="every province (the ministry)")
    ops_sub.add_parser("revoke").add_argument("name")
    ops_sub.add_parser("list")
    ops.set_defaults(handler=_operators)

    tgt = sub.add_parser("targets", help="KPI target overrides (docs/targets.md)")
    tgt_sub = tgt.add_subparsers(dest="action", required=True)
    tgt_sub.add_parser("list")
    setting = tgt_sub.add_parser("set")
    setting.add_argument("target", type=float, help="ratio 0..1 (0.975 = 97.5%%)")
    setting.add_argument("--valid-until", type=date.fromisoformat, help="last day, YYYY-MM-DD")
    unsetting = tgt_sub.add_parser("unset")
    for p in (setting, unsetting):
        p.add_argument("--kpi", required=True, help="the KPI id: an override names its KPI")
        p.add_argument("--unit", help="a unit code (today's units)")
        p.add_argument("--province", help="a province code: every unit of it, or of --level")
        p.add_argument("--level", help="with --province: province, commune or department")
        p.add_argument("--valid-from", type=date.fromisoformat, help="first day, YYYY-MM-DD")
        p.add_argument("--reason", required=True, help="why (kept in the history)")
        p.add_argument("--by", help="who (default: the login name)")
    tgt.set_defaults(handler=_targets)
