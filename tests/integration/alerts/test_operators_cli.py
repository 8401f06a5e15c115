"""`egov-pulse operators` and `egov-pulse targets` on a real PostgreSQL: a token is created
with its scope and listed with it; a token without a scope, or scoped to what is not a
province, is refused; the CLI's targets name their KPI and checked ids."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from services.alerts import operators

pytestmark = pytest.mark.integration


def cli(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


async def test_operators_are_created_with_their_scope_and_listed_with_it(
    database_url: str,
) -> None:
    made = cli(database_url, "operators", "create", "trực ban Thái Nguyên", "--provinces", "19")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().splitlines()[-1]
    assert "provinces 19" in made.stdout and token.startswith("egovop_")
    assert cli(database_url, "operators", "create", "Bộ", "--national").returncode == 0

    for refused, message in (
        (["operators", "create", "xã", "--provinces", "01843"], "not a province code"),
        (["operators", "create", "ai"], "--provinces"),
    ):
        answer = cli(database_url, *refused)
        assert answer.returncode != 0 and message in answer.stderr, answer.stderr

    listing = cli(database_url, "operators", "list").stdout.splitlines()
    assert [line.split("\t")[:2] for line in listing] == [
        ["Bộ", "national (every province)"], ["trực ban Thái Nguyên", "provinces 19"]
    ]  # fmt: skip
    conn = await asyncpg.connect(database_url)
    try:
        who = await operators.authenticate(conn, token)
        assert who is not None and who.provinces == frozenset({"19"}) and not who.national
        stored = await conn.fetchval("SELECT count(*) FROM operators WHERE token_hash = $1",
                                     operators.token_hash(token))  # fmt: skip
        assert stored == 1
        assert await conn.fetchval("SELECT count(*) FROM operators") == 2
    finally:
        await conn.close()


async def test_cli_targets_name_their_kpi_and_checked_ids(database_url: str) -> None:
    scope = ["--province", "19", "--level", "commune", "--valid-from", "2027-01-01"]
    done = cli(database_url, "targets", "set", "0.95", "--kpi", "document_signing", *scope,
               "--reason", "kế hoạch 2027", "--by", "sở")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "every commune of province 19\tdocument_signing\t9500 bp\t2027-01-01..-" in done.stdout
    no_kpi = cli(database_url, "targets", "set", "0.5", "--unit", "01843", "--reason", "r")
    assert no_kpi.returncode != 0 and "--kpi" in no_kpi.stderr
    unknown = cli(database_url, "targets", "set", "0.5", "--kpi", "document_signing",
                  "--unit", "99999", "--reason", "r")  # fmt: skip
    assert unknown.returncode == 1 and "unknown unit '99999'" in unknown.stderr
    listing = cli(database_url, "targets", "list").stdout.splitlines()
    assert len(listing) == 1 and "9500 bp" in listing[0]
