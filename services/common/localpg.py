"""A private PostgreSQL server for `make up`, the tests and the benchmarks.

With ``DATABASE_URL`` unset nothing else provides one: no machine of the project runs a
database for it. The server is Debian's ``postgresql`` package (the binaries under
``/usr/lib/postgresql/<major>/bin``), run on loopback from a data directory of our own:
``var/postgres`` for `make up`, so figures, keys and alert history survive a restart,
and a temporary one for a test session.

PostgreSQL refuses to run as root, and CI runs as root: there the server runs as the
``postgres`` account that the Debian package creates, and owns its data directory.
(pytest-postgresql's executor has no such step, which is why this is not its fixture.)
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from services.common.broker import ManagedServer
from services.common.paths import VAR_DIR

#: Where `make up` keeps its server; the CLI finds a running one here by itself.
STACK_DIR = VAR_DIR / "postgres"
#: `make up`'s port: beside, not on, a system server's 5432.
STACK_PORT = 5433
SUPERUSER = "postgres"
STACK_DATABASE = "egov_pulse"


class LocalPostgresError(RuntimeError):
    """The private server could not be found, initialised or started."""


def server_bin_dir() -> Path:
    """The newest PostgreSQL server installation on this machine.

    ``EGOV_PG_BIN_DIR`` names one explicitly (read here, not in the settings, because
    it is a property of the machine, like ``PATH``)."""
    explicit = os.environ.get("EGOV_PG_BIN_DIR")
    candidates = [Path(explicit)] if explicit else []
    majors = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += majors
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if (directory / "pg_ctl").exists() and (directory / "initdb").exists():
            return directory
    raise LocalPostgresError(
        "no PostgreSQL server found (Debian package 'postgresql'; `make up` and `make test`"
        " install it). Or set DATABASE_URL to a server of your own."
    )


@dataclass(frozen=True)
class _Account:
    """Who runs the server: us, or the ``postgres`` account when we are root."""

    uid: int | None
    gid: int | None

    @classmethod
    def for_server(cls) -> _Account:
        if os.geteuid() != 0:
            return cls(None, None)
        try:
            entry = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise LocalPostgresError(
                "running as root, and there is no 'postgres' account to run the server as"
                " (Debian's postgresql package creates it)"
            ) from exc
        return cls(entry.pw_uid, entry.pw_gid)

    def own(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


class LocalPostgres(ManagedServer):
    """One PostgreSQL server on 127.0.0.1:``port`` with its data in ``root``/data.

    ``durable=False`` (tests) turns off fsync and full-page writes: a crash loses the
    cluster, which a test session throws away anyway.
    """

    def __init__(self, root: Path, port: int, durable: bool = True) -> None:
        self.root = root
        self.port = port
        self.durable = durable
        self.data_dir = root / "data"
        self.log = root / "server.log"
        self._bin = server_bin_dir()
        self._account = _Account.for_server()
        self._started = False

    def dsn(self, database: str = SUPERUSER) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 (our own arguments)
            [str(self._bin / tool), *args],
            user=self._account.uid,
            group=self._account.gid,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=self.root,
        )

    def _prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_reachable()
        # The server's account must reach its directory through the parents we made.
        self.root.chmod(0o755)
        self._account.own(self.root)
        if (self.data_dir / "PG_VERSION").exists():
            return
        flags = ["-D", str(self.data_dir), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8"]
        flags += ["--locale=C.UTF-8"] if self.durable else ["--locale=C.UTF-8", "--no-sync"]
        done = self._run("initdb", *flags)
        if done.returncode != 0:
            raise LocalPostgresError(f"initdb failed in {self.data_dir}: {done.stderr.strip()}")

    def _check_reachable(self) -> None:
        """As root, the server's account must be able to enter every parent directory."""
        if self._account.uid is None:
            return
        for parent in self.root.resolve().parents:
            if not parent.stat().st_mode & 0o001:
                raise LocalPostgresError(
                    f"the 'postgres' account cannot enter {parent} (mode"
                    f" {oct(parent.stat().st_mode & 0o777)}), so it cannot run a server from"
                    f" {self.root}: move the checkout, or set DATABASE_URL"
                )

    def running(self) -> bool:
        return self._run("pg_ctl", "status", "-D", str(self.data_dir)).returncode == 0

    def start(self) -> None:
        """Initialise the data directory if it is new, and start the server.

        A server left running on this directory by a run that was killed is stopped
        first: it may have been started with other settings."""
        self._prepare()
        if self.running():
            self.stop()
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            f"-c unix_socket_directories='{self.root}'",
            "-c max_connections=300",
        ]
        if not self.durable:
            options += ["-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off"]
        if self.log.exists():
            self._account.own(self.log)
        done = self._run(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data_dir),
            "-l", str(self.log), "-o", " ".join(options),
        )  # fmt: skip
        if done.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise LocalPostgresError(
                f"PostgreSQL did not start on port {self.port}: {done.stderr.strip()}\n{tail}"
            )
        self._started = True

    def stop(self) -> None:
        """Fast shutdown: open sessions are ended, everything committed is kept."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data_dir))
        self._started = False


def running_stack_port(root: Path = STACK_DIR) -> int | None:
    """The port of `make up`'s server if it runs now (its postmaster.pid names it)."""
    pid_file = root / "data" / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, IndexError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, run by another account
    return port
