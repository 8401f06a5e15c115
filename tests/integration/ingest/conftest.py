"""Fixtures of the ingest integration tests: a running ingest per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.common.settings import CommonSettings
from tests.integration.ingest.harness import Ingest, ingest_settings, running_ingest


@pytest.fixture
async def ingest(common_settings: CommonSettings, database_url: str) -> AsyncIterator[Ingest]:
    settings = ingest_settings(common_settings, database_url)
    async with running_ingest(settings) as running:
        yield running
