"""`make up`: the whole system on its embedded default, stopped cleanly with Ctrl-C.

Starts PostgreSQL (its own server in var/postgres unless ``DATABASE_URL`` names one) and
the broker (the embedded tansu, or Apache Kafka with its log in var/kafka), prepares the
database, then runs Prometheus and Alertmanager (production's rules and routes,
services/monitoring.py), each service and the traffic simulator as child processes with
their logs under var/log/.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from services.alerts.settings import AlertsSettings
from services.common.apache_kafka import KafkaAuth, KafkaCluster
from services.common.bootstrap import prepare_database
from services.common.broker import BrokerError, EmbeddedBroker, port_open
from services.common.kafka import ensure_topics
from services.common.kafka_acls import Principals, setup
from services.common.localpg import (
    STACK_DATABASE,
    STACK_DIR,
    STACK_PORT,
    LocalPostgres,
    LocalPostgresError,
    running_stack_port,
)
from services.common.paths import VAR_DIR
from services.common.settings import CommonSettings
from services.drain import drain
from services.metrics.settings import MetricsSettings
from services.monitoring import MonitoringPorts, SinkServer, monitoring_commands

VAR = VAR_DIR
LOG_DIR = VAR / "log"
KAFKA_DIR = VAR / "kafka"


@dataclass(frozen=True)
class StackOptions:
    simulator: bool = True
    # Handed to the simulator as EGOV_SIMULATOR_RATE; `egov-pulse up` passes the flag, or
    # else the simulator's own setting (services/common/cli.py, _simulator_rate).
    simulator_rate: float = 0.25
    broker: str = "tansu"
    broker_port: int = 9092
    postgres_port: int = STACK_PORT
    ports: dict[str, int] = field(
        default_factory=lambda: {"ingest": 8080, "metrics": 8081, "alerts": 8082, "wall": 8083}
    )
    # Prometheus and Alertmanager, as production runs them (services/monitoring.py), and
    # the sink that stands for on-call's webhooks.
    monitoring: bool = True
    # Beside, not on, the Debian services' 9090 and 9093 (`make up` installs the packages,
    # which start them on a systemd machine), as PostgreSQL is beside 5432; and off 9093,
    # Apache Kafka's controller port (broker_port + 1) under `make up BROKER=kafka`.
    monitoring_ports: dict[str, int] = field(
        default_factory=lambda: {"prometheus": 9190, "alertmanager": 9193, "notifications": 9197}
    )

    def monitoring_setup(self) -> MonitoringPorts:
        services = {job: self.ports[job] for job in ("ingest", "metrics", "alerts")}
        return MonitoringPorts(
            prometheus=self.monitoring_ports["prometheus"],
            alertmanager=self.monitoring_ports["alertmanager"],
            notifications=self.monitoring_ports["notifications"],
            services=services,
        )


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    log: Path
    command: list[str]
    env: dict[str, str]
    restarts: list[float] = field(default_factory=list)


def _cli(*args: str) -> list[str]:
    """A subcommand of this checkout's `egov-pulse`, run by this interpreter."""
    return [sys.executable, "-m", "services.cli", *args]


async def _spawn(name: str, command: list[str], env: dict[str, str]) -> Child:
    log = LOG_DIR / f"{name}.log"
    with log.open("ab") as out:
        # A session of its own: Ctrl-C reaches only this process, which then stops
        # the children in order (simulator first, broker last) instead of all at once.
        process = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
    return Child(name, process, log, command, env)


PR_SET_PDEATHSIG = 1
# Loaded before any fork: between fork and exec the child may only call what needs no
# lock another thread could hold (the servers start from worker threads).
_PRCTL = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)


