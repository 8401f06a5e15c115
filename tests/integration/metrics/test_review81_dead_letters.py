"""Review 81: the operator's workflow for dead-lettered records, end to end.

A provincial operator's day: a record is dead-lettered, EgovDeadLetters fires, the
runbook (docs/runbooks.md, EgovDeadLetters) says "Check. The dead-letter records" and
"Do. Tell the publisher ... corrected events go through ingest or egov-pulse backfill".
Real metrics workers (tests/integration/metrics/harness.py) on the broker under test
(``EGOV_TEST_BROKER``) and PostgreSQL, and ``egov-pulse`` run as the operator runs it.

The cause here is ours: a worker set with a clock skew far too tight
(``EGOV_CLOCK_SKEW_S=1``) dead-letters, as ``time-in-future``, an event a publisher dated a
minute ahead (within the 300 s every other part of the system allows); the setting is
then fixed. The same holds for an ``unknown-unit`` before data/ was updated, an
``unprocessable`` worker bug, or a key rotation read as ``forged``/``unsigned``.

Found (strict xfails): no command reads the dead letters (the runbook names none, and on
docker-compose's authenticated Kafka no principal but the super user may read the
topic); no command counts dead letters again once their cause is fixed; dead letters are
exported per topic and reason only, never per province; the dead-letter topic is made
with the broker's default retention (7 days, as the event topics) and EgovDeadLetters
resolves 15 minutes after the last one, so an unhandled dead letter expires unwarned.
Fixed 2026-12-06: dead letters per province (the counter's ``province`` label,
services/metrics/dlqprovince.py, and a panel of the province overview) and the
dead-letter topic's retention (``EGOV_DEAD_LETTER_RETENTION_DAYS``, 90 days, set by
``ensure_topics``): ``test_dead_letters_are_known_per_province`` and
``test_the_dead_letter_topic_outlives_the_events_it_holds`` pass.
Fixed 2026-12-06: ``egov-pulse dead-letters list`` shows them (services/deadletters/,
the runbook's EgovDeadLetters names it), the ``backfill`` principal reads the
dead-letter topic (services/common/kafka_acls.py), and ``egov-pulse dead-letters replay
--reason R`` counts a fixed cause's dead letters again, exactly once:
``test_the_operator_sees_which_records_were_dead_lettered_without_kafka_code``,
``test_a_principal_other_than_the_super_user_may_read_the_dead_letters`` and
``test_dead_letters_of_a_fixed_cause_are_counted_again_exactly_once`` pass.
Found right: the documented fallback (the dead letter's event through ``egov-pulse
backfill --unbound``, run twice, and the publisher's live resend) counts it exactly once.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from services.common.kafka import ensure_topics
from services.common.kafka_acls import Operation, Principals, Resource, acl_plan
from services.common.settings import CommonSettings
from tests.integration.metrics.harness import WorkerProcess, document, publish, workers
from tests.integration.metrics.harness import stored_figure as figure
from tests.integration.metrics.test_backfill import run_backfill
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration

UNIT, PROVINCE = "01843", "19"  # Phường Bắc Kạn -> Thái Nguyên (the 2025 hierarchy)
KPI = "document_electronic"
RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbooks.md"
TIGHT = {"EGOV_CLOCK_SKEW_S": "1"}  # our mistake: every other part allows 300 s


def counted(database_url: str) -> int:
    """Documents counted for UNIT (the KPI's denominator: every document)."""
    return asyncio.run(figure(database_url, KPI, UNIT))[1]


def wait_counted(database_url: str, total: int, procs: list[WorkerProcess]) -> None:
    deadline = time.monotonic() + 40
    while counted(database_url) < total:
        assert time.monotonic() < deadline, "\n".join(p.tail() for p in procs)
        time.sleep(0.3)


def egov(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``egov-pulse ARGS`` as an operator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def dead_letter_one(
    settings: CommonSettings, database_url: str, tmp_path: Path, app: str
) -> tuple[dict[str, object], dict[str, object], dict[str, float]]:
    """A direct integrator publishes two events keyed by their province: one now, one
    dated a minute ahead. The worker with the tight skew counts the first and
    dead-letters the second as ``time-in-future``. Returns both events and the worker's
    dead-letter counter by its labels (joined)."""
    asyncio.run(ensure_topics(settings))
    now = datetime.now(UTC)
    ok = document(f"ok-{uuid.uuid4().hex[:8]}", UNIT, now)
    ahead = document(f"ahead-{uuid.uuid4().hex[:8]}", UNIT, now + timedelta(seconds=60))
    with workers(settings, database_url, tmp_path, 1, EGOV_METRICS_APP_ID=app, **TIGHT) as procs:
        asyncio.run(publish(settings, [(PROVINCE.encode(), orjson.dumps(e)) for e in (ok, ahead)]))
        found = asyncio.run(dead_letters(settings, 1))
        wait_counted(database_url, 1, procs)
        deadline = time.monotonic() + 20
        samples = procs[0].samples("egov_events_dead_lettered_total")
        while not samples and time.monotonic() < deadline:
            time.sleep(0.3)
            samples = procs[0].samples("egov_events_dead_lettered_total")
    assert [h["dlq_reason"] for _, h in found] == [b"time-in-future"], found
    assert orjson.loads(found[0][0]) == ahead  # the original bytes: nothing lost yet
    assert counted(database_url) == 1  # the valid one counted, once
    labelled = {",".join(f"{k}={v}" for k, v in sorted(lab.items())): v for lab, v in samples}
    return ok, ahead, labelled


def test_the_operator_sees_which_records_were_dead_lettered_without_kafka_code(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    _, ahead, _ = dead_letter_one(common_settings, database_url, tmp_path, f"r81-{uuid.uuid4()}")
    env = service_env(common_settings, database_url)
    shown = egov(env, "dead-letters", "list")
    assert shown.returncode == 0, shown.stderr[-2000:]
    # Which record, from where, why: the event id, its source, the reason and its place.
    for wanted in (str(ahead["id"]), str(ahead["source"]), "time-in-future", "@"):
        assert wanted in shown.stdout, shown.stdout
    section = RUNBOOK.read_text().split("### EgovDeadLetters")[1].split("\n### ")[0]
    assert "egov-pulse dead-letters" in section, section


def test_a_principal_other_than_the_super_user_may_read_the_dead_letters() -> None:
    settings = CommonSettings()
    plan = acl_plan(settings, Principals(), "egov-metrics", "egov.alerts")
    readers = {
        acl.principal
        for acl in plan
        if acl.resource == Resource.TOPIC
        and acl.name == settings.topic_dead_letter
        and acl.operation in (Operation.READ, Operation.ALL)
    }
    assert readers, "only User:admin (super.users) can read " + settings.topic_dead_letter


def test_dead_letters_of_a_fixed_cause_are_counted_again_exactly_once(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    app = f"r81-{uuid.uuid4().hex[:8]}"
    dead_letter_one(common_settings, database_url, tmp_path, app)
    env = service_env(common_settings, database_url)
    (tmp_path / "fixed").mkdir()
    # The setting fixed, the worker restarted (same consumer group: it goes on from its
    # stored positions, it does not read the event again by itself).
    with workers(common_settings, database_url, tmp_path / "fixed", 1, EGOV_METRICS_APP_ID=app):
        first = egov(env, "dead-letters", "replay", "--reason", "time-in-future")
        assert first.returncode == 0, first.stderr[-2000:]
        again = egov(env, "dead-letters", "replay", "--reason", "time-in-future")
        assert again.returncode == 0, again.stderr[-2000:]
        wait_counted(database_url, 2, [])
        time.sleep(2)
        assert counted(database_url) == 2  # the replayed one once, the valid one kept


def test_the_backfill_fallback_counts_a_dead_letter_once_even_when_resent_live(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """The runbook's way: the operator takes the event out of its dead letter into a
    file and backfills it with the identity it was published under (a direct integrator:
    unbound). Run twice by mistake, and the publisher told to resend it live as well:
    counted once, the event counted before untouched."""
    app = f"r81-{uuid.uuid4().hex[:8]}"
    _, ahead, _ = dead_letter_one(common_settings, database_url, tmp_path, app)
    env = service_env(common_settings, database_url)
    (value, _headers), *_ = asyncio.run(dead_letters(common_settings, 1))
    path = tmp_path / "redrive.jsonl"
    path.write_bytes(value + b"\n")
    (tmp_path / "fixed").mkdir()
    with workers(
        common_settings, database_url, tmp_path / "fixed", 1, EGOV_METRICS_APP_ID=app
    ) as procs:
        first = run_backfill(path, env)
        assert first.returncode == 0, first.stdout + first.stderr
        wait_counted(database_url, 2, procs)
        second = run_backfill(path, env)
        assert second.returncode == 0, second.stdout + second.stderr
        asyncio.run(publish(common_settings, [(PROVINCE.encode(), orjson.dumps(ahead))]))
        deadline = time.monotonic() + 30
        while (
            procs[0].samples("egov_events_duplicate_total") == []
            or sum(v for _, v in procs[0].samples("egov_events_duplicate_total")) < 2
        ):
            assert time.monotonic() < deadline, procs[0].tail()
            time.sleep(0.3)
        assert counted(database_url) == 2


def test_dead_letters_are_known_per_province(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    _, _, labelled = dead_letter_one(
        common_settings, database_url, tmp_path, f"r81-{uuid.uuid4().hex[:8]}"
    )
    assert sum(labelled.values()) == 1, labelled  # the dead letter is counted ...
    assert any(f"province={PROVINCE}" in key for key in labelled), labelled  # ... by province


def test_the_dead_letter_topic_outlives_the_events_it_holds(
    common_settings: CommonSettings,
) -> None:
    asyncio.run(ensure_topics(common_settings))
    retention = asyncio.run(_retention_ms(common_settings))
    dead, events = retention[common_settings.topic_dead_letter], retention["events"]
    # A dead letter waits for a person: it must be kept well past the events' retention,
    # or an alert must stay open until it is handled. Neither is the case.
    alert = _dead_letter_alert()
    assert dead == -1 or dead > events or "< 900" not in alert, (
        dead,
        events,
        alert,
    )


async def _retention_ms(settings: CommonSettings) -> dict[str, int]:
    """retention.ms of the dead-letter topic and of the documents topic (broker's view;
    the broker's default, 7 days, where it reports none)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        wanted = [settings.topic_dead_letter, settings.topic_documents]
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted]
        )
    finally:
        await admin.close()
    found: dict[str, int] = {}
    default = 7 * 24 * 3600 * 1000
    for response in described:
        for _code, _msg, _type, name, entries in response.resources:
            values = {e[0]: e[1] for e in entries}
            ms = values.get("retention.ms")
            key = "events" if name == settings.topic_documents else name
            found[key] = int(ms) if ms not in (None, "") else default
    return found


def _dead_letter_alert() -> str:
    rules = (RUNBOOK.parents[1] / "deploy" / "prometheus" / "rules" / "egov-health.yml").read_text()
    return rules.split("alert: EgovDeadLetters")[1].split("- alert:")[0]


def test_the_dead_letter_topic_is_there_before_any_worker_needs_it(
    common_settings: CommonSettings,
) -> None:
    """``ensure_topics`` (ingest's start, docker-compose's kafka-setup) makes the
    dead-letter topic beside the event topics, on the broker under test."""
    asyncio.run(ensure_topics(common_settings))

    async def topics() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=common_settings.kafka_bootstrap_servers)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    names = asyncio.run(topics())
    assert common_settings.topic_dead_letter in names
    assert common_settings.topic_documents in names
