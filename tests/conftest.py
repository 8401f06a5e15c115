"""Fixtures shared by every test: the real broker, a fresh database, unique topic names."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from services.common.broker import EmbeddedBroker
from services.common.db import migrate
from services.common.settings import CommonSettings

ADMIN_DSN = os.environ.get("EGOV_TEST_ADMIN_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """KAFKA_BOOTSTRAP_SERVERS when set (any Kafka), else an embedded tansu for the run."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield external
        return
    with EmbeddedBroker() as broker:
        yield broker.bootstrap_servers


async def create_database(prefix: str = "egov_test") -> str:
    """A new, migrated database with a unique name; returns its DSN."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    dsn = ADMIN_DSN.rsplit("/", 1)[0] + f"/{name}"
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    return dsn


async def drop_database(dsn: str) -> None:
    name = dsn.rsplit("/", 1)[1]
    admin = await asyncpg.connect(ADMIN_DSN)
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
