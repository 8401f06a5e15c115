"""The Faust app is configured from the metrics settings (and never serves its tables)."""

from __future__ import annotations

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
