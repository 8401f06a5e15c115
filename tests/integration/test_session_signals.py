"""A pytest run stopped by SIGTERM stops the servers its session started.

SIGTERM is how a run is stopped from outside (``kill``, a CI cancel, a supervisor). By
Python's default it ended pytest without teardown, and the session's PostgreSQL (a
daemon of its own) and broker ran on after it, one pair per stopped run
(tests/conftest.py, ``stop_on_sigterm``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.binaries import require

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

WAITING_TEST = """
import os
import time
from pathlib import Path


def test_waits_for_a_signal():
    Path(os.environ["READY_FILE"]).write_text(os.environ["EGOV_TEST_ADMIN_DSN"])
    time.sleep(120)
"""


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A folder the session's PostgreSQL (run as the 'postgres' account by root) can
    enter: pytest's own tmp_path is private to this user."""
    folder = Path(tempfile.mkdtemp(prefix="egov-signal-"))
    folder.chmod(0o755)
    yield folder
    # Where the fix fails, the server it left must not outlive this test either.
    for pid_file in folder.glob("egov-test-*/postgres/data/postmaster.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGINT)
    shutil.rmtree(folder, ignore_errors=True)


def answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_sigterm_stops_the_sessions_postgresql(scratch: Path) -> None:
    require("postgres")
    (scratch / "test_waits.py").write_text(WAITING_TEST)
    ready = scratch / "ready"
    env = {k: v for k, v in os.environ.items() if k not in ("EGOV_TEST_ADMIN_DSN", "DATABASE_URL")}
    env |= {"READY_FILE": str(ready), "TMPDIR": str(scratch)}
    run = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
         "--rootdir", str(scratch), str(scratch / "test_waits.py")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert run.poll() is None, run.communicate()[0].decode(errors="replace")
            assert time.monotonic() < deadline, "the inner session never started its test"
            time.sleep(0.2)
        port = int(ready.read_text().rsplit(":", 1)[1].split("/", 1)[0])
        assert answers(port), "the inner session's PostgreSQL is not listening"
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    # pytest's status for an interrupted session: the test did not pass in silence.
    assert run.returncode == 2, output
    assert "KeyboardInterrupt" in output, output
    assert not answers(port), f"PostgreSQL on {port} outlived the stopped run:\n{output}"
    assert not list(scratch.glob("egov-test-*")), "the session's server folder was left"
