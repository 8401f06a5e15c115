"""Review 71: what Prometheus and the dashboards see while metrics workers move partitions.

Two real workers of one consumer group on the broker under test and PostgreSQL, scraped
every second by a real Prometheus that loads deploy/prometheus/rules/ as they are (only
the evaluation interval shortened, tests/integration/dashboards/prometheus.py). Each
worker exports, with its own ``instance`` label, the figures of the partitions it owns
right now (docs/metrics.md, "Several workers"); the recording rules and the dashboards
join those copies with ``max by (kpi, unit)``, a choice made when two Faust workers
exported the same table state (the comment atop egov-recording.yml). The workers no
longer do: a (kpi, unit) counter is exported by whoever owns its partition, so

- after a partition moves, the counted increase of a unit is split between the old
  owner's series and the new owner's, inside every rate window: ``max by`` keeps one
  part of the numerator and one part of the denominator, maybe of different workers
  (``test_rate_ratio_after_a_partition_moves_counts_both_owners``);
- a province whose events lie in partitions of two workers is exported by both, each
  with its part (the rows "stay additive", docs/metrics.md), and ``max by`` shows one
  part (``test_province_split_over_two_workers_rolls_up_whole``);
- what the new owner counts before Prometheus first scrapes its copy of a moved series
  (the records published while the partition had no owner, counted in the claim's first
  flush, well inside a 15 s scrape interval) is in that copy's first sample, which
  rate() and increase() never read as an increase: those events are missing from every
  rate window, whatever the aggregation
  (``test_events_counted_at_the_claim_reach_rate_windows``).

Fixed 2026-12-06: records keyed by something else than their province are published
again keyed by it and counted on its partition (the second; services/metrics/
rekeying.py). Fixed later that day, the first and third: the all-time totals are the stored
figure whoever exports it, so the rules join the owners' copies first (one series per
(kpi, unit) across every move, ``unit:egov_kpi_*_total:max``) and difference that
(deploy/prometheus/rules/egov-recording.yml); summing the owners' rates, tried before,
counted twice a partition that moved away and came back (review 74).
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.dashboards.prometheus import (
    RULES_DIR,
    Prometheus,
    prometheus_process,
    running_prometheus,
)
from tests.integration.metrics.harness import WorkerProcess, document, stored_figure, workers

pytestmark = pytest.mark.integration

SIGNING = "document_signing"
ELECTRONIC = "document_electronic"
PROVINCE = "19"  # Thái Nguyên
COMMUNE = "01843"  # Phường Bắc Kạn, in 19 since the reform
COMMUNES_19 = ("01843", "01840", "01849")


def rule_expr(record: str) -> str:
    """The expression of one recording rule of deploy/prometheus/rules/, as shipped."""
    for path in sorted(RULES_DIR.glob("*.yml")):
        for group in yaml.safe_load(path.read_text("utf-8"))["groups"]:
            for rule in group["rules"]:
                if rule.get("record") == record:
                    return str(rule["expr"])
    raise AssertionError(f"no recording rule {record}")


def signed_doc(n: str, unit: str, signed: bool) -> bytes:
    event = document(f"r71-{n}", unit)
    event["source"] = "urn:test:review71"
    event["data"]["signed"] = signed
    return orjson.dumps(event)


async def send(
    settings: CommonSettings, values: list[bytes], key: bytes, partition: int | None = None
) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        futures = [
            await producer.send(settings.topic_documents, value, key=key, partition=partition)
            for value in values
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()


def partitions(proc: WorkerProcess) -> set[str]:
    try:
        answer = httpx.get(proc.url + "/v1/activity", timeout=5).json()
    except (httpx.TransportError, ValueError):
        return set()
    return set(answer.get("partitions", []))


def wait_split(procs: list[WorkerProcess], total: int) -> None:
    """Until every worker owns some partitions, none twice, all ``total`` owned."""
    deadline = time.monotonic() + 60
    while True:
        owned = [partitions(p) for p in procs]
        union = set().union(*owned)
        if all(owned) and len(union) == total and sum(map(len, owned)) == total:
            return
        assert time.monotonic() < deadline, f"partitions never split: {owned}"
        time.sleep(0.3)


def exported(proc: WorkerProcess, name: str, kpi: str, unit: str, **more: str) -> float | None:
    try:
        samples = proc.samples(name)
    except httpx.TransportError:
        return None
    for labels, value in samples:
        if (
            labels["kpi"] == kpi
            and labels["unit"] == unit
            and all(labels.get(k) == v for k, v in more.items())
        ):
            return value
    return None


def wait_scraped(prom: Prometheus, expr: str, value: float, samples: int = 3) -> None:
    """Until Prometheus holds ``samples`` scrapes of ``expr`` at ``value`` (one series)."""
    deadline = time.monotonic() + 60
    while True:
        got = prom.query(f"count_over_time((({expr}) == {value})[1m:1s])")
        if got and float(got[0]["value"][1]) >= samples:
            return
        assert time.monotonic() < deadline, f"{expr} never scraped at {value}: {prom.query(expr)}"
        time.sleep(0.5)


def wait_owner(procs: list[WorkerProcess], kpi: str, unit: str, total: float) -> WorkerProcess:
    deadline = time.monotonic() + 60
    while True:
        for proc in procs:
            if exported(proc, "egov_kpi_denominator_total", kpi, unit) == total:
                return proc
        assert time.monotonic() < deadline, "\n".join(p.tail() for p in procs)
        time.sleep(0.3)


def value_of(result: list[dict[str, Any]], **labels: str) -> float | None:
    for series in result:
        if all(series["metric"].get(k) == v for k, v in labels.items()):
            return float(series["value"][1])
    return None


def test_rate_ratio_after_a_partition_moves_counts_both_owners(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """A commune signs none of 40 documents, its worker is SIGKILLed, then signs all of
    the next 40 on the survivor: over the last 5 minutes it signed 40 of 80."""
    asyncio.run(ensure_topics(common_settings))
    (tmp_path / "prom").mkdir()
    key = PROVINCE.encode()
    with workers(common_settings, database_url, tmp_path, 2) as procs:
        targets = {"metrics": [f"127.0.0.1:{p.port}" for p in procs]}
        with running_prometheus(tmp_path / "prom", targets) as prom:
            wait_split(procs, 3 * common_settings.topic_partitions)
            series = f'egov_kpi_denominator_total{{kpi="{SIGNING}",unit="{COMMUNE}"}}'
            # The unit's counter exists before the measured events (a series' first
            # sample is never an increase).
            asyncio.run(send(common_settings, [signed_doc("warm", COMMUNE, True)], key))
            owner = wait_owner(procs, SIGNING, COMMUNE, 1)
            wait_scraped(prom, series, 1)
            unsigned = [signed_doc(f"u{i}", COMMUNE, False) for i in range(40)]
            asyncio.run(send(common_settings, unsigned, key))
            assert wait_owner(procs, SIGNING, COMMUNE, 41) is owner
            wait_scraped(prom, series, 41)

            owner.kill()
            survivor = next(p for p in procs if p is not owner)
            assert wait_owner([survivor], SIGNING, COMMUNE, 41) is survivor
            # Prometheus has seen the survivor's copy before anything new is counted.
            on_survivor = series.replace("}", f',instance="127.0.0.1:{survivor.port}"}}')
            wait_scraped(prom, on_survivor, 41)
            signed = [signed_doc(f"s{i}", COMMUNE, True) for i in range(40)]
            asyncio.run(send(common_settings, signed, key))
            wait_owner([survivor], SIGNING, COMMUNE, 81)
            wait_scraped(prom, on_survivor, 81, samples=5)

            # Nothing accepted was lost: the database and the survivor's day say 41/81.
            assert asyncio.run(stored_figure(database_url, SIGNING, COMMUNE)) == (41, 81)
            assert exported(survivor, "egov_kpi_numerator", SIGNING, COMMUNE, window="day") == 41
            assert exported(survivor, "egov_kpi_denominator", SIGNING, COMMUNE, window="day") == 81
            # Both owners' series lie in the 5-minute window, each with its part.
            parts = prom.query(f"increase({series}[5m])")
            assert len(parts) == 2, parts

            # The hour as the survivor sums it (the rule the dashboards may read): 41/81.
            hour = value_of(
                prom.query(rule_expr("unit:egov_kpi_ratio:rate1h")), kpi=SIGNING, unit=COMMUNE
            )
            assert hour is not None and abs(hour - 41 / 81) < 1e-9, hour
            # The joined all-time totals over the last 5 minutes: 40 signed of 80.
            num, den = (
                f'unit:egov_kpi_{part}_total:max{{kpi="{SIGNING}",unit="{COMMUNE}"}}'
                for part in ("numerator", "denominator")
            )
            joined = prom.query(f"delta({num}[5m]) / delta({den}[5m])")
            ratio = float(joined[0]["value"][1]) if joined else None
            assert ratio is not None
            assert abs(ratio - 0.5) < 0.1, (
                f"the joined totals read {ratio:.3f} for 40 signed of 80 in the window; "
                f"per owner: {[(p['metric']['instance'], p['value'][1]) for p in parts]}"
            )


def test_province_split_over_two_workers_rolls_up_whole(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """Thái Nguyên's documents in every partition of the topic (an integrator keying
    by commune, or not at all), owned by two workers: the dashboards' province figure
    is what the database holds. Counted where they landed, each worker held a part and
    ``max by`` showed one; now the workers publish them again keyed by the province
    (services/metrics/rekeying.py), and say so (EgovRecordsMiskeyed)."""
    asyncio.run(ensure_topics(common_settings))
    (tmp_path / "prom").mkdir()
    per_partition = 10
    count = common_settings.topic_partitions
    with workers(common_settings, database_url, tmp_path, 2) as procs:
        targets = {"metrics": [f"127.0.0.1:{p.port}" for p in procs]}
        with running_prometheus(tmp_path / "prom", targets) as prom:
            wait_split(procs, 3 * count)
            run = uuid.uuid4().hex[:6]
            for partition in range(count):
                values = [
                    signed_doc(f"{run}-{partition}-{i}", COMMUNES_19[partition % 3], True)
                    for i in range(per_partition)
                ]
                asyncio.run(send(common_settings, values, None, partition=partition))
            total = per_partition * count
            deadline = time.monotonic() + 60
            while asyncio.run(stored_figure(database_url, ELECTRONIC, PROVINCE))[1] != total:
                assert time.monotonic() < deadline, "\n".join(p.tail() for p in procs)
                time.sleep(0.3)
            raw = f'egov_kpi_denominator{{kpi="{ELECTRONIC}",unit="{PROVINCE}",window="day"}}'
            deadline = time.monotonic() + 60
            while True:
                per_worker = prom.query(raw)
                if max((float(s["value"][1]) for s in per_worker), default=0) == total:
                    break
                assert time.monotonic() < deadline, per_worker
                time.sleep(0.5)
            # Nothing accepted was lost, none counted twice, and the moves are said.
            assert asyncio.run(stored_figure(database_url, ELECTRONIC, PROVINCE))[1] == total
            # The forwarding worker's counter reaches Prometheus at its own next scrape.
            topic = common_settings.topic_documents
            rekeyed = f'sum(egov_events_rekeyed_total{{topic="{topic}"}})'
            deadline = time.monotonic() + 30
            while True:
                moved = prom.query(rekeyed)
                if [float(s["value"][1]) for s in moved] == [total]:
                    break
                assert time.monotonic() < deadline, moved
                time.sleep(0.5)
            time.sleep(3)  # a few evaluations of the recorded rule
            shown = value_of(
                prom.query(rule_expr("province:egov_kpi_denominator:day")),
                kpi=ELECTRONIC,
                unit=PROVINCE,
            )
            assert shown == total, (
                f"province:egov_kpi_denominator:day shows {shown} for {PROVINCE}; the database "
                f"holds {total}, the workers export "
                f"{[(s['metric']['instance'], s['value'][1]) for s in per_worker]}"
            )


def test_events_counted_at_the_claim_reach_rate_windows(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """40 signed documents published while the commune's worker is dead (SIGKILL) are
    counted by the survivor in the flush after its claim. Prometheus scrapes every 15 s
    in deploy/prometheus/prometheus.yml; here it is paused from the kill until the
    survivor has counted them, the case of every scrape but one in a hundred."""
    asyncio.run(ensure_topics(common_settings))
    (tmp_path / "prom").mkdir()
    key = PROVINCE.encode()
    with workers(common_settings, database_url, tmp_path, 2) as procs:
        targets = {"metrics": [f"127.0.0.1:{p.port}" for p in procs]}
        with prometheus_process(tmp_path / "prom", targets) as (prom, prom_proc):
            wait_split(procs, 3 * common_settings.topic_partitions)
            series = f'egov_kpi_denominator_total{{kpi="{SIGNING}",unit="{COMMUNE}"}}'
            asyncio.run(send(common_settings, [signed_doc("warm", COMMUNE, True)], key))
            owner = wait_owner(procs, SIGNING, COMMUNE, 1)
            wait_scraped(prom, series, 1)
            survivor = next(p for p in procs if p is not owner)

            prom_proc.send_signal(signal.SIGSTOP)
            try:
                owner.kill()
                backlog = [signed_doc(f"b{i}", COMMUNE, True) for i in range(40)]
                asyncio.run(send(common_settings, backlog, key))
                assert wait_owner([survivor], SIGNING, COMMUNE, 41) is survivor
            finally:
                prom_proc.send_signal(signal.SIGCONT)
            on_survivor = series.replace("}", f',instance="127.0.0.1:{survivor.port}"}}')
            wait_scraped(prom, on_survivor, 41, samples=5)

            # Nothing accepted was lost: the database and the survivor's day say 41/41.
            assert asyncio.run(stored_figure(database_url, SIGNING, COMMUNE)) == (41, 41)
            assert exported(survivor, "egov_kpi_denominator", SIGNING, COMMUNE, window="day") == 41
            # What the dashboards read: the owners' copies joined into one series.
            joined = f'unit:egov_kpi_denominator_total:max{{kpi="{SIGNING}",unit="{COMMUNE}"}}'
            seen = prom.query(f"delta({joined}[5m])")
            increase = float(seen[0]["value"][1]) if seen else 0.0
            samples = [
                (r["metric"]["instance"], [v[1] for v in r["values"]])
                for r in prom.query(f"{series}[5m]")
            ]
            assert abs(increase - 40) < 8, (
                f"the 5-minute increase of {COMMUNE}'s documents reads {increase:.1f}, 40 were "
                f"counted; samples per worker: {samples}"
            )
