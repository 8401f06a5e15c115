"""Fixtures shared by every test: the real broker, a fresh database, unique topic names."""

from __future__ import annotations

import os
import secrets
import signal
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from services.common.db import migrate
from services.common.settings import CommonSettings
from tests.servers import SERVERS, admin_dsn, broker_name


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "broker(name, why): the test needs what only that broker has (EGOV_TEST_BROKER);"
        " on the other one it is reported as skipped with the reason",
    )
    config.addinivalue_line(
        "markers",
        "uses_broker: talks to a broker (set for every test that takes the kafka_bootstrap"
        " fixture or has a broker marker); `make test` runs these on tansu and on Kafka",
    )
    if broker_name() == "kafka":
        # Production's producer settings (docker-compose.yml): tansu has no InitProducerId.
        os.environ.setdefault("EGOV_KAFKA_IDEMPOTENCE", "true")
        # Outside the embedded broker a service refuses to start without a strong signing
        # key (services/common/settings.py), as in production: one per session. The broker
        # itself runs without SASL here (the fault suite and the benchmarks share it);
        # tests/integration/test_kafka_auth.py runs an authenticated one of its own.
        os.environ.setdefault("EGOV_RECORD_SIGNING_KEY", secrets.token_hex(32))
    else:
        # tansu's workarounds (services/metrics/compat.py), for it alone.
        os.environ.setdefault("EGOV_EMBEDDED_BROKER", "true")
    stop_on_sigterm()
    SERVERS.start_database()


def stop_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a CI cancel, a supervisor) stop the session as Ctrl-C does.

    Python's default for SIGTERM ends the process without unwinding: no fixture teardown
    and no pytest_unconfigure, so the session's PostgreSQL (a daemon of its own) and its
    broker outlived every ``kill`` of a pytest run. As an interrupt, the running test is
    torn down and the servers are stopped. A handler someone else set is left alone.
    """
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return
    received: list[int] = []

    def interrupt(signum: int, frame: object) -> None:
        # Once: a second SIGTERM must not cut the servers' stop short. (Not SIG_IGN,
        # which the processes the teardown starts would inherit.)
        if received:
            return
        received.append(signum)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def pytest_unconfigure(config: pytest.Config) -> None:
    SERVERS.stop()


def pytest_report_header(config: pytest.Config) -> str:
    return f"broker under test: {broker_name()}; PostgreSQL: {admin_dsn()}"


ONE_BROKER_RUN = "EGOV_TEST_ONE_BROKER_RUN"
"""Set by tests/both_brokers.py in its two broker runs: the tests of ``ONE_BROKER`` run in
one of them only."""

ONE_BROKER = {
    "tests/integration/dashboards/test_review79_panels.py": "kafka",
    "tests/integration/test_dossiers_end_to_end.py": "kafka",
    "tests/integration/alerts/test_review77_outage_pages.py": "tansu",
    "tests/integration/test_review41_health_alerts.py": "tansu",
    "tests/integration/dashboards/test_panels_return_data.py": "tansu",
    "tests/integration/ingest/test_review82_overload.py": "tansu",
    # PostgreSQL's outages and locks, the alerts' judgement of a stalled or failed-over
    # worker, ids and publishers under a signing key of the test's own (2026-12-06: with
    # this stop's tests each broker run took 27 of CI's 30 minutes).
    "tests/integration/test_review70_postgres_outages.py": "kafka",
    "tests/faults/test_postgres_outage.py": "kafka",
    "tests/integration/test_review91_today.py": "kafka",
    "tests/integration/alerts/test_review85_worker_restarts.py": "tansu",
    "tests/integration/metrics/test_review85_stall.py": "tansu",
    "tests/integration/test_review86_hostile_strings.py": "tansu",
}
"""Broker tests that check nothing of the broker's own (it carries their events to a real
worker: PromQL, the alerts' judgement, ingest's HTTP bounds, the ledger's outcomes), run
once by `make test`, on the broker named, instead of in both runs: with them in both, each
run took ~29 of CI's 30 minutes (2026-12-06). Run directly (`pytest FILE`), they run on
the broker under test as any other."""


def _one_broker_elsewhere(item: pytest.Item) -> bool:
    path = item.nodeid.split("::", 1)[0]
    assigned = ONE_BROKER.get(path)
    return assigned is not None and assigned != broker_name()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(ONE_BROKER_RUN) == "1":
        elsewhere = [item for item in items if _one_broker_elsewhere(item)]
        if elsewhere:
            config.hook.pytest_deselected(items=elsewhere)
            items[:] = [item for item in items if not _one_broker_elsewhere(item)]
    for item in items:
        if item.get_closest_marker("broker") or "kafka_bootstrap" in getattr(
            item, "fixturenames", ()
        ):
            item.add_marker(pytest.mark.uses_broker)
        for mark in item.iter_markers("broker"):
            name, why = mark.args
            if name != broker_name():
                item.add_marker(pytest.mark.skip(reason=f"needs {name}: {why}"))


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The broker under test (tests/servers.py), started for the session on first use."""
    yield SERVERS.broker()


async def create_database(prefix: str = "egov_test") -> str:
    """A new, migrated database with a unique name; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn())
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = admin_dsn().rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


async def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(admin_dsn())
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def database_url() -> AsyncIterator[str]:
    """A migrated database of this test's own, dropped afterwards."""
    dsn = await create_database()
    try:
        yield dsn
    finally:
        await drop_database(dsn)


@pytest.fixture
def topic_prefix() -> str:
    """Topic names of this test's own: no test reads what another wrote."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def common_settings(kafka_bootstrap: str, topic_prefix: str) -> CommonSettings:
    return CommonSettings(
        kafka_bootstrap_servers=kafka_bootstrap,
        topic_documents=f"{topic_prefix}.documents",
        topic_dossiers=f"{topic_prefix}.dossiers",
        topic_meetings=f"{topic_prefix}.meetings",
        topic_dead_letter=f"{topic_prefix}.dead-letter",
        topic_partitions=3,
    )
