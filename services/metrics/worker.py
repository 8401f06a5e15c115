"""Composition root of the metrics service: real adapters wired into a Faust worker."""

from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry

from services.common.contract import Contract
from services.common.units import UnitRegistry
from services.metrics.agents import EventPipeline, register_agents
from services.metrics.app import create_app
from services.metrics.decoding import RecordDecoder
from services.metrics.exposition import PipelineMetrics, StateCollector
from services.metrics.settings import MetricsSettings
from services.metrics.state import EventCounts
from services.metrics.web import register_views


def build_app(settings: MetricsSettings) -> faust.App:
    app = create_app(settings)
    registry = CollectorRegistry()
    counts = EventCounts()
    registry.register(StateCollector(counts))
    decoder = RecordDecoder(
        Contract.load(settings.schemas_dir), UnitRegistry.from_dir(settings.units_dir)
    )
    register_agents(app, settings, EventPipeline(decoder, counts, PipelineMetrics(registry)))
    register_views(app, registry)
    return app


def run_worker(settings: MetricsSettings, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (Faust installs the signal handlers)."""
    settings.metrics_data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
