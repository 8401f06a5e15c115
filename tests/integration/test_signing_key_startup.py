"""A service refuses to start without a strong record signing key outside the embedded
broker (issue 15), saying why, before it consumes or accepts anything."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from services.common.settings import CommonSettings
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("service", "key", "why"),
    [
        ("ingest", "0123456789abcdef0123456789abcdef", "is too weak"),
        ("metrics", "", "is required"),
        ("metrics", "egov-dev-only-signing-key", "is the public default"),
    ],
)
def test_a_service_refuses_a_missing_public_or_weak_key(
    common_settings: CommonSettings,
    database_url: str,
    tmp_path: Path,
    service: str,
    key: str,
    why: str,
) -> None:
    env = service_env(common_settings, database_url)
    env.update(
        {
            "EGOV_EMBEDDED_BROKER": "false",  # as production
            "EGOV_RECORD_SIGNING_KEY": key,
            "EGOV_METRICS_DATA_DIR": str(tmp_path),
            "EGOV_METRICS_APP_ID": f"key-{service}",
        }
    )
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", service],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    # One line naming the variable, no traceback (review 72), exit status 2.
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"egov-pulse {service}: EGOV_RECORD_SIGNING_KEY {why}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    if key:
        assert key not in done.stderr  # never printed back
