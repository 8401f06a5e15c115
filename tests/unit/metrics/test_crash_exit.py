"""A crashing worker exits even when its shutdown hangs (the supervisor then restarts it)."""

from __future__ import annotations

import subprocess
import sys

from services.metrics.agents import EX_SOFTWARE

HANGING_SHUTDOWN = """
import time
from services.metrics.agents import exit_soon
exit_soon(0.2)
time.sleep(60)  # a shutdown that never ends
"""

CLEAN_EXIT = """
from services.metrics.agents import exit_soon
exit_soon(30)
print("stopped cleanly")
"""


def test_a_hanging_shutdown_ends_with_an_internal_error_status() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HANGING_SHUTDOWN], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == EX_SOFTWARE == 70


def test_a_clean_shutdown_is_not_held_up_by_the_timer() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CLEAN_EXIT], capture_output=True, timeout=20, check=False
    )
    assert done.returncode == 0
    assert done.stdout.strip() == b"stopped cleanly"
