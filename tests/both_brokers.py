"""`make test`'s three pytest runs, side by side: every test that talks to a broker on tansu
and again on Apache Kafka; each test that needs no broker once, in a third run that
starts no broker (``TANSU_RUN``, ``KAFKA_RUN``, ``ALONE_RUN``).

The runs are independent (each starts its own PostgreSQL and broker, tests/servers.py)
and mostly wait (on brokers, worker restarts, alert durations): measured on this
project's 2-core machine, the tansu run used 6.5 min of CPU in 17.7 min. Run one after
the other they would take about 50 min, against CI's 30; side by side, the longest of
the three.

The tansu run writes to the terminal as it goes; the other two to log files, named at
the start (``tail -f`` them to follow), printed whole once all have ended. The exit
status is the first failing run's, else 0 (a run with nothing to run is not a
failure). Ctrl-C (or SIGTERM) reaches every run once, as an interrupt, so each stops
the servers it started; so does this process's death.

    python -m tests.both_brokers [pytest arguments for every run]
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType
from typing import IO

REPO = Path(__file__).resolve().parent.parent


NO_TESTS_RAN = 5
"""pytest's exit status when every test was deselected: the arguments named no test
that talks to a broker (``python -m tests.both_brokers tests/unit``), not a failure."""


def _pytest(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *args]


TANSU_RUN = "uses_broker"
KAFKA_RUN = "uses_broker"
ALONE_RUN = "not uses_broker"
"""What each run takes (``uses_broker`` is set in tests/conftest.py): every test that talks
to a broker runs in the tansu run and again in the Kafka run (but those of ``ONE_BROKER``,
in one of them); every test that needs none, once, in a third run beside both, which
starts no broker. Until 2026-12-06 the tansu run, then the Kafka run, took the slow
suites that need no broker (the alerts, dashboards and wall integration tests): with
those, the Kafka run took 23 minutes and the third run 7, against CI's 30."""


def _marked(args: list[str], run: str) -> list[str]:
    """``args`` with the run's marker expression; one among them is joined to it (pytest
    keeps the last ``-m``, which would replace it)."""
    out, marker = [], run
    given = iter(args)
    for arg in given:
        if arg == "-m":
            marker = f"({run}) and ({next(given, '')})"
        elif arg.startswith("-m") and len(arg) > 2 and arg[2] != "-":
            marker = f"({run}) and ({arg[2:]})"
        else:
            out.append(arg)
    return ["-m", marker, *out]


def _kafka_args(args: list[str]) -> list[str]:
    return ["-p", "no:cacheprovider", *_marked(args, KAFKA_RUN)]


def _child() -> None:
    """In each run before pytest starts. A shell's background job (``make test &``)
    ignores SIGINT, and Python keeps an ignored SIGINT ignored, so the interrupt that
    stops a run's servers would never reach it. And if this process dies unannounced (a
    SIGKILL), the run is interrupted as at a Ctrl-C: it is in a session of its own,
    which a kill of this one's process group does not reach (Linux's parent-death
    signal; elsewhere the run goes on to its end)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)
    except (OSError, AttributeError):
        pass


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _environment(broker: str, one_broker_run: bool = True) -> dict[str, str]:
    """The run's environment: its broker, and (the two broker runs) that the tests of
    tests/conftest.py ``ONE_BROKER`` run in one of them only."""
    environment = {**os.environ, "EGOV_TEST_BROKER": broker}
    if one_broker_run:
        environment["EGOV_TEST_ONE_BROKER_RUN"] = "1"
    return environment


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def _start(
    command: list[str], broker: str, out: IO[bytes] | None = None, one_broker_run: bool = True
) -> subprocess.Popen[bytes]:
    """One pytest run in a session of its own; into ``out`` if given, else the terminal."""
    return subprocess.Popen(
        _pytest(command),
        cwd=REPO,
        env=_environment(broker, one_broker_run),
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
        stdin=subprocess.DEVNULL if out is not None else None,
        start_new_session=True,
        preexec_fn=_child,
    )


def _ended(runs: list[subprocess.Popen[bytes]], started: float) -> list[tuple[int, float]]:
    """Each run's exit status and its own time: waited for together, so a short run's
    time is not the longer one's it ended behind."""
    took: dict[int, float] = {}
    statuses: dict[int, int] = {}
    while len(took) < len(runs):
        for index, run in enumerate(runs):
            if index in took:
                continue
            try:
                statuses[index] = run.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                continue
            took[index] = time.monotonic() - started
    return [(statuses[index], took[index]) for index in range(len(runs))]


