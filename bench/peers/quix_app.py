"""The peer: one KPI as a Quix Streams application. Runs in the peer virtualenv.

``.venv/peer/bin/python bench/peers/quix_app.py BOOTSTRAP BROKER TOPIC GROUP KPI EXPECTED
DAY OUT`` (BROKER: tansu or kafka)

State lives in Quix's RocksDB state store, per message key (the province, as ours):
one entry per dedup key and one [numerator, denominator] per unit and day. At-least-once
on both brokers, as ours counts; what each broker needs beyond Quix's defaults is in
BROKER_SETTINGS. After EXPECTED messages it writes the figures and its timing to OUT and
stops.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the shared KPI arithmetic and unit registry

from quixstreams import Application, State  # noqa: E402

from bench.peers.kpi import DayKpi, dedup_key  # noqa: E402

BROKER_SETTINGS: dict[str, dict[str, Any]] = {
    "tansu": {
        # tansu answers no InitProducerId: no idempotent producer (Quix's default is on).
        "producer_extra_config": {"enable.idempotence": False, "acks": "all"},
        # tansu holds a member's first JoinGroup for session.timeout / 2 (librdkafka's
        # default 45 s would cost 22 s of start-up): the same 6 s session as our workers.
        "consumer_extra_config": {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
    },
    # Apache Kafka: Quix's defaults (idempotent producer, acks=all, 45 s session).
    "kafka": {},
}


def main(
    bootstrap: str,
    broker: str,
    topic: str,
    group: str,
    kpi_id: str,
    expected: int,
    day: str,
    out: Path,
) -> None:
    kpi = DayKpi(kpi_id, date.fromisoformat(day))
    figures: dict[str, list[int]] = {}  # mirror of the state entries, for the report
    clock = {"first": 0.0, "seen": 0, "duplicates": 0}
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        # Kafka could give exactly-once; ours is at-least-once with dedup, so is this.
        processing_guarantee="at-least-once",
        state_dir=tempfile.mkdtemp(prefix="quix-state-"),
        loglevel="WARNING",
        **BROKER_SETTINGS[broker],
    )

    def count(value: dict, state: State) -> None:  # type: ignore[type-arg]
        if not clock["seen"]:
            clock["first"] = time.perf_counter()
        clock["seen"] += 1
        key = "seen:" + dedup_key(value)
        if state.exists(key):
            clock["duplicates"] += 1
        else:
            state.set(key, 1)
            for unit, num, den in kpi.contributions(value):
                name = f"{kpi_id}:{unit}:{day}"
                pair = state.get(name, [0, 0])
                pair = [pair[0] + num, pair[1] + den]
                state.set(name, pair)
                figures[unit] = pair
        if clock["seen"] == expected:
            elapsed = time.perf_counter() - clock["first"]
            result = {
                "figures": figures,
                "processed": clock["seen"],
                "duplicates": clock["duplicates"],
                "seconds": elapsed,
                "rate": (expected - 1) / elapsed if elapsed > 0 else 0.0,
            }
            out.write_text(json.dumps(result))
            app.stop()

    source = app.topic(topic, value_deserializer="json", key_deserializer="str")
    app.dataframe(source).update(count, stateful=True)
    app.run()


if __name__ == "__main__":
    bootstrap, broker, topic, group, kpi_id, expected, day, out = sys.argv[1:9]
    main(bootstrap, broker, topic, group, kpi_id, int(expected), day, Path(out))
