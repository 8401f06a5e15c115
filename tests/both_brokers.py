"""`make test`'s two pytest runs, side by side: everything on tansu, and every test that
talks to a broker again on Apache Kafka.

The runs are independent (each starts its own PostgreSQL and broker, tests/servers.py)
and mostly wait (on brokers, worker restarts, alert durations): measured on this
project's 2-core machine, the tansu run used 6.5 min of CPU in 17.7 min. Run one after
the other they took ~29 min, against CI's 30; side by side, the longer of the two.

The tansu run writes to the terminal as it goes; the Kafka run to a log file, named at
the start (``tail -f`` it to follow), printed whole once both have ended. The exit
status is the first failing run's, else 0. Ctrl-C (or SIGTERM) reaches both runs as
an interrupt, so each stops the servers it started.

    python -m tests.both_brokers [pytest arguments for both runs]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent.parent


def _pytest(args: list[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "pytest", *extra, *args]


def _interruptible() -> None:
    """In the child before pytest starts: a shell's background job (``make test &``)
    ignores SIGINT, and Python keeps an ignored SIGINT ignored, so the interrupt that
    stops a run's servers would never reach it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _environment(broker: str) -> dict[str, str]:
    return {**os.environ, "EGOV_TEST_BROKER": broker}


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def main(args: list[str]) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="egov-test-kafka-log-"))
    log = log_dir / "pytest-kafka.log"
    started = time.monotonic()
    with log.open("wb") as out:
        # -p no:cacheprovider: the two runs would otherwise overwrite each other's
        # .pytest_cache (last failed); the tansu run keeps it.
        kafka = subprocess.Popen(
            _pytest(args, "-m", "uses_broker", "-p", "no:cacheprovider"),
            cwd=REPO,
            env=_environment("kafka"),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_interruptible,
        )
    print(f"Apache Kafka run started beside this one (pid {kafka.pid}); its log: {log}")
    sys.stdout.flush()
    tansu = subprocess.Popen(
        _pytest(args),
        cwd=REPO,
        env=_environment("tansu"),
        start_new_session=True,
        preexec_fn=_interruptible,
    )

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # pytest stops its servers at an interrupt (pytest_unconfigure), not at SIGTERM;
        # each run is in a session of its own, so a terminal's Ctrl-C reaches it once,
        # from here (a second interrupt would cut its servers' stop short).
        for run in (tansu, kafka):
            if run.poll() is None:
                run.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    tansu_status = tansu.wait()
    tansu_took = time.monotonic() - started
    kafka_status = kafka.wait()
    kafka_took = time.monotonic() - started
    print(f"\n{'=' * 30} Apache Kafka run (EGOV_TEST_BROKER=kafka -m uses_broker) {'=' * 30}")
    sys.stdout.flush()
    sys.stdout.buffer.write(log.read_bytes())
    print(
        f"\ntansu run: exit {tansu_status}, {_minutes(tansu_took)}; "
        f"Apache Kafka run: exit {kafka_status}, {_minutes(kafka_took)} (side by side)"
    )
    log.unlink()
    log_dir.rmdir()
    return tansu_status or kafka_status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
