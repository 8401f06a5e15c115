"""`make up`: the whole system on its embedded default, stopped cleanly with Ctrl-C.

Starts the embedded broker, prepares the local PostgreSQL database, then runs each
service (and the traffic simulator) as a child process with its logs under var/log/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from services.common.bootstrap import prepare_database
from services.common.broker import EmbeddedBroker, wait_for_port
from services.common.kafka import ensure_topics
from services.common.paths import REPO_ROOT
from services.common.settings import CommonSettings

LOG_DIR = REPO_ROOT / "var" / "log"


@dataclass(frozen=True)
class StackOptions:
    simulator: bool = True
    simulator_rate: float = 20.0
    broker_port: int = 9092
    ports: dict[str, int] = field(
        default_factory=lambda: {"ingest": 8080, "metrics": 8081, "alerts": 8082}
    )


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    args: list[str]
    env: dict[str, str]
    restarts: list[float] = field(default_factory=list)


async def _spawn(name: str, args: list[str], env: dict[str, str]) -> Child:
    log = LOG_DIR / f"{name}.log"
    with log.open("ab") as out:
        # A session of its own: Ctrl-C reaches only this process, which then stops
        # the children in order (simulator first, broker last) instead of all at once.
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            *args,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
    return Child(name, process, log, args, env)


async def _stop(children: list[Child]) -> None:
    for child in reversed(children):
        if child.process.returncode is None:
            child.process.send_signal(signal.SIGTERM)
    for child in reversed(children):
        try:
            await asyncio.wait_for(child.process.wait(), 15)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()


def _child_env(options: StackOptions, bootstrap: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "EGOV_INGEST_PORT": str(options.ports["ingest"]),
            "EGOV_METRICS_WEB_PORT": str(options.ports["metrics"]),
            "EGOV_ALERTS_PORT": str(options.ports["alerts"]),
            "EGOV_SIMULATOR_INGEST_URL": f"http://127.0.0.1:{options.ports['ingest']}",
            "EGOV_INGEST_URL": f"http://127.0.0.1:{options.ports['ingest']}",
            "EGOV_METRICS_URLS": f"http://127.0.0.1:{options.ports['metrics']}",
            "EGOV_ALERTS_URL": f"http://127.0.0.1:{options.ports['alerts']}",
            "EGOV_ALERTS_PUBLIC_URL": f"http://127.0.0.1:{options.ports['alerts']}",
            "EGOV_SIMULATOR_RATE": str(options.simulator_rate),
            # Alerts within a few minutes of `make up` (production: docs/alerts.md).
            "EGOV_ALERT_INTERVAL_S": "2",
            "EGOV_ALERT_BURN_INTERVAL_S": "10",
            "EGOV_ALERT_FOR_S": "60",
            "EGOV_ALERT_BURN_FOR_S": "60",
            "EGOV_ALERT_SILENT_AFTER_S": "120",
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Ingest signs what it validated and the workers trust it (services/common/signing.py):
    # one random key per run unless the operator set one.
    if not env.get("EGOV_RECORD_SIGNING_KEY"):
        env["EGOV_RECORD_SIGNING_KEY"] = secrets.token_hex(32)
    return env


async def _simulator_key(settings: CommonSettings) -> str:
    """A fresh ``simulator-demo`` API key (the previous one revoked) for the simulator child:
    scope = the simulator's provinces and every event type. Never printed."""
    import asyncpg

    from services.common.contract import Contract
    from services.ingest.keystore import rotate_key
    from services.simulator.settings import SimulatorSettings

    types = sorted(Contract.load(settings.schemas_dir).event_types)
    conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=10)
    try:
        key = await rotate_key(conn, "simulator-demo", SimulatorSettings().provinces, types)
    finally:
        await conn.close()
    return key.token


def _banner(options: StackOptions, bootstrap: str) -> str:
    p = options.ports
    lines = [
        "egov-pulse is up (Ctrl-C stops everything):",
        f"  broker (embedded tansu)   {bootstrap}",
        f"  publish events            POST http://127.0.0.1:{p['ingest']}/v1/events",
        f"  IOC wall page             http://127.0.0.1:{p['metrics']}/wall",
        f"  KPI figures (Prometheus)  http://127.0.0.1:{p['metrics']}/metrics",
        f"  KPI figures (JSON)        http://127.0.0.1:{p['metrics']}/v1/kpis?level=province",
        f"  alerts                    http://127.0.0.1:{p['alerts']}/v1/alerts",
        f"  logs                      {LOG_DIR}",
    ]
    if options.simulator:
        lines.append(f"  simulator                 {options.simulator_rate:g} events/s")
    lines.append("  API key 'simulator-demo'  made for the simulator (egov-pulse keys list)")
    return "\n".join(lines)


# A child that keeps dying is not restarted for ever: the stack stops and says why.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


async def _restart(child: Child) -> bool:
    """Respawn ``child`` in place, unless it died too often lately."""
    now = time.monotonic()
    child.restarts = [t for t in child.restarts if now - t < RESTART_WINDOW_S] + [now]
    if len(child.restarts) > MAX_RESTARTS:
        return False
    await asyncio.sleep(1)
    fresh = await _spawn(child.name, child.args, child.env)
    child.process = fresh.process
    return True


async def _watch(children: list[Child], stop: asyncio.Event) -> int:
    """Supervise the children until Ctrl-C, as a process manager would.

    A metrics worker exits on purpose after an error it cannot retry (it resumes from the
    offsets stored in PostgreSQL), so a child that exits is restarted; one that keeps
    exiting stops the stack.
    """
    stopper = asyncio.ensure_future(stop.wait())
    while True:
        waits = {asyncio.ensure_future(c.process.wait()): c for c in children}
        done, _ = await asyncio.wait([stopper, *waits], return_when=asyncio.FIRST_COMPLETED)
        for task in waits:
            task.cancel()
        if stopper in done:
            return 0
        for task in done:
            child = waits[task]
            code = child.process.returncode
            print(f"{child.name} exited with {code}; restarting (log: {child.log})", flush=True)
            if not await _restart(child):
                print(f"{child.name} exited {MAX_RESTARTS} times within {RESTART_WINDOW_S:g} s;"
                      " stopping", flush=True)  # fmt: skip
                stopper.cancel()
                return 1


async def run_stack(options: StackOptions) -> int:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    broker = EmbeddedBroker(port=options.broker_port, log=LOG_DIR / "broker.log")
    broker.start()
    children: list[Child] = []
    try:
        settings = CommonSettings(kafka_bootstrap_servers=broker.bootstrap_servers)
        await prepare_database(settings)
        await ensure_topics(settings)
        env = _child_env(options, broker.bootstrap_servers)
        simulator_key = await _simulator_key(settings)
        for name in ("ingest", "metrics", "alerts"):
            children.append(await _spawn(name, [name], env))
        for name in ("ingest", "metrics", "alerts"):
            await wait_for_port("127.0.0.1", options.ports[name], 60)
        if options.simulator:
            simulator_env = {**env, "EGOV_SIMULATOR_API_KEY": simulator_key}
            children.append(await _spawn("simulator", ["simulate"], simulator_env))
        print(_banner(options, broker.bootstrap_servers), flush=True)
        return await _watch(children, stop)
    finally:
        with contextlib.suppress(Exception):
            await _stop(children)
        broker.stop()
        print("egov-pulse stopped.")
