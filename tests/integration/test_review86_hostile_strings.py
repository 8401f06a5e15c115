"""Review 86: what a hostile or careless publisher's strings do downstream.

Each defect is one strict xfail test below, through the real path (records straight to
Kafka or ingest over HTTP, a real metrics worker, real PostgreSQL, the operator's CLI):

1. ``egov-pulse dead-letters list`` prints a publisher's Unicode bidi controls and
   zero-width characters raw: services/common/textrows.py:30-38 (``_escaped``) escapes
   only the categories Cc, Zl and Zp, not Cf (U+202A-U+202E overrides, U+2066-U+2069
   isolates, U+200B-U+200F). The contract lets them into ``id`` (schemas/
   cloudevent.schema.json:13 refuses only C0 and DEL), so a record straight to Kafka with
   such an id, refused by a worker, reorders the rest of its row on the operator's
   terminal (the sources and the note read backwards: "Trojan Source" spoofing), and an
   id with U+200B prints exactly like another id.

2. A ``dossier_id`` holding an invisible zero-width space is accepted (202) by ingest:
   the dossier schemas (e.g. schemas/events/vn.egov.dossier.resolved.v2.schema.json:18,
   pattern ``^[^\\x00-\\x1f\\x7f]+$``) refuse control characters only. The ledger keys the
   dossier by the raw string (services/common/dossierfacts.py:128, ``ledger_id``), so a
   receipt ``H38.14758-261206-0012`` and its final outcome copy-pasted with a trailing
   U+200B are two dossiers: the receipt stays open and is counted late ("open overdue"),
   hurting the unit's on-time rate for a code that prints identically.

3. The dedup digest hashes an id's code points as sent (services/common/tally.py:51-54,
   ``dedup_digest``): the same event re-sent with its Vietnamese id decomposed (NFD)
   instead of composed (NFC), canonically equivalent strings (Unicode conformance C6),
   is counted twice.

4. A worker honours the ingest-only ``egov_publisher`` header of an unsigned record
   written straight to Kafka even with a record signing key set
   (services/metrics/pipeline.py:455 takes ``publisher_of(record.headers)``,
   services/common/headers.py:55, before and regardless of any signature check): a hostile
   producer names another system and sends that system's ids first, and the system's
   genuine events accepted by ingest are then duplicates that never count, breaking
   "another publisher's events never suppress yours" (schemas/CONTRACT.md section 6).
"""

from __future__ import annotations

import asyncio
import secrets
import time
import unicodedata
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from tests.integration.ingest.harness import (
    BAC_KAN_WARD,
    HAM_RONG,
    event,
    ingest_settings,
    running_ingest,
)
from tests.integration.metrics.harness import document, publish, workers
from tests.integration.metrics.test_dead_letters import dead_letters
from tests.integration.metrics.test_review81_dead_letters import (
    PROVINCE,
    UNIT,
    counted,
    egov,
    wait_counted,
)
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration

BIDI_AND_INVISIBLE = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200b\u200e\u200f"


