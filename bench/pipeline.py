"""The metrics worker's counting pipeline in-process: its own capacity, without the broker.

The same code a worker runs per step (``Counting``: prepare, dedup and sum in one
PostgreSQL transaction per part, figures applied), fed the records ingest would produce,
with no Kafka, no Faust and no other process on the machine's two cores but PostgreSQL.
Beside the end-to-end replay it shows how much of the gap to the target is the pipeline
and how much is the broker, Faust and the sharing of two cores.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import orjson
from prometheus_client import CollectorRegistry

from bench.common import fresh_database, postgres_cpu_seconds
from services.common.contract import Contract
from services.common.kpis import KpiCatalogue
from services.common.signing import RecordSigner
from services.common.units import UnitRegistry
from services.metrics import dossiers, dossierstore
from services.metrics.agents import Counting
from services.metrics.decoding import RecordDecoder
from services.metrics.exposition import PipelineMetrics
from services.metrics.figures import Figures
from services.metrics.heap import collect_young_every
from services.metrics.periods import Periods
from services.metrics.pipeline import DeadLetter, PartitionState, Preparer, Record
from services.metrics.settings import MetricsSettings

STEP_RECORDS = 1000
"""Records per step, as ``EGOV_METRICS_BATCH_SIZE``."""


@dataclass(frozen=True)
class InProcess:
    """What ``counting_rate`` measured."""

    rate: float
    """Events/s."""
    flushes: int
    cpu_s: float
    """This process's CPU time while counting: the counting's Python work."""
    postgres_cpu_s: float
    """PostgreSQL's CPU time meanwhile (its backends, WAL writer and checkpointer)."""


async def counting_rate(
    messages: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]],
    signer: RecordSigner,
    events: int,
) -> InProcess:
    """Count ``messages`` (``events`` in all) on partition 0 of their topics, in steps of
    ``STEP_RECORDS`` records, on a fresh database.

    The CPU of both sides says what bounds the row on two cores: neither the Python
    process nor PostgreSQL can take more than one core each, and the counting's wall
    time is at least the larger of the two (more where one waits for the other: the
    last flush has no decoding left to overlap)."""
    records = [
        Record(topic, 0, offset, key, value, tuple(headers or ()))
        for offset, (topic, key, value, headers) in enumerate(messages)
    ]
    contract = Contract.load()
    catalogue = KpiCatalogue.load(event_types=contract.event_types)
    preparer = Preparer(
        RecordDecoder(contract, UnitRegistry.from_dir()),
        contract,
        catalogue,
        timedelta(days=7),
        signer=signer,
    )
    async with fresh_database("egov_bench_pipeline") as dsn:
        # Every connection opened before the clock starts, none closed until it stops:
        # PostgreSQL's CPU is read from the processes alive at both ends.
        pool = await asyncpg.create_pool(dsn, min_size=4, max_size=4)

        async def get_pool() -> asyncpg.Pool:
            return pool

        try:
            registry = CollectorRegistry()
            metrics = PipelineMetrics(registry, sorted(contract.event_types))
            state = PartitionState(get_pool, "bench-pipeline", "bench", Figures(), metrics)
            await state.assign(sorted({(r.topic, 0) for r in records}), Periods.at(_now()))
            counting = Counting(preparer, state, _now, MetricsSettings().metrics_flush_bytes)

            async def refuse(dead: DeadLetter) -> None:
                raise RuntimeError(f"a benchmark record was dead-lettered: {dead.reason}")

            # The collector as the metrics command sets it in a worker (services/metrics/
            # heap.py); this process's own threshold again afterwards, for the ceiling.
            threshold = gc.get_threshold()
            collect_young_every(MetricsSettings().metrics_gc_gen0_threshold)
            try:
                started, cpu = time.perf_counter(), time.process_time()
                postgres = postgres_cpu_seconds()
                for i in range(0, len(records), STEP_RECORDS):
                    await counting.step(records[i : i + STEP_RECORDS], refuse)
                await counting.drain()
                elapsed = time.perf_counter() - started
                cpu = time.process_time() - cpu
                postgres = postgres_cpu_seconds() - postgres
            finally:
                gc.set_threshold(*threshold)
            flushes = registry.get_sample_value("egov_metrics_flushes_total") or 0
            return InProcess(events / elapsed, int(flushes), cpu, postgres)
        finally:
            await pool.close()


def decode_and_sum_rate(
    messages: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]],
    signer: RecordSigner,
    events: int,
) -> float:
    """Events/s of the counting without its database: ``Preparer.prepare`` in steps of
    ``STEP_RECORDS`` records, then each partition batch's sums (``sum_ahead``) and
    deltas, as a flush would have them; median of five passes, in this process."""
    records = [
        Record(topic, 0, offset, key, value, tuple(headers or ()))
        for offset, (topic, key, value, headers) in enumerate(messages)
    ]
    contract = Contract.load()
    catalogue = KpiCatalogue.load(event_types=contract.event_types)
    rates = []
    for _ in range(5):
        decoder = RecordDecoder(contract, UnitRegistry.from_dir())
        preparer = Preparer(decoder, contract, catalogue, timedelta(days=7), signer=signer)
        started = time.perf_counter()
        now = _now()
        for i in range(0, len(records), STEP_RECORDS):
            for batch in preparer.prepare(records[i : i + STEP_RECORDS], now).batches.values():
                batch.deltas()
        rates.append(events / (time.perf_counter() - started))
    return sorted(rates)[2]


