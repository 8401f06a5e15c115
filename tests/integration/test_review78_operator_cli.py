"""Review 78: the operator's command line (services/cli.py and what it dispatches to:
``keys``, ``operators``, ``targets``) run as a provincial operator runs it, as real
processes against a real PostgreSQL, against docs/targets.md, docs/ingest.md ("API keys")
and docs/runbooks.md.

Checked: mistakes (a target given as 95 meaning 95 %, a misspelt KPI, an unknown province,
a district abolished by the 2025 reform, a level that no longer exists, a revoked name
revoked again), a revoked key's next request to a running ingest, a database that is
down, a second operator changing the same override at the same moment, and whether the
output a script reads (``keys create | tail -n 1``, ``targets list``) holds what it
should. Each defect was a strict xfail asserting the right behaviour; all six are fixed:

- an override for the abolished district level: refused, naming today's levels (fixed
  2026-12-06);
- two operators setting one override at once: one upsert, the later wins (fixed 2026-12-06);
- a reason holding a tab or newline in ``targets list``: fields escaped, one row per
  override (fixed 2026-12-06);
- the database down: one line naming PostgreSQL and its host:port, exit 3 (fixed
  2026-12-06);
- ``keys`` refusals on stdout: on stderr (fixed 2026-12-06);
- ``operators revoke`` of a revoked name: says there is no live operator of that name
  (fixed 2026-12-06).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import orjson
import pytest

from services.common.broker import free_port
from services.common.settings import CommonSettings
from services.ingest.validation import SINGLE
from tests.integration.ingest.harness import THANH_HOA, event, ingest_settings, running_ingest
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration

ABOLISHED_DISTRICT = "001"
"""Ba Đình, a district of Hà Nội until the 2025 reform (data/units, era 2024 only)."""

KEY_ARGS = ["--units", "38", "--types", "vn.egov.document.issued", "--sources", "urn:egov:x:"]


def cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def one_clear_line(done: subprocess.CompletedProcess[str]) -> str:
    """The refusal an operator reads: non-zero status, one line on stderr, no traceback."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr[-600:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr[-600:]
    return lines[0]


async def overrides_and_history(database_url: str) -> tuple[list[tuple[object, ...]], int]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT unit, province, level, kpi, target_bp, valid_from, reason "
            "FROM kpi_target_overrides ORDER BY 1, 2, 3, 4"
        )
        history = await conn.fetchval("SELECT count(*) FROM kpi_target_override_history")
        return [tuple(r) for r in rows], int(history)
    finally:
        await conn.close()


def setting(target: str, *scope: str, reason: str = "Kế hoạch CĐS tỉnh 2027") -> list[str]:
    return ["targets", "set", target, "--kpi", "document_signing", *scope, "--reason", reason]


# --- targets ---------------------------------------------------------------------------


async def test_targets_mistakes_are_refused_in_one_line_and_change_nothing(
    common_settings: CommonSettings, database_url: str
) -> None:
    """A target of 95 meant as 95 %, 1.5, a misspelt KPI, an unknown province, a district
    abolished by the reform, a target finer than a basis point: each one line, status 1,
    and the override set before is untouched (found right)."""
    env = service_env(common_settings, database_url)
    kept = cli(setting("0.95", "--province", "19", "--level", "commune"), env)
    assert kept.returncode == 0, kept.stderr
    before = await overrides_and_history(database_url)
    mistakes = {
        "ratio between 0 and 1": setting("95", "--province", "19", "--level", "commune"),
        "between 0 and 1": setting("1.5", "--province", "19", "--level", "commune"),
        "whole basis points": setting("0.99995", "--province", "19", "--level", "commune"),
        "unknown KPI 'document_signin'": [
            *setting("0.9", "--province", "19")[:3],
            "--kpi",
            "document_signin",
            "--province",
            "19",
            "--reason",
            "x",
        ],
        "unknown province '99'": setting("0.9", "--province", "99"),
        f"unknown unit {ABOLISHED_DISTRICT!r}": setting("0.9", "--unit", ABOLISHED_DISTRICT),
    }
    for expected, args in mistakes.items():
        line = one_clear_line(cli(args, env))
        assert expected in line, (args, line)
    assert await overrides_and_history(database_url) == before


async def test_an_override_for_the_abolished_district_level_is_refused(
    common_settings: CommonSettings, database_url: str
) -> None:
    env = service_env(common_settings, database_url)
    before = await overrides_and_history(database_url)
    line = one_clear_line(cli(setting("0.9", "--province", "19", "--level", "district"), env))
    assert "district" in line
    assert await overrides_and_history(database_url) == before


