"""The Faust app is configured from the metrics settings (and never serves its tables)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from services.metrics.app import create_app
from services.metrics.settings import MetricsSettings


def test_the_app_takes_its_consumer_settings_from_the_environment(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("EGOV_METRICS_FETCH_BYTES", str(8 * 2**20))
    monkeypatch.setenv("EGOV_METRICS_STREAM_BUFFER", "1000")
    app = create_app(MetricsSettings(metrics_app_id="unit-app-settings"))
    assert app.conf.consumer_max_fetch_size == 8 * 2**20
    assert app.conf.stream_buffer_maxsize == 1000
    assert app.conf.web_tables_enabled is False  # table contents are never served


def test_a_worker_fetches_4_mib_per_partition_by_default() -> None:
    app = create_app(MetricsSettings(metrics_app_id="unit-app-defaults"))
    assert app.conf.consumer_max_fetch_size == 4 * 2**20  # Faust's default is 1 MiB


async def test_the_worker_consumer_waits_on_fetches_as_long_as_configured(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Faust hard-codes a 1,500 ms fetch wait, which tansu turns into ~0.5 s of latency."""
    monkeypatch.setenv("EGOV_METRICS_FETCH_MAX_WAIT_MS", "250")
    app = create_app(MetricsSettings(metrics_app_id="unit-app-fetch-wait"))
    thread = app.consumer._thread  # type: ignore[attr-defined]
    consumer = thread._create_worker_consumer(app.transport)
    try:
        assert consumer._fetch_max_wait_ms == 250
        assert consumer._max_partition_fetch_bytes == 4 * 2**20
    finally:
        await consumer.stop()
        thread.thread_loop.close()  # Faust made it for the thread, which never ran


def test_a_worker_waits_100_ms_on_an_empty_fetch_by_default() -> None:
    assert MetricsSettings(metrics_app_id="unit-app-defaults").metrics_fetch_max_wait_ms == 100


def test_a_fetch_wait_below_1_ms_is_refused() -> None:
    """0 would make an idle worker poll the broker without pause."""
    with pytest.raises(ValidationError, match="metrics_fetch_max_wait_ms"):
        MetricsSettings(metrics_app_id="unit-app-bounds", metrics_fetch_max_wait_ms=0)
