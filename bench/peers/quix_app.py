"""The peer: the signing KPI as a Quix Streams application. Runs in the peer virtualenv.

``.venv/peer/bin/python bench/peers/quix_app.py BOOTSTRAP TOPIC GROUP EXPECTED DAY OUT``

State lives in Quix's RocksDB state store, per message key (the province, as ours):
one entry per dedup key (source, id) and one [numerator, denominator] per unit and day.
Configured for tansu: at-least-once (no transactions) and no idempotent producer
(tansu answers no InitProducerId). After EXPECTED messages it writes the figures and
its timing to OUT and stops.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # the shared KPI arithmetic and unit registry

from quixstreams import Application, State  # noqa: E402

from bench.peers.kpi import KPI_ID, SigningKpi, dedup_key  # noqa: E402


def main(bootstrap: str, topic: str, group: str, expected: int, day: str, out: Path) -> None:
    kpi = SigningKpi(date.fromisoformat(day))
    figures: dict[str, list[int]] = {}  # mirror of the state entries, for the report
    clock = {"first": 0.0, "seen": 0, "duplicates": 0}
    state_dir = tempfile.mkdtemp(prefix="quix-state-")
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="at-least-once",
        state_dir=state_dir,
        producer_extra_config={"enable.idempotence": False, "acks": "all"},
        # tansu holds a member's first JoinGroup for session.timeout / 2 (librdkafka's
        # default 45 s would cost 22 s of start-up): the same 6 s session as our workers.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000},
        loglevel="WARNING",
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
                name = f"{KPI_ID}:{unit}:{day}"
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
    bootstrap, topic, group, expected, day, out = sys.argv[1:7]
    main(bootstrap, topic, group, int(expected), day, Path(out))