def ledger_rate(
    messages: Sequence[tuple[str, bytes, bytes, list[tuple[str, bytes]] | None]],
    signer: RecordSigner,
    events: int,
) -> tuple[float, int]:
    """(events/s, dossier facts) of the on-time ledger's own decisions alone: each batch's
    dossier events through ``dossiers.apply`` as ``dossierstore.apply`` hands them over
    (every dossier new to the flush, as on the backlog), then the figures of the ticks;
    no decoding (the records are decoded first, untimed) and no database. Events/s over
    every event of the records, so it reads beside the other rows; best of three passes,
    in this process.

    Part of the Python work the counting's semantics require per event (one state
    machine step per dossier event, "one dossier, one count"): whatever PostgreSQL costs,
    the in-process counting cannot run faster than this and the decoding together."""
    records = [
        Record(topic, 0, offset, key, value, tuple(headers or ()))
        for offset, (topic, key, value, headers) in enumerate(messages)
    ]
    contract = Contract.load()
    catalogue = KpiCatalogue.load(event_types=contract.event_types)
    decoder = RecordDecoder(contract, UnitRegistry.from_dir())
    preparer = Preparer(decoder, contract, catalogue, timedelta(days=7), signer=signer)
    now = _now()
    tallies = []
    for i in range(0, len(records), STEP_RECORDS):
        for batch in preparer.prepare(records[i : i + STEP_RECORDS], now).batches.values():
            batch.seal()
            tallies += batch.tallies
    best = float("inf")
    facts = 0
    for _ in range(3):
        started = time.perf_counter()
        facts = 0
        for tally in tallies:
            found = dossierstore.events_of(tally)
            facts += len(found)
            dossiers.deltas_of(dossiers.apply({}, found)[1])
        best = min(best, time.perf_counter() - started)
    return events / best, facts


def decode_and_dict_rate(
    messages: Sequence[tuple[str, bytes, bytes, object]], events: int
) -> float:
    """Events/s of the least a counter can do with these records in Python: parse each
    record's JSON with orjson and add each event to a dict by (type, unit). A ceiling for
    the in-process counting (issue 18), which also validates, resolves units, dedups and
    sums every KPI: best of three passes, in this process."""
    best = 0.0
    for _ in range(3):
        counts: dict[tuple[str, str], int] = {}
        started = time.perf_counter()
        for _, _, value, _ in messages:
            parsed = orjson.loads(value)
            for e in parsed if isinstance(parsed, list) else (parsed,):
                key = (e["type"], e["unit"])
                counts[key] = counts.get(key, 0) + 1
        best = max(best, events / (time.perf_counter() - started))
    return best


def cpu_text(counted: InProcess, events: int) -> str:
    """The CPU of both sides of the in-process counting, an event and against its wall."""
    wall = events / counted.rate
    return (
        f"{counted.cpu_s / events * 1e6:.2f} µs in this process (busy "
        f"{counted.cpu_s / wall:.0%} of the time), {counted.postgres_cpu_s / events * 1e6:.2f} "
        f"µs in PostgreSQL ({counted.postgres_cpu_s / wall:.0%} of a core)"
    )


def _now() -> datetime:
    return datetime.now(UTC)


def main(argv: Sequence[str]) -> None:
    """``python -m bench.pipeline [EVENTS] [singles]``: the in-process row alone, on the
    metrics benchmark's backlog of EVENTS events (default 100,000) packed and signed as
    ingest does, on a PostgreSQL of its own (durable, as in ``make bench``); then the same
    counting without the database (decode and sum). With ``singles``: on the events of
    its one-event-per-message row instead, published straight to Kafka (no headers)."""
    import asyncio

    from bench.__main__ import run_database
    from bench.metrics import Harness, backlog_messages, current_units, single_messages

    events = int(argv[0]) if argv else 100_000
    with run_database():
        # No broker is reached: the harness lends its signer, validator and topic names.
        h = Harness("127.0.0.1:1", "")
        pairs = current_units(UnitRegistry.from_dir(), 300)
        if "singles" in argv[1:]:
            backlog = single_messages(pairs, 0, events, h)
        else:
            backlog = h.as_ingest(backlog_messages(pairs, 0, events, h))
        # The backlog (and the harness that made it) stays in memory for the whole run,
        # unlike a worker's records, which are garbage after their fetch: out of the
        # collector's sight, or each full collection walks it (~0.1 s of ~0.9 s of
        # Python time for 100,000 events). What the counting makes itself is collected
        # as in a worker (gc.freeze keeps only the objects that exist now).
        gc.freeze()
        counted = asyncio.run(counting_rate(backlog, h.signer, events))
    print(
        f"counting pipeline in-process: {counted.rate:,.0f} events/s",
        f"({events:,} events, {counted.flushes} flushes)",
    )
    print(f"  CPU an event: {cpu_text(counted, events)}")
    decoded = decode_and_sum_rate(backlog, h.signer, events)
    print(f"decode and sum, no database: {decoded:,.0f} events/s")
    ledger, facts = ledger_rate(backlog, h.signer, events)
    print(f"on-time ledger decisions alone: {ledger:,.0f} events/s ({facts:,} dossier facts)")
    print(f"orjson decode-and-dict ceiling: {decode_and_dict_rate(backlog, events):,.0f} events/s")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