def test_dead_letter_rows_escape_bidi_and_zero_width_characters(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    settings = common_settings
    asyncio.run(ensure_topics(settings))
    # Schema-valid (no C0 control), refused by the worker: unit 99999 is no unit.
    hostile = "INV-\u202egnp.exe\u202c-\u2066x\u2069-\u200b-end"
    event = document(hostile, "99999", datetime.now(UTC))
    asyncio.run(publish(settings, [(b"19", orjson.dumps(event))]))
    with workers(settings, database_url, tmp_path, 1) as procs:
        found = asyncio.run(dead_letters(settings, 1))
        assert found, procs[0].tail()
    env = service_env(settings, database_url)
    deadline = time.monotonic() + 20
    while True:
        shown = egov(env, "dead-letters", "list")
        assert shown.returncode == 0, shown.stderr
        if "INV-" in shown.stdout or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    rows = [line for line in shown.stdout.splitlines() if "INV-" in line]
    assert len(rows) == 1, shown.stdout
    (row,) = rows
    # Nothing lost: the id is there, every character of it readable as an escape.
    assert "\\u202e" in row and "\\u200b" in row, repr(row)
    assert not any(c in row for c in BIDI_AND_INVISIBLE), repr(row)


def test_a_zero_width_space_in_a_dossier_id_is_refused_at_ingest(
    common_settings: CommonSettings, database_url: str
) -> None:
    async def run() -> tuple[int, int, object]:
        settings = ingest_settings(common_settings, database_url)
        async with running_ingest(settings) as ingest:
            receipt = event(HAM_RONG, "vn.egov.dossier.received")
            receipt["data"] = {**receipt["data"], "dossier_id": "H38.14758-261206-0012"}
            outcome = event(HAM_RONG, "vn.egov.dossier.resolved")
            outcome["data"] = {
                **outcome["data"],
                "dossier_id": "H38.14758-261206-0012\u200b",  # copy-pasted from a page
            }
            first = await ingest.post(receipt)
            second = await ingest.post(outcome)
            return first.status_code, second.status_code, second.json()

    first, second, body = asyncio.run(run())
    assert first == 202  # the genuine receipt is accepted: nothing is lost
    assert second == 422, body  # the look-alike id is refused, visibly
    assert "/data/dossier_id" in orjson.dumps(body).decode()


def test_an_id_resent_in_another_unicode_normal_form_counts_once(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    settings = common_settings
    asyncio.run(ensure_topics(settings))
    composed = unicodedata.normalize("NFC", "VB-Nông-Cống-2023-011703")
    decomposed = unicodedata.normalize("NFD", composed)
    assert composed != decomposed  # canonically equivalent (Unicode C6): one id
    at = datetime.now(UTC)
    first = document(composed, UNIT, at)
    retry = {**first, "id": decomposed}  # the same event, through a normalising relay
    sentinel = document("sentinel-after-the-retry", UNIT, at)
    records = [(PROVINCE.encode(), orjson.dumps(e)) for e in (first, retry, sentinel)]
    asyncio.run(publish(settings, records))
    with workers(settings, database_url, tmp_path, 1) as procs:
        # One partition (one key), read in order: once the sentinel counts, so has the rest.
        wait_counted(database_url, 2, procs)
        assert counted(database_url) == 2


def test_an_unsigned_record_cannot_claim_another_publishers_identity(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    signing_key = secrets.token_hex(32)
    victim = "thai-nguyen"  # an API key of the ingest harness, Thái Nguyên's system
    genuine = {**event(BAC_KAN_WARD, source="urn:egov:19:tdoffice"), "id": "VB-19-2026-000042"}
    sentinel = event(BAC_KAN_WARD, source="urn:egov:19:tdoffice")
    # The hostile producer writes the victim's id first, under the victim's name.
    forged = [(PROVINCE.encode(), orjson.dumps(genuine))]

    async def send() -> list[int]:
        await ensure_topics(common_settings)
        producer = make_producer(common_settings)
        await producer.start()
        try:
            for key, value in forged:
                await producer.send_and_wait(
                    common_settings.topic_documents,
                    value,
                    key=key,
                    headers=[("egov_publisher", victim.encode())],
                )
        finally:
            await producer.stop()
        settings = ingest_settings(common_settings, database_url, record_signing_key=signing_key)
        async with running_ingest(settings) as ingest:
            return [(await ingest.post(e, key=victim)).status_code for e in (genuine, sentinel)]

    assert asyncio.run(send()) == [202, 202]
    with workers(
        common_settings, database_url, tmp_path, 1, EGOV_RECORD_SIGNING_KEY=signing_key
    ) as procs:
        wait_counted(database_url, 2, procs)
        time.sleep(1.5)
        duplicates = sum(
            value
            for labels, value in procs[0].samples("egov_events_duplicate_total")
            if labels.get("type") == "vn.egov.document.issued"
        )
        # The victim's accepted events are its own: none of them is anyone's duplicate.
        assert duplicates == 0, procs[0].tail()
