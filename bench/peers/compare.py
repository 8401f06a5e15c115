"""Side by side: each KPI of :data:`PEER_KPIS` in our metrics service and in Quix Streams.

One broker (tansu, or Apache Kafka in the runner's second pass); per KPI one topic
filled with the same events before either engine starts, then a fresh run of each on
it, each timed from its first event (not the publisher's time, not its start-up) by its
own clock: Quix inside its process, ours by its flushes' commits in its database. Each
engine's figures are checked equal to the plain computation of :mod:`bench.peers.kpi`
before its speed is reported; an engine whose figures differ gets a row saying so, not
a speed.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import datetime
from typing import Final

from bench.common import Row, broker_name, check_mode, embedded_broker, row
from bench.peers.events import PEER_KPIS, Event, PeerKpi, publish
from bench.peers.kpi import DayKpi, Figures, reference_figures
from bench.peers.ours import ours_rows, run_ours, topics
from bench.peers.quix import quix_rows, run_quix
from bench.references import create_topic
from services.common.units import VN_TZ

SIZES: Final = {"quick": 10_000, "full": 100_000}  # events per KPI
# Per engine and KPI; they stop a hang within the runner's budget (bench/__main__.py):
# 2 KPIs x 2 engines x 25 s < 120 s in quick mode (a run takes ~10 s).
TIMEOUT_S: Final = {"quick": 25.0, "full": 180.0}
PARTITIONS: Final = 6
# tansu's DescribeConfigs returns only what was set at creation; Quix derives its changelog
# topics from the source's retention and fails with KeyError('retention.ms') without them.
# Apache Kafka describes every config: nothing to set.
TOPIC_CONFIGS: Final = {
    "tansu": {"retention.ms": "604800000", "retention.bytes": "-1"},
    "kafka": {},
}


def run(mode: str) -> list[Row]:
    check_mode(mode)
    now = datetime.now(VN_TZ)
    rows: list[Row] = []
    with embedded_broker() as broker:
        for kpi in PEER_KPIS:
            rows += compare(broker.bootstrap_servers, kpi, now, mode)
    return _side_by_side(rows)


def compare(bootstrap: str, kpi: PeerKpi, now: datetime, mode: str) -> list[Row]:
    """Ours, then Quix, over the same events of ``kpi``; rows of both, ours first."""
    events = kpi.events(SIZES[mode], now)
    expected = reference_figures(events, DayKpi(kpi.id, now.date()))
    base = f"bench-peer-{uuid.uuid4().hex[:6]}.{kpi.id}"
    topic = topics(base)[kpi.family]
    note = f"{len(events):,} events ({len(expected)} units) on {PARTITIONS} partitions"
    _create(bootstrap, topic)
    # Filled before either engine starts: both are timed from their first event on.
    published = asyncio.run(_publish(bootstrap, topic, events, now))
    note += f"; published first ({published:,.0f} events/s), then each engine started"
    ours = _ours(bootstrap, base, kpi, events, expected, mode, note)
    try:
        day = now.date().isoformat()
        quix = run_quix(bootstrap, broker_name(), topic, kpi.id, len(events), day, TIMEOUT_S[mode])
    except RuntimeError as error:
        return ours + quix_rows(error, kpi.id, expected, note)
    return ours + quix_rows(quix, kpi.id, expected, note)


def _ours(
    bootstrap: str,
    base: str,
    kpi: PeerKpi,
    events: list[Event],
    expected: Figures,
    mode: str,
    note: str,
) -> list[Row]:
    try:
        measured = asyncio.run(
            run_ours(bootstrap, base, kpi, events, expected, TIMEOUT_S[mode], PARTITIONS)
        )
    except Exception as error:  # the service is a separate piece of work: report, go on
        return ours_rows(error, kpi.id, expected, note)
    return ours_rows(measured, kpi.id, expected, note)


def _create(bootstrap: str, topic: str) -> None:
    asyncio.run(create_topic(bootstrap, topic, PARTITIONS, TOPIC_CONFIGS[broker_name()]))


async def _publish(bootstrap: str, topic: str, events: list[Event], now: datetime) -> float:
    """Every event to ``topic``; the publisher's rate (events/s), for the notes."""
    started = time.perf_counter()
    await publish(bootstrap, topic, events, now)
    return len(events) / (time.perf_counter() - started)


def _side_by_side(rows: list[Row]) -> list[Row]:
    """Ours beside Quix where both were measured (and right): ratio = ours / Quix."""
    by_metric = {r["metric"]: r for r in rows}
    linked = []
    for r in rows:
        # Each of ours' rates (from its assignment, to /v1/kpis) beside Quix's one rate.
        head, throughput, _ = r["metric"].partition(" throughput")
        peer = by_metric.get(head.replace("ours:", "quix:") + throughput)
        if r["metric"].startswith("ours:") and r["unit"] != "bool" and peer:
            r = row(
                r["benchmark"],
                r["metric"],
                r["value"],
                r["unit"],
                reference=peer["metric"],
                reference_value=peer["value"],
                notes=r["notes"],
            )
        linked.append(r)
    return linked
