"""Composition root of the metrics service: real adapters wired into a Faust worker."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import faust
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry

from services.common.contract import Contract
from services.common.db import create_pool, migrate_database
from services.common.kpis import KpiCatalogue
from services.common.summaries import record_signer
from services.common.targets import Override
from services.common.units import UnitRegistry
from services.metrics import store
from services.metrics.agents import Counting, register_agents
from services.metrics.app import MetricsApp, TopicPartition, create_app
from services.metrics.compat import install_no_leave_group_shim
from services.metrics.decoding import RecordDecoder
from services.metrics.dossiers import SWEEP_EVERY_S as DOSSIER_SWEEP_S
from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures
from services.metrics.kpitext import KpiText
from services.metrics.logcheck import LogCheck, Stored
from services.metrics.logwatch import RECHECK_S, LogWatch
from services.metrics.periods import Periods
from services.metrics.pipeline import INFRASTRUCTURE_ERRORS, PartitionState, Preparer, retrying
from services.metrics.settings import MetricsSettings
from services.metrics.stallwatch import StallCollector, StallWatch
from services.metrics.targets import Targets
from services.metrics.web import register_views

log = logging.getLogger(__name__)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class LazyPool:
    """One asyncpg pool, created (and the schema migrated) on first use, in the worker's loop."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def __call__(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    # Migrated first, without the pool's statement timeout (and no pool
                    # left open when it fails: the caller retries).
                    await migrate_database(self._dsn)
                    self._pool = await create_pool(self._dsn, min_size=1, max_size=4)
        return self._pool


def build_app(settings: MetricsSettings, clock: Callable[[], datetime] = wall_clock) -> MetricsApp:
    app = create_app(settings)
    registry = CollectorRegistry()
    contract = Contract.load(settings.schemas_dir)
    catalogue = KpiCatalogue.load(
        event_types=contract.event_types, schemas_dir=contract.schemas_dir
    )
    units = UnitRegistry.from_dir(settings.units_dir)
    figures = Figures()
    targets = Targets(catalogue, units, lambda: Periods.at(clock()).day)
    metrics = PipelineMetrics(registry, sorted(contract.event_types))
    kpi_text = KpiText(figures, units, targets, clock)
    pool = LazyPool(settings.database_url.get_secret_value())
    worker_name = f"{settings.metrics_app_id}@{socket.gethostname()}:{settings.metrics_web_port}"
    # One watch: a flush that commits nothing and a claim PostgreSQL holds are one stall.
    stall = StallWatch(settings.metrics_stall_after_s)
    state = PartitionState(pool, settings.metrics_app_id, worker_name, figures, metrics, stall)
    grace = timedelta(days=settings.metrics_grace_days)
    skew = timedelta(seconds=settings.metrics_clock_skew_s)
    signer = record_signer(settings, contract, catalogue, units)
    preparer = Preparer(RecordDecoder(contract, units), contract, catalogue, grace, skew, signer)
    counting = Counting(
        preparer,
        state,
        clock,
        settings.metrics_flush_bytes,
        backlog_flush_interval_s=settings.metrics_backlog_flush_interval_s,
        stall=stall,
    )
    registry.register(StallCollector(counting.stall, counting.waiting_records))
    register_agents(app, settings, counting)
    snapshots = register_views(
        app,
        registry,
        kpi_text,
        figures=figures,
        units=units,
        targets=targets,
        clock=clock,
        pool=pool,
        worker_name=worker_name,
        settings=settings,
        stalled=counting.stalled,
    )
    counting.on_caught_up = snapshots.caught_up
    snapshots.reading_behind = lambda: counting.reading_behind()
    _wire_partitions(
        app,
        state,
        clock,
        LogCheck(settings.kafka_bootstrap_servers, registry, settings.kafka_security),
    )
    _register_timers(app, settings, state, targets, pool, clock, grace)
    return app


def _wire_partitions(
    app: MetricsApp, state: PartitionState, clock: Callable[[], datetime], check: LogCheck
) -> None:
    # Between assignments, the running consumer's fetches and checkpoints are checked
    # against the log too (review 89).
    watch = app.log_watch = LogWatch(check)
    app.timer(RECHECK_S)(watch.recheck)

    async def positions(tps: Sequence[TopicPartition]) -> dict[TopicPartition, int]:
        kept = [tp for tp in tps if tp in state.claims]
        gone = [tp for tp in state.claims if tp not in set(tps)]
        await state.revoke(gone)
        watch.forget(gone)
        new = [tp for tp in tps if tp not in state.claims]
        await state.assign(new, Periods.at(clock()))
        # Every partition, kept ones too, resumes where PostgreSQL says its figures end,
        # and only if that position belongs to the broker's log as it is now (a broker
        # that restarted without its log makes every member rejoin: kept partitions too).
        claimed = {
            tp: Stored(state.claims[tp].next_offset, state.claims[tp].last_record)
            for tp in tps
            if tp in state.claims
        }
        stored = claimed | await state.stored_positions(kept)
        checked = await retrying(
            "checking stored positions against the log",
            lambda: check.resume_at(stored),
            errors=(*INFRASTRUCTURE_ERRORS, KafkaError),
        )
        state.resumed_at(checked)
        return checked

    app.positions = positions

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(app: Any, revoked: set[Any], **kwargs: Any) -> None:
        tps = [(tp.topic, tp.partition) for tp in revoked]
        await state.revoke(tps)
        watch.forget(tps)


def _register_timers(
    app: MetricsApp,
    settings: MetricsSettings,
    state: PartitionState,
    targets: Targets,
    pool: LazyPool,
    clock: Callable[[], datetime],
    grace: timedelta,
) -> None:
    async def refresh_targets() -> None:
        async def read() -> list[Override] | None:
            async with (await pool()).acquire() as conn:
                return await store.target_overrides(conn)

        overrides = await retrying("reading target overrides", read)
        targets.overrides = overrides or {}

    pruner = store.Pruner(grace)

    async def prune() -> None:
        periods = Periods.at(clock())
        state.figures.prune(periods)

        async def run() -> tuple[int, int]:
            async with (await pool()).acquire() as conn:
                return await pruner(conn, periods)

        keys, buckets = await retrying("pruning", run)
        if keys or buckets:
            log.info("pruned %d dedup keys and %d buckets", keys, buckets)

    async def sweep_dossiers() -> None:
        await state.sweep_dossiers(clock())

    app.timer(settings.metrics_targets_refresh_s)(refresh_targets)
    app.timer(DOSSIER_SWEEP_S)(sweep_dossiers)
    app.timer(600.0)(prune)


def run_worker(settings: MetricsSettings, loglevel: str = "info") -> None:
    """Run one worker until SIGTERM/SIGINT (Faust installs the signal handlers)."""
    if settings.embedded_broker:
        install_no_leave_group_shim()
    settings.metrics_data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings)
    # The unit registry, contract and catalogue live as long as the process: keep them
    # out of the garbage collector's full scans, which a flush's garbage triggers often.
    gc.freeze()
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
