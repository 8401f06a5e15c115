"""The servers a test session runs for itself: PostgreSQL and the broker under test.

No machine of the project runs either for it. ``EGOV_TEST_ADMIN_DSN`` (or
``DATABASE_URL``) names a PostgreSQL server to use instead of starting one;
``EGOV_TEST_BROKER`` picks the broker: ``tansu`` (the embedded default) or ``kafka``
(Apache Kafka from its Maven Central jars, with the idempotent producer on, as in
production); ``KAFKA_BOOTSTRAP_SERVERS`` names a running broker instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from services.common.broker import EmbeddedBroker, free_port
from services.common.localpg import LocalPostgres

BROKERS = ("tansu", "kafka")


def broker_name() -> str:
    name = os.environ.get("EGOV_TEST_BROKER", "tansu")
    if name not in BROKERS:
        raise ValueError(f"EGOV_TEST_BROKER={name!r}: one of {', '.join(BROKERS)}")
    return name


def admin_dsn() -> str:
    """The maintenance database of the session's PostgreSQL server."""
    return os.environ["EGOV_TEST_ADMIN_DSN"]


def database_address() -> str:
    """``host:port`` of that server, for tests that put a proxy in front of it."""
    return urlsplit(admin_dsn()).netloc.rsplit("@", 1)[-1]


def database_port() -> int:
    return int(database_address().rsplit(":", 1)[1])


class SessionServers:
    """Started at pytest_configure (module constants of the tests read the DSN) and
    stopped at pytest_unconfigure; the broker is started on first use only."""

    def __init__(self) -> None:
        self._folder: Path | None = None
        self._postgres: LocalPostgres | None = None
        self._broker: EmbeddedBroker | object | None = None

    @property
    def _root(self) -> Path:
        """A temporary folder for the servers, made on first use (importing makes none)."""
        if self._folder is None:
            self._folder = Path(tempfile.mkdtemp(prefix="egov-test-"))
            # The server may run as the 'postgres' account, which must enter this folder.
            self._folder.chmod(0o755)
        return self._folder

    def start_database(self) -> None:
        if os.environ.get("EGOV_TEST_ADMIN_DSN"):
            return
        given = os.environ.get("DATABASE_URL")
        if given:
            os.environ["EGOV_TEST_ADMIN_DSN"] = given
            return
        self._postgres = LocalPostgres(self._root / "postgres", free_port(), durable=False)
        self._postgres.start()
        os.environ["EGOV_TEST_ADMIN_DSN"] = self._postgres.dsn()

    def broker(self) -> str:
        """Bootstrap servers of the broker under test, started on the first call."""
        external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if external:
            return external
        if self._broker is None:
            if broker_name() == "kafka":
                from services.common.apache_kafka import KafkaCluster

                broker: KafkaCluster | EmbeddedBroker = KafkaCluster(self._root / "kafka", nodes=1)
            else:
                broker = EmbeddedBroker(log=self._root / "tansu.log")
            # Kept before it starts: an interrupt while it starts (a Ctrl-C, make test's
            # runner interrupting a run) still stops the process it launched.
            self._broker = broker
            broker.start()
        return self._broker.bootstrap_servers  # type: ignore[attr-defined,no-any-return]

    def stop(self) -> None:
        if self._broker is not None:
            self._broker.stop()  # type: ignore[attr-defined]
        if self._postgres is not None:
            self._postgres.stop()
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


SERVERS = SessionServers()