def main(args: list[str]) -> int:
    log_dir = Path(tempfile.mkdtemp(prefix="egov-test-kafka-log-"))
    log = log_dir / "pytest-kafka.log"
    alone_log = log_dir / "pytest-no-broker.log"
    started = time.monotonic()
    runs: list[subprocess.Popen[bytes]] = []
    interrupted = False

    def interrupt(signum: int, frame: FrameType | None) -> None:
        # pytest stops its servers at an interrupt (pytest_unconfigure), not at SIGTERM;
        # each run is in a session of its own, so a terminal's Ctrl-C reaches it once,
        # from here. Once only: a second interrupt (Ctrl-C twice, CI's cancel sending
        # SIGINT then SIGTERM) would cut its servers' stop short.
        nonlocal interrupted
        if interrupted:
            return
        interrupted = True
        for run in runs:
            if run.poll() is None:
                run.send_signal(signal.SIGINT)

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    try:
        with log.open("wb") as out:
            # -p no:cacheprovider: the runs would otherwise overwrite each other's
            # .pytest_cache (last failed); the tansu run keeps it.
            runs.append(_start(_kafka_args(args), "kafka", out))
        print(f"Apache Kafka run started beside this one (pid {runs[0].pid}); its log: {log}")
        sys.stdout.flush()
        runs.append(_start(_marked(args, TANSU_RUN), "tansu"))
        with alone_log.open("wb") as out:
            no_broker = ["-p", "no:cacheprovider", *_marked(args, ALONE_RUN)]
            runs.append(_start(no_broker, "tansu", out, one_broker_run=False))
        print(f"the run of tests that need no broker too (pid {runs[2].pid}); its log: {alone_log}")
        sys.stdout.flush()
    except BaseException:
        # The tansu run could not start: the Kafka run stops its servers and ends too.
        interrupt(signal.SIGINT, None)
        for run in runs:
            run.wait()
        shutil.rmtree(log_dir, ignore_errors=True)
        raise
    kafka, tansu, alone = runs
    # The tansu run first: it writes to the terminal, the one a Ctrl-C comes from.
    (tansu_status, tansu_took), (kafka_status, kafka_took), (alone_status, alone_took) = _ended(
        [tansu, kafka, alone], started
    )
    for title, path in (
        (f"Apache Kafka run (EGOV_TEST_BROKER=kafka -m '{KAFKA_RUN}')", log),
        (f"run of tests that need no broker (-m '{ALONE_RUN}')", alone_log),
    ):
        print(f"\n{'=' * 30} {title} {'=' * 30}")
        sys.stdout.flush()
        if path.exists():
            sys.stdout.buffer.write(path.read_bytes())
            path.unlink()
    print(
        f"\ntansu run: exit {tansu_status}, {_minutes(tansu_took)}; "
        f"Apache Kafka run: exit {kafka_status}, {_minutes(kafka_took)}; "
        f"no-broker run: exit {alone_status}, {_minutes(alone_took)} (side by side)"
    )
    log_dir.rmdir()
    statuses = [tansu_status, kafka_status, alone_status]
    if NO_TESTS_RAN in statuses and set(statuses) != {NO_TESTS_RAN}:
        # A run had nothing to run (the arguments named only tests of another): not a
        # failure while another ran something.
        statuses = [0 if status == NO_TESTS_RAN else status for status in statuses]
    return next((status for status in statuses if status), 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