def _stop_with_parent() -> None:
    """In the child: SIGTERM when `up` dies without stopping it (SIGKILL, a crash), so no
    service is left holding its port for the next `make up`. Linux only (prctl)."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


async def _terminate(children: list[Child]) -> None:
    for child in children:
        if child.process.returncode is None:
            child.process.send_signal(signal.SIGTERM)
    for child in children:
        try:
            await asyncio.wait_for(child.process.wait(), 15)
        except TimeoutError:
            child.process.kill()
            await child.process.wait()


READY_PATHS = {
    "ingest": "/readyz",
    "metrics": "/healthz",
    "alerts": "/healthz",
    "wall": "/healthz",
    "prometheus": "/-/ready",
    "alertmanager": "/-/ready",
}
"""What each service answers 200 on once it serves: ingest only when its broker and its
database answer, since a 202 is what publishers wait for."""


class StartError(RuntimeError):
    """A service did not come up: the stack stops and says which, and where its log is."""


async def _wait_ready(child: Child, port: int, timeout_s: float = 60.0) -> None:
    """Until ``child`` answers 200 on its ready path, or raise if it exits or never does.

    An open port is not enough: on loopback, a probe whose own ephemeral port happens to be
    the port it probes connects to itself while nothing listens there yet (the banner then
    announced an ingest that refused the first publisher's connection).
    """
    url = f"http://127.0.0.1:{port}{READY_PATHS[child.name]}"
    deadline = time.monotonic() + timeout_s
    last = "nothing listens yet"
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if child.process.returncode is not None:
                raise StartError(
                    f"{child.name} exited with {child.process.returncode} while starting"
                    f" (log: {child.log})"
                )
            try:
                answer = await client.get(url)
                if answer.status_code == 200:
                    return
                last = f"{answer.status_code} {answer.text[:200]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            if time.monotonic() > deadline:
                raise StartError(
                    f"{child.name} is not ready after {timeout_s:g} s ({url}: {last};"
                    f" log: {child.log})"
                )
            await asyncio.sleep(0.2)


async def _all_ready(children: list[Child], ports: dict[str, int], stop: asyncio.Event) -> bool:
    """Every service ready, polled together; False if Ctrl-C came first (the start stops
    in order, without the simulator or the banner). Raises StartError when one exits or
    never answers, and when one ready early has exited by the time the last is ready."""
    stopper: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    waits: set[asyncio.Future[Any]] = {
        asyncio.ensure_future(_wait_ready(c, ports[c.name])) for c in children
    }
    try:
        while waits and not stopper.done():
            done, _ = await asyncio.wait({stopper, *waits}, return_when=asyncio.FIRST_COMPLETED)
            for task in done - {stopper}:
                task.result()  # a StartError stops the start here
                waits.discard(task)
        if stopper.done():
            print("stopping: Ctrl-C while the services were starting", flush=True)
            return False
    finally:
        for task in (stopper, *waits):
            task.cancel()
        await asyncio.gather(stopper, *waits, return_exceptions=True)
    for child in children:  # ready once is not enough: still there now
        if child.process.returncode is not None:
            raise StartError(f"{child.name} exited with {child.process.returncode} after it "
                             f"answered ready (log: {child.log})")  # fmt: skip
    return True


PUBLISHERS = ("simulator", "ingest")
MONITORING = ("alertmanager", "prometheus")
SERVICES = ("ingest", "metrics", "alerts", "wall")
"""Started in this order; stopped in reverse (after the publishers): the wall, which only
reads, first, then the alerts, then the workers once they have counted what is left."""


async def _stop(children: list[Child], drained: Callable[[], Awaitable[None]] | None) -> None:
    """Publishers first (nothing more is accepted), then, once the workers have counted
    what the broker holds (services/drain.py), the other services, and Prometheus and
    Alertmanager last (the alerts service's last notifications still reach them)."""
    await _terminate([c for c in reversed(children) if c.name in PUBLISHERS])
    workers = [c for c in children if c.name == "metrics" and c.process.returncode is None]
    if drained is not None and workers:
        try:
            await drained()
        except Exception as exc:  # the stop goes on in order whatever the drain met
            print(f"could not wait for the workers to count what the broker holds: {exc!r}")
    await _terminate([c for c in reversed(children) if c.name in SERVICES])
    await _terminate([c for c in reversed(children) if c.name in MONITORING])


MAKE_UP_ALERT_TIMINGS = {
    "EGOV_ALERT_INTERVAL_S": "2",
    "EGOV_ALERT_BURN_INTERVAL_S": "10",
    "EGOV_ALERT_FOR_S": "60",
    "EGOV_ALERT_BURN_FOR_S": "60",
    "EGOV_ALERT_BURN_KEEP_FIRING_S": "60",
    "EGOV_ALERT_SILENT_AFTER_S": "120",
}
"""`make up`'s alert timings where the environment sets none: an alert within minutes."""


def _child_env(options: StackOptions, bootstrap: str, database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    # Production's producer on Apache Kafka: idempotent, acks=all; tansu answers no
    # InitProducerId and needs its own workarounds (EGOV_EMBEDDED_BROKER).
    kafka = options.broker == "kafka"
    env["EGOV_KAFKA_IDEMPOTENCE"] = "true" if kafka else "false"
    env["EGOV_EMBEDDED_BROKER"] = "false" if kafka else "true"
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": database_url,
            "EGOV_INGEST_PORT": str(options.ports["ingest"]),
            "EGOV_METRICS_WEB_PORT": str(options.ports["metrics"]),
            "EGOV_ALERTS_PORT": str(options.ports["alerts"]),
            "EGOV_WALL_PORT": str(options.ports["wall"]),
            "EGOV_SIMULATOR_INGEST_URL": f"http://127.0.0.1:{options.ports['ingest']}",
            "EGOV_INGEST_URL": f"http://127.0.0.1:{options.ports['ingest']}",
            "EGOV_METRICS_URLS": f"http://127.0.0.1:{options.ports['metrics']}",
            "EGOV_ALERTS_URL": f"http://127.0.0.1:{options.ports['alerts']}",
            "EGOV_ALERTS_PUBLIC_URL": f"http://127.0.0.1:{options.ports['alerts']}",
            "EGOV_SIMULATOR_RATE": str(options.simulator_rate),
            # Open alerts and unwritten transitions survive a restart made while
            # PostgreSQL is away (services/alerts/spool.py).
            "EGOV_ALERT_STATE_FILE": str(VAR / "alerts" / "state.json"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # Alerts within a few minutes of `make up` (production: docs/alerts.md), unless the
    # operator set their own timings.
    for name, value in MAKE_UP_ALERT_TIMINGS.items():
        env.setdefault(name, value)
    # Notifications through the stack's Alertmanager, unless the operator named another.
    if options.monitoring and not os.environ.get("EGOV_ALERTMANAGER_URL"):
        alertmanager = options.monitoring_ports["alertmanager"]
        env["EGOV_ALERTMANAGER_URL"] = f"http://127.0.0.1:{alertmanager}"
    # Ingest signs what it validated and the workers trust it (services/common/signing.py):
    # the key kept in var/ unless the operator set one.
    if not env.get("EGOV_RECORD_SIGNING_KEY"):
        env["EGOV_RECORD_SIGNING_KEY"] = stack_signing_key()
    return env


NOTIFICATIONS_LOG = LOG_DIR / "notifications.jsonl"
"""What Alertmanager sent each receiver during `make up` (services/monitoring.py)."""
SIGNING_KEY_FILE = VAR / "record-signing.key"
KAFKA_CREDENTIALS_FILE = VAR / "kafka-credentials.json"


READER_SECRETS = ("DATABASE_URL", "EGOV_DATABASE_URL", "EGOV_RECORD_SIGNING_KEY")
"""What the wall, which reads the other services over HTTP only, is not handed."""


def _service_env(env: dict[str, str], service: str, auth: KafkaAuth | None) -> dict[str, str]:
    """``env`` as ``service`` gets it: the wall without the database and signing secrets,
    the others with their Kafka principal."""
    if service == "wall":
        return {k: v for k, v in env.items() if k not in READER_SECRETS}
    return _with_principal(env, service, auth)


def _with_principal(env: dict[str, str], service: str, auth: KafkaAuth | None) -> dict[str, str]:
    """``env`` with the service's own Kafka principal, when the broker has credentials."""
    if auth is None:
        return env
    password = auth.users[service]
    return {**env, "EGOV_KAFKA_SASL_USERNAME": service, "EGOV_KAFKA_SASL_PASSWORD": password}


def stack_kafka_auth(
    path: Path = KAFKA_CREDENTIALS_FILE, log_dir: Path = KAFKA_DIR
) -> KafkaAuth | None:
    """`make up BROKER=kafka`'s credentials: made with its log (SCRAM users exist only from
    the log's first format), kept in var/ (mode 600), read again on the next start. None
    for a log made before make up had credentials: it runs as it was made (delete
    var/kafka to start one with SASL and ACLs)."""
    if path.exists():
        stored = json.loads(path.read_text())
        return KafkaAuth(stored["admin"], stored["controller"], stored["users"])
    if log_dir.exists() and any(log_dir.glob("node-*/meta.properties")):
        print(f"{log_dir} has no Kafka credentials (made before them): Kafka runs without SASL")
        return None
    users = {name: secrets.token_hex(16) for name in ("ingest", "backfill", "metrics", "alerts")}
    auth = KafkaAuth(secrets.token_hex(16), secrets.token_hex(16), users)
    stored = {"admin": auth.admin_password, "controller": auth.controller_password, "users": users}
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(stored, out)
    return auth


def stack_signing_key(path: Path = SIGNING_KEY_FILE) -> str:
    """`make up`'s record signing key: 256 random bits made on the first start and kept in
    var/ (readable by its owner only), so records a run left in Apache Kafka's log still
    verify after the next `make up`. Never printed."""
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    if len(key) == 64:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(key + "\n")
    return key


async def _simulator_key(settings: CommonSettings) -> str:
    """A fresh ``simulator-demo`` API key (the previous one revoked) for the simulator child:
    scope = the simulator's provinces and every event type. Never printed."""
    import asyncpg

    from services.common.contract import Contract
    from services.ingest.keystore import rotate_key
    from services.simulator.generator import SOURCE_SYSTEM
    from services.simulator.settings import SimulatorSettings

    types = sorted(Contract.load(settings.schemas_dir).event_types)
    conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=10)
    try:
        provinces = SimulatorSettings().provinces
        # The simulator's sources are urn:egov:<system>:<province> (simulator/generator.py).
        sources = [f"urn:egov:{system}:{p}" for system in SOURCE_SYSTEM.values() for p in provinces]
        key = await rotate_key(conn, "simulator-demo", provinces, types, sources=sources)
    finally:
        await conn.close()
    return key.token


async def _simulator_history(settings: CommonSettings) -> dict[str, str]:
    """The past traffic the simulator publishes first: only what the last run did not.

    It back-fills the past day so that the wall has figures at once; a database that
    already counted events (an earlier ``make up``: PostgreSQL lives in var/) gets only
    the gap since its latest event, else each start counted that day's traffic again.
    An operator's ``EGOV_SIMULATOR_HISTORY_S`` is left as it is."""
    import asyncpg

    from services.simulator.runner import AUTO_HISTORY_S

    if "EGOV_SIMULATOR_HISTORY_S" in os.environ:
        return {}
    conn = await asyncpg.connect(settings.database_url.get_secret_value(), timeout=10)
    try:
        latest = await conn.fetchval("SELECT max(last_event_time) FROM unit_activity")
    finally:
        await conn.close()
    if latest is None:
        return {}
    gap = time.time() - latest.timestamp()
    return {} if gap >= AUTO_HISTORY_S else {"EGOV_SIMULATOR_HISTORY_S": str(max(0, int(gap)))}


def _banner(options: StackOptions, bootstrap: str, database: str) -> str:
    p = options.ports
    broker = "Apache Kafka" if options.broker == "kafka" else "embedded tansu"
    lines = [
        "egov-pulse is up (Ctrl-C stops everything):",
        f"  broker ({broker}){' ' * max(1, 17 - len(broker))}{bootstrap}",
        f"  PostgreSQL                {database}",
        f"  publish events            POST http://127.0.0.1:{p['ingest']}/v1/events",
        f"  IOC wall page             http://127.0.0.1:{p['wall']}/wall",
        f"  KPI figures (Prometheus)  http://127.0.0.1:{p['metrics']}/metrics",
        f"  KPI figures (JSON)        http://127.0.0.1:{p['metrics']}/v1/kpis?level=province",
        f"  alerts                    http://127.0.0.1:{p['alerts']}/v1/alerts",
    ]
    if options.monitoring:
        m = options.monitoring_ports
        lines += [
            # The root: Debian's Prometheus (no React UI) answers /alerts 404 (review 53).
            f"  Prometheus                http://127.0.0.1:{m['prometheus']}",
            f"  Alertmanager              http://127.0.0.1:{m['alertmanager']}",
            f"  notifications (on-call)   printed here, whole in {NOTIFICATIONS_LOG}",
        ]
    lines.append(f"  logs                      {LOG_DIR}")
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
    fresh = await _spawn(child.name, child.command, child.env)
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


BROKER_PIDS = VAR / "broker.pids"
"""The broker processes of the running `make up`: its services stop with it when it is
killed (PR_SET_PDEATHSIG), but a broker, started from a worker thread, cannot."""


UP_PID = VAR / "up.pid"
"""The running `make up`'s pid: a second one from the same var/ refuses to start before it
touches anything the first holds (its broker, its PostgreSQL)."""


def _running_up() -> int | None:
    """The pid of another `up` running from this var/, if one is."""
    try:
        pid = int(UP_PID.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if pid == os.getpid():
        return None
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None  # gone: a killed `up`, whose leftovers are stopped next
    ours = any(arg == b"services.cli" or arg.endswith(b"egov-pulse") for arg in command)
    return pid if ours and b"up" in command else None  # else the pid was reused


def _record_broker(pids: list[int]) -> None:
    BROKER_PIDS.write_text("".join(f"{pid}\n" for pid in pids))


def _stop_leftover_broker() -> None:
    """Stop the broker a killed `make up` left running (it holds the port, and tansu its
    old log), if the process of that pid is still one of our brokers."""
    try:
        pids = [int(line) for line in BROKER_PIDS.read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue  # gone already
        if b"tansu" not in command and b"kafka.Kafka" not in command:
            continue  # the pid was reused by something else
        print(f"stopping the broker a killed `make up` left running (pid {pid})", flush=True)
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    BROKER_PIDS.unlink(missing_ok=True)


def _ports(options: StackOptions) -> dict[str, int]:
    """Every port the stack listens on (the local servers' too, when it starts them)."""
    ports = {"broker": options.broker_port, **options.ports}
    if options.broker == "kafka":
        ports["Kafka controller"] = options.broker_port + 1  # KafkaCluster's, below
    if options.monitoring:
        ports |= options.monitoring_ports
    own_server = running_stack_port() == options.postgres_port
    if not (os.environ.get("DATABASE_URL") or os.environ.get("EGOV_DATABASE_URL")):
        if not own_server:  # left by a killed `make up`: LocalPostgres.start restarts it
            ports["PostgreSQL"] = options.postgres_port
    return ports


class _Servers:
    """The stack's PostgreSQL and broker: started before the services, stopped after."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.postgres: LocalPostgres | None = None
        self.broker: EmbeddedBroker | KafkaCluster | None = None
        self.kafka_auth: KafkaAuth | None = None

    def database_url(self) -> str:
        """``DATABASE_URL`` if the user set one (nothing is started), else our own server."""
        given = os.environ.get("DATABASE_URL") or os.environ.get("EGOV_DATABASE_URL")
        if given:
            return given
        self.postgres = LocalPostgres(STACK_DIR, self.options.postgres_port)
        self.postgres.start()
        return self.postgres.dsn(STACK_DATABASE)

    def bootstrap_servers(self) -> str:
        port = self.options.broker_port
        if self.options.broker == "kafka":
            print("starting Apache Kafka (its jars are fetched through Maven the first time)")
            self.kafka_auth = stack_kafka_auth()
            # Its log beside the other processes' (var/log/kafka-node-1.log), not in its
            # data folder: var/log/broker.log is the embedded broker's (review 57).
            self.broker = KafkaCluster(
                KAFKA_DIR, ports=[port], controller_ports=[port + 1], auth=self.kafka_auth,
                log_dir=LOG_DIR, log_prefix="kafka-",
            )  # fmt: skip
        else:
            self.broker = EmbeddedBroker(port=port, log=LOG_DIR / "broker.log")
        self.broker.on_spawn = _record_broker
        self.broker.start()
        _record_broker(self.broker.pids)
        return self.broker.bootstrap_servers

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.stop()
            BROKER_PIDS.unlink(missing_ok=True)
        if self.postgres is not None:
            self.postgres.stop()


async def run_stack(options: StackOptions) -> int:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    other = _running_up()
    if other is not None:
        print(f"refusing to start: another `make up` (pid {other}) runs from {VAR};"
              " stop it first (Ctrl-C in its terminal)", flush=True)  # fmt: skip
        return 1
    _stop_leftover_broker()
    busy = [
        f"{name} {port}" for name, port in _ports(options).items() if port_open("127.0.0.1", port)
    ]
    if busy:
        print(f"refusing to start: something already listens on {', '.join(busy)}"
              " (another `make up`? stop it first)", flush=True)  # fmt: skip
        return 1
    UP_PID.write_text(f"{os.getpid()}\n")
    servers = _Servers(options)
    sink: SinkServer | None = None
    children: list[Child] = []
    drained: Callable[[], Awaitable[None]] | None = None
    try:
        database_url = await asyncio.to_thread(servers.database_url)
        bootstrap = await asyncio.to_thread(servers.bootstrap_servers)
        auth = servers.kafka_auth
        settings = CommonSettings(
            kafka_bootstrap_servers=bootstrap,
            database_url=SecretStr(database_url),
            kafka_sasl_username=None if auth is None else "admin",
            kafka_sasl_password=None if auth is None else SecretStr(auth.admin_password),
        )

        async def drained() -> None:
            print("stopping: ingest stopped; the workers count what the broker holds", flush=True)
            group = MetricsSettings().metrics_app_id
            missing = await drain(settings, database_url, group)
            if missing:
                print(f"the workers were still {missing} records behind after 60 s", flush=True)
            else:
                print("every event the broker held is counted", flush=True)

        await prepare_database(settings)
        if auth is None:
            await ensure_topics(settings)
        else:  # as production: the topics and ACLs made by admin, one principal per service
            alerts_topic = AlertsSettings().topic_alerts
            await setup(settings, Principals(), MetricsSettings().metrics_app_id, alerts_topic)
        env = _child_env(options, bootstrap, database_url)
        simulator_key = await _simulator_key(settings)
        ports = dict(options.ports)
        if options.monitoring:
            # First, so that the alerts service's first notifications have somewhere to go.
            sink_port = options.monitoring_ports["notifications"]
            sink = SinkServer(sink_port, NOTIFICATIONS_LOG)
            try:
                await asyncio.to_thread(sink.start)
            except OSError as exc:
                raise StartError(str(exc)) from exc
            for name, command in _monitoring_commands(options).items():
                children.append(await _spawn(name, command, dict(os.environ)))
            ports |= options.monitoring_ports
        for name in SERVICES:
            children.append(await _spawn(name, _cli(name), _service_env(env, name, auth)))
        if not await _all_ready(children, ports, stop):
            return 0
        if options.simulator:
            simulator_env = {**env, "EGOV_SIMULATOR_API_KEY": simulator_key}
            simulator_env |= await _simulator_history(settings)
            children.append(await _spawn("simulator", _cli("simulate"), simulator_env))
        print(_banner(options, bootstrap, _without_password(database_url)), flush=True)
        return await _watch(children, stop)
    except (StartError, BrokerError, LocalPostgresError) as exc:
        print(f"could not start: {exc}", flush=True)
        return 1
    finally:
        with contextlib.suppress(Exception):
            await _stop(children, drained)
        if sink is not None:
            await asyncio.to_thread(sink.stop)
        servers.stop()
        UP_PID.unlink(missing_ok=True)
        print("egov-pulse stopped.")


def _monitoring_commands(options: StackOptions) -> dict[str, list[str]]:
    """Alertmanager and Prometheus, or a StartError saying how to get them."""
    found = {name: shutil.which(name) for name in ("prometheus", "prometheus-alertmanager")}
    missing = [name for name, path in found.items() if path is None]
    if missing:
        raise StartError(
            f"{' and '.join(missing)} not found: `make up` installs them (Debian packages"
            " prometheus, prometheus-alertmanager); `egov-pulse up --monitoring off` runs"
            " without them"
        )
    commands = monitoring_commands(VAR, options.monitoring_setup())
    return {"alertmanager": commands["alertmanager"], "prometheus": commands["prometheus"]}


def _without_password(dsn: str) -> str:
    """The DSN as the banner shows it: a password is never printed."""
    head, sep, tail = dsn.rpartition("@")
    if not sep or ":" not in head.split("//", 1)[-1]:
        return dsn
    scheme, _, credentials = head.partition("//")
    return f"{scheme}//{credentials.split(':', 1)[0]}:***@{tail}"
