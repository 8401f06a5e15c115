"""``python -m bench --mode quick|full [--only NAME]``: run the benchmarks, write the report.

Each module runs in a process of its own with a time budget, so a crash, a hang or a
leaked event loop in one is reported and the others still run. The report goes to
``bench/results/<UTC timestamp>/report.md`` (plots, rows.json beside it) and
``bench/results/latest.md``; a complete run (no ``--only``) also refreshes the figures
between the ``bench`` markers of README.md.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bench import machine, report
from bench.common import KAFKA_SUFFIX, REPO, RESULTS, Row, broker_env, check_mode
from services.common.broker import free_port
from services.common.localpg import LocalPostgres

# Run order: references first so the others find them measured; soak last (full only).
MODULES: Final = ("references", "ingest", "metrics", "fetchwait", "alerts", "peers", "soak")
# Run again on Apache Kafka, after the embedded tansu (rows marked KAFKA_SUFFIX): the
# broker's own ceilings, ingest, replay, one event per message, live latency, failover,
# and the peers (Quix Streams with its defaults there: bench/peers/quix_app.py).
ON_KAFKA: Final = ("references", "ingest", "metrics", "fetchwait", "peers")
FULL_ONLY: Final = frozenset({"soak"})
# Kill limits per module. Quick mode's whole run must stay under 3 minutes: each module
# is expected to take well under a minute; the limit only stops a hang.
BUDGET_S: Final = {"quick": 120.0, "full": 900.0}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--only", action="append", choices=MODULES, help="run just this module")
    parser.add_argument(
        "--soak-minutes", type=float, default=60.0, help="soak length (full mode); default 60"
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where reports go")
    parser.add_argument("--no-readme", action="store_true", help="leave README.md alone")
    parser.add_argument(
        "--tansu-only", action="store_true", help="skip the second pass on Apache Kafka"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def selected(args: argparse.Namespace) -> list[str]:
    if args.only:
        return [name for name in MODULES if name in args.only]
    return [name for name in MODULES if args.mode == "full" or name not in FULL_ONLY]


def module_exists(name: str) -> bool:
    return importlib.util.find_spec(f"bench.{name}") is not None


def budget(name: str, args: argparse.Namespace) -> float:
    if name == "soak":
        return float(args.soak_minutes) * 60 + 1200  # + the warm-up (bench/soak.py)
    return BUDGET_S[args.mode]


def stop_cleanly_on_sigterm() -> None:
    """Make SIGTERM raise SystemExit in the main thread, so that a module stopped for its
    budget leaves through its ``with`` blocks: the brokers and PostgreSQL servers it
    started run in sessions of their own (a Ctrl-C meant for it must not stop them
    first) and the runner's signal to its process group does not reach them. Python's
    default for SIGTERM is to die at once, leaving them running."""

    def leave(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, leave)


def run_child(name: str, mode: str, out: Path) -> int:
    """In the child process: run one module and write its rows (or its traceback)."""
    check_mode(mode)
    stop_cleanly_on_sigterm()
    try:
        module = importlib.import_module(f"bench.{name}")
        rows = module.run(mode)
        out.write_text(json.dumps({"rows": rows}, default=str))
        return 0
    except BaseException:
        out.write_text(json.dumps({"error": traceback.format_exc()}))
        return 1


def run_module(
    name: str, args: argparse.Namespace, folder: Path, broker: str = "tansu"
) -> tuple[report.Outcome, list[Row]]:
    """Run one module in its own process group, within its budget, on ``broker``."""
    if not module_exists(name):
        return report.Outcome(name, "missing", 0.0, f"bench/{name}.py does not exist yet"), []
    tag = name if broker == "tansu" else f"{name}-{broker}"
    out = folder / f"{tag}.rows.json"
    log = folder / f"{tag}.log"
    env = {
        **os.environ,
        **broker_env(broker),
        "BENCH_RUN_DIR": str(folder),
        "BENCH_SOAK_MINUTES": str(args.soak_minutes),
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "bench", "--child", name, "--mode", args.mode, "--out", str(out)]
    started = time.monotonic()
    print(f"[bench] {tag} ...", flush=True)
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            proc.wait(timeout=budget(name, args))
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            took = time.monotonic() - started
            tail = log.read_text(errors="replace")[-2000:]
            return report.Outcome(
                name, "timed out", took, f"over {budget(name, args):.0f} s\n{tail}"
            ), []
    took = time.monotonic() - started
    try:
        result = json.loads(out.read_text())
    except (OSError, ValueError):
        tail = log.read_text(errors="replace")[-3000:]
        return report.Outcome(name, "failed", took, f"exit {proc.returncode}, no rows\n{tail}"), []
    if "error" in result:
        return report.Outcome(name, "failed", took, result["error"]), []
    rows = result["rows"]
    print(f"[bench] {name}: {len(rows)} figures in {took:.1f} s", flush=True)
    return report.Outcome(name, "ok", took), rows


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a module and whatever it started (brokers, services): its whole session."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


@contextmanager
def run_database() -> Iterator[None]:
    """A PostgreSQL server for the whole run, shared by every module (each makes its own
    databases on it), unless ``EGOV_BENCH_ADMIN_DSN`` names one."""
    if os.environ.get("EGOV_BENCH_ADMIN_DSN"):
        yield
        return
    root = Path(tempfile.mkdtemp(prefix="egov-bench-pg-"))
    root.chmod(0o755)  # the server may run as the 'postgres' account
    try:
        # Durable like production: the benchmarks measure real commits, fsync included.
        with LocalPostgres(root / "postgres", free_port()) as server:
            os.environ["EGOV_BENCH_ADMIN_DSN"] = server.dsn()
            try:
                yield
            finally:
                del os.environ["EGOV_BENCH_ADMIN_DSN"]
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.child:
        return run_child(args.child, args.mode, args.out)
    started = datetime.now(UTC)
    folder = args.results / started.strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()
    outcomes, rows = [], []
    with run_database():
        for name in selected(args):
            outcome, found = run_module(name, args, folder)
            outcomes.append(outcome)
            rows.extend(found)
            if outcome.status != "ok":
                print(f"[bench] {name}: {outcome.status}", flush=True)
        for name in [n for n in selected(args) if n in ON_KAFKA and not args.tansu_only]:
            outcome, found = run_module(name, args, folder, "kafka")
            outcome = replace(outcome, name=name + KAFKA_SUFFIX)
            outcomes.append(outcome)
            rows.extend(Row(**{**r, "benchmark": r["benchmark"] + KAFKA_SUFFIX}) for r in found)
            if outcome.status != "ok":
                print(f"[bench] {outcome.name}: {outcome.status}", flush=True)
    command = (
        f"make bench MODE={args.mode}"
        if not args.only
        else " ".join(["python -m bench", *sys.argv[1:]])
    )
    run = report.Run(
        mode=args.mode,
        command=command,
        started_utc=started.strftime("%Y-%m-%d %H:%M"),
        seconds=time.monotonic() - clock,
        machine=machine.facts(),
        outcomes=outcomes,
        rows=report.fill_references(list[Row](rows)),
    )
    written = report.write(run, folder)
    if not args.only and not args.no_readme:
        report.update_readme(REPO / "README.md", report.readme_section(run, written))
    print(f"[bench] report: {written} ({run.seconds:.0f} s)", flush=True)
    return 0 if all(o.status in {"ok", "missing"} for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
