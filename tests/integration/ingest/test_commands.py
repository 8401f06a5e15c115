"""``egov-pulse keys`` and ``egov-pulse backfill`` as an operator runs them."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from services.common.broker import free_port
from services.common.kafka import ensure_topics
from services.common.settings import CommonSettings
from tests.integration.ingest.harness import HAM_RONG, event, ids, topic_events
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_keys_create_list_revoke(common_settings: CommonSettings, database_url: str) -> None:
    env = service_env(common_settings, database_url)
    made = cli(
        [
            "keys",
            "create",
            "--name",
            "tdoffice-38",
            "--units",
            "38",
            "--types",
            "vn.egov.document.issued",
            "--sources",
            "https://tdoffice.thanhhoa.gov.vn/,urn:egov:tdoffice:38",
        ],
        env,
    )
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert token.startswith("egp_") and " " not in token
    again = cli(
        [
            "keys",
            "create",
            "--name",
            "tdoffice-38",
            "--units",
            "38",
            "--types",
            "vn.egov.document.issued",
            "--sources",
            "https://tdoffice.thanhhoa.gov.vn/,urn:egov:tdoffice:38",
        ],
        env,
    )
    # Refusals go to stderr: stdout is where a script reads the key (tail -n 1).
    assert again.returncode != 0 and "exists" in again.stderr and again.stdout == ""
    listed = cli(["keys", "list"], env)
    assert "tdoffice-38" in listed.stdout and "live" in listed.stdout
    assert "https://tdoffice.thanhhoa.gov.vn/,urn:egov:tdoffice:38" in listed.stdout
    bound = cli(["keys", "sources", "tdoffice-38", "--sources", "urn:egov:tdoffice:"], env)
    assert bound.returncode == 0, bound.stdout
    assert "  urn:egov:tdoffice:\n" in cli(["keys", "list"], env).stdout
    assert cli(["keys", "sources", "nobody", "--sources", "urn:x:"], env).returncode == 1
    assert cli(["keys", "sources", "tdoffice-38", "--sources", ","], env).returncode == 2
    # The secret is everything after the id: it may itself hold "_" (URL-safe base64),
    # so splitting at the last one could leave a fragment as short as "0".
    secret = token.split("_", 2)[2]
    assert len(secret) == 43
    assert secret not in listed.stdout + listed.stderr + made.stderr
    assert cli(["keys", "revoke", "tdoffice-38"], env).returncode == 0
    assert "revoked" in cli(["keys", "list"], env).stdout
    assert cli(["keys", "revoke", "tdoffice-38"], env).returncode == 1
    bad = cli(
        ["keys", "create", "--name", "x", "--units", "99999", "--types", "nope", "--sources", ""],
        env,
    )
    assert bad.returncode == 2 and "99999" in bad.stderr and "nope" in bad.stderr
    assert "--sources may not be empty" in bad.stderr and bad.stdout == ""


async def test_backfill_publishes_old_history_and_reports_refused_lines(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    old = datetime(2024, 3, 5, 9, tzinfo=UTC)  # far beyond the HTTP horizon
    good = [event(HAM_RONG, at=datetime(2025, 9, 1, tzinfo=UTC)), event("16279", at=old)]
    lines = [
        orjson.dumps(good[0]).decode(),
        "",
        "{not json",
        orjson.dumps(event(unit="99999", at=old)).decode(),
        orjson.dumps(good[1]).decode(),
        orjson.dumps(event(at=datetime(2099, 1, 1, tzinfo=UTC))).decode(),
        orjson.dumps(event() | {"time": "0001-01-01T00:00:00+14:00"}).decode(),
        orjson.dumps(event() | {"time": "9999-12-31T23:59:59Z"}).decode(),
    ]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(lines) + "\n")
    result = cli(
        ["backfill", str(path), "--batch-size", "2", "--unbound"],
        service_env(common_settings, database_url),
    )
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "line 3: /: not valid JSON" in out
    assert "line 4: /unit:" in out
    assert "line 6: /time:" in out and "future" in out
    # Nonsense years are refused per line, naming the field, the value and the rule.
    for line, value in ((7, "0001-01-01T00:00:00+14:00"), (8, "9999-12-31T23:59:59Z")):
        assert f"line {line}: /time: 'time': '{value}' is out of range: years 2000 to 2100" in out
    assert "published 2 events; refused 5 lines" in out
    assert ids(await topic_events(common_settings)) == ids(good)


async def test_backfill_refuses_a_missing_file_before_connecting(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    env = service_env(common_settings, database_url)
    env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"  # never asked: none listens
    env["DATABASE_URL"] = f"postgresql://postgres@127.0.0.1:{free_port()}/egov_pulse"
    missing = tmp_path / "histroy.jsonl"
    for whose in (["--unbound"], ["--publisher", "tdoffice-38"]):
        result = cli(["backfill", str(missing), *whose], env)
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"refused: cannot read '{missing}': No such file or directory" in result.stderr
        assert "Traceback" not in result.stderr
        assert "PostgreSQL" not in result.stderr, "refused before anything is asked"
    directory = cli(["backfill", str(tmp_path), "--unbound"], env)
    assert directory.returncode == 2 and "Is a directory" in directory.stderr
    await ensure_topics(common_settings)  # Apache Kafka creates none by itself
    assert await topic_events(common_settings) == []


async def test_backfill_exits_3_when_the_broker_does_not_answer_and_a_rerun_publishes_all(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    good = [event(HAM_RONG, at=datetime(2025, 9, 1, tzinfo=UTC))]
    path = tmp_path / "history.jsonl"
    path.write_text(orjson.dumps(good[0]).decode() + "\n")
    env = service_env(common_settings, database_url)
    down = env | {
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{free_port()}",
        "EGOV_KAFKA_REQUEST_TIMEOUT_S": "3",
    }
    stopped = cli(["backfill", str(path), "--unbound"], down)
    assert stopped.returncode == 3, stopped.stdout + stopped.stderr
    assert "stopped: the broker (127.0.0.1:" in stopped.stderr
    assert "nothing was published: re-run the file" in stopped.stderr
    assert "Traceback" not in stopped.stderr
    rerun = cli(["backfill", str(path), "--unbound"], env)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert ids(await topic_events(common_settings)) == ids(good)