async def test_two_operators_setting_one_override_at_once_get_no_traceback(
    common_settings: CommonSettings, database_url: str
) -> None:
    env = service_env(common_settings, database_url)
    other = await asyncpg.connect(database_url)
    try:
        # The other operator's set, in flight: its row inserted, not yet committed.
        tx = other.transaction()
        await tx.start()
        await other.execute(
            "INSERT INTO kpi_target_overrides (province, level, kpi, target_bp, changed_by, "
            "reason) VALUES ('19', 'commune', 'document_signing', 9000, 'other', 'other')"
        )
        args = setting("0.95", "--province", "19", "--level", "commune")
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            for _ in range(300):  # until the CLI waits on the other's row
                waiting = await other.fetchval(
                    "SELECT count(*) FROM pg_locks WHERE NOT granted AND pid <> pg_backend_pid()"
                )
                if waiting or proc.returncode is not None:
                    break
                await asyncio.sleep(0.05)
            await tx.commit()
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        await other.close()
    done = subprocess.CompletedProcess(args, proc.returncode or 0, out.decode(), err.decode())
    rows, _ = await overrides_and_history(database_url)
    assert len(rows) == 1
    if done.returncode == 0:  # set replaces: the later set wins
        assert rows[0][4] == 9500
    else:  # or refused in one line, the other's override kept
        one_clear_line(done)
        assert rows[0][4] == 9000


async def test_targets_list_gives_one_parseable_row_per_override(
    common_settings: CommonSettings, database_url: str
) -> None:
    env = service_env(common_settings, database_url)
    reason = "Kế hoạch 2027\tsố 12/KH-UBND\nphụ lục 2"
    made = cli(setting("0.95", "--province", "19", "--level", "commune", reason=reason), env)
    assert made.returncode == 0, made.stderr
    listed = cli(["targets", "list"], env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split("\t") for line in listed.stdout.splitlines() if line]
    assert len(rows) == 1, listed.stdout
    assert len(rows[0]) == 7, rows


# --- a database that is down -----------------------------------------------------------


def test_commands_with_the_database_down_say_so_in_one_line(
    common_settings: CommonSettings,
) -> None:
    down = f"postgresql://egov:egov@127.0.0.1:{free_port()}/egov_pulse"
    env = service_env(common_settings, down)
    for args in (
        ["keys", "list"],
        ["keys", "revoke", "tdoffice-38"],
        ["operators", "list"],
        ["targets", "list"],
        setting("0.9", "--province", "19"),
    ):
        line = one_clear_line(cli(args, env))
        assert "PostgreSQL" in line or "database" in line, (args, line)


# --- keys and operators ----------------------------------------------------------------


def test_key_refusals_go_to_stderr_never_where_the_key_is_read(
    common_settings: CommonSettings, database_url: str
) -> None:
    env = service_env(common_settings, database_url)
    made = cli(["keys", "create", "--name", "tdoffice-38", *KEY_ARGS], env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    refusals = [
        ["keys", "create", "--name", "tdoffice-38", *KEY_ARGS],  # a live key has this name
        ["keys", "create", "--name", "a\tb", *KEY_ARGS],  # a control character
        ["keys", "revoke", "nobody"],
    ]
    for args in refusals:
        done = cli(args, env)
        assert done.stdout == "", (args, done.stdout)
        one_clear_line(done)
    assert cli(["keys", "revoke", "tdoffice-38"], env).returncode == 0
    again = cli(["keys", "revoke", "tdoffice-38"], env)  # revoked already
    assert again.stdout == "" and "tdoffice-38" in one_clear_line(again)
    listed = cli(["keys", "list"], env).stdout
    assert token.split("_")[1] in listed and "revoked" in listed


def test_revoking_an_operator_twice_says_what_is_wrong(
    common_settings: CommonSettings, database_url: str
) -> None:
    env = service_env(common_settings, database_url)
    name = "trực ban Sở KH&CN Thái Nguyên"
    assert cli(["operators", "create", name, "--provinces", "19"], env).returncode == 0
    assert cli(["operators", "revoke", name], env).returncode == 0
    line = one_clear_line(cli(["operators", "revoke", name], env))
    assert name in line and "operator" in line.removeprefix("error: ").replace(name, ""), line
    assert cli(["operators", "list"], env).stdout == ""  # the first revocation stands


async def test_a_key_revoked_on_the_command_line_is_refused_by_ingest_within_its_ttl(
    common_settings: CommonSettings, database_url: str
) -> None:
    """docs/ingest.md and README: a revoked key is accepted at most EGOV_KEY_CACHE_TTL_S
    (5 s) longer; then ingest answers 401 (found right, with a running ingest)."""
    env = service_env(common_settings, database_url)
    made = await asyncio.to_thread(cli, ["keys", "create", "--name", "tdoffice-38", *KEY_ARGS], env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    settings = ingest_settings(common_settings, database_url)
    async with running_ingest(settings) as ingest:

        async def post() -> int:
            body = orjson.dumps(event(THANH_HOA, source="urn:egov:x:38"))
            headers = {"content-type": SINGLE, "authorization": f"Bearer {token}"}
            sent = await ingest.client.post("/v1/events", content=body, headers=headers)
            return sent.status_code

        assert await post() == 202
        revoked = await asyncio.to_thread(cli, ["keys", "revoke", "tdoffice-38"], env)
        assert revoked.returncode == 0, revoked.stdout
        await asyncio.sleep(settings.key_cache_ttl_s + 1)
        assert await post() == 401
