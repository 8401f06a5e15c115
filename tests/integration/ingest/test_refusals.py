"""Every refusal of POST /v1/events: its status, its problem type, and nothing on the topics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import orjson
import pytest

from services.common.settings import CommonSettings
from services.ingest.keystore import revoke_key
from services.ingest.problems import PROBLEM_BASE
from tests.integration.ingest.harness import (
    BAC_KAN_WARD,
    HAC_THANH,
    HAM_RONG,
    Ingest,
    event,
    ids,
    ingest_settings,
    running_ingest,
    topic_events,
    topic_messages,
)

pytestmark = pytest.mark.integration


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, object] = response.json()
    assert body["type"] == PROBLEM_BASE + slug
    assert body["status"] == status
    return body


async def test_accepted_events_reach_their_topic_with_key_and_headers(ingest: Ingest) -> None:
    events = [event(HAM_RONG), event(HAC_THANH, "vn.egov.meeting.held")]
    response = await ingest.post(events)
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2}
    messages = await topic_messages(ingest.settings)
    assert sorted((orjson.loads(m.value)["id"]) for m in messages) == sorted(
        e["id"] for e in events
    )
    for message in messages:
        assert message.key == b"38"  # the province every KPI of these communes rolls up to
        headers = dict(message.headers)
        assert headers["ce_type"] == orjson.loads(message.value)["type"].encode()
        assert headers["ce_dataschema"].startswith(b"https://schemas.egov-pulse.vn/")


async def test_accepted_records_carry_the_time_ingest_accepted_them(ingest: Ingest) -> None:
    """Workers judge "too late" against it (issue 14), so it is the time of the check."""
    before = datetime.now(UTC).timestamp()
    response = await ingest.post([event(), event()])  # one packed record
    after = datetime.now(UTC).timestamp()
    assert response.status_code == 202, response.text
    (message,) = await topic_messages(ingest.settings)
    accepted_ms = int(dict(message.headers)["egov_accepted_ms"])
    assert int(before * 1000) <= accepted_ms <= after * 1000


async def test_nonsense_and_too_old_times_are_422_naming_the_field_and_the_rule(
    ingest: Ingest,
) -> None:
    grace_days = ingest.settings.counting_grace_days
    too_old = datetime.now(UTC) - timedelta(days=grace_days, minutes=1)
    batch = [
        event(),
        event() | {"time": "0001-01-01T00:00:00+14:00"},
        event() | {"time": "9999-12-31T23:59:59Z"},
        event(at=too_old),
        event() | {"time": "2024-03-15T08:42:17+14:30"},
    ]
    body = assert_problem(await ingest.post(batch), 422, "invalid-events")
    errors = {e["index"]: e for e in body["errors"]}  # type: ignore[union-attr]
    assert set(errors) == {1, 2, 3, 4}
    assert all(e["pointer"] == "/time" for e in errors.values())
    for index in (1, 2, 4):
        reason = errors[index]["reason"]
        assert batch[index]["time"] in reason and "years 2000 to 2100" in reason, reason
        assert "offsets -12:00 to +14:00" in reason
    assert errors[3]["code"] == "time-beyond-horizon"
    assert f"{grace_days:g}-day horizon" in errors[3]["reason"]
    assert "egov-pulse backfill" in errors[3]["reason"]
    assert await topic_events(ingest.settings) == []  # not even the valid first one


async def test_malformed_json_is_400(ingest: Ingest) -> None:
    assert_problem(await ingest.post(b'{"id": '), 400, "malformed-json")
    assert_problem(
        await ingest.post(b"[]", headers={"content-type": "application/cloudevents-batch+json"}),
        400,
        "malformed-json",
    )
    assert await topic_events(ingest.settings) == []


@pytest.mark.parametrize(
    "authorization",
    [None, "Basic abc", "Bearer not-a-key", "Bearer egp_0123456789ab_" + "A" * 43],
)
async def test_missing_or_unknown_key_is_401(ingest: Ingest, authorization: str | None) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = await ingest.post(event(), key=None, headers=headers)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert await topic_events(ingest.settings) == []


async def test_wrong_secret_of_a_real_key_id_is_401(ingest: Ingest) -> None:
    real = ingest.keys["province"]
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    response = await ingest.post(event(), key=None, headers={"authorization": f"Bearer {forged}"})
    assert_problem(response, 401, "unauthorized")
    assert await topic_events(ingest.settings) == []


async def test_revoked_key_is_401_within_the_cache_ttl(
    common_settings: CommonSettings, database_url: str
) -> None:
    settings = ingest_settings(common_settings, database_url, key_cache_ttl_s=0.0)
    async with running_ingest(settings) as ingest:
        first = event()
        assert (await ingest.post(first)).status_code == 202
        conn = await asyncpg.connect(database_url)
        try:
            assert await revoke_key(conn, "province")
        finally:
            await conn.close()
        body = assert_problem(await ingest.post(event()), 401, "unauthorized")
        assert "revoked" in str(body["detail"])
        assert ids(await topic_events(settings)) == ids([first])


async def test_wrong_content_type_is_415(ingest: Ingest) -> None:
    response = await ingest.post(event(), headers={"content-type": "application/json"})
    assert_problem(response, 415, "unsupported-media-type")
    assert await topic_events(ingest.settings) == []


async def test_body_too_large_is_413(common_settings: CommonSettings, database_url: str) -> None:
    settings = ingest_settings(common_settings, database_url, max_body_bytes=2000)
    async with running_ingest(settings) as ingest:
        assert_problem(await ingest.post([event() for _ in range(10)]), 413, "body-too-large")
        assert await topic_events(settings) == []


async def test_batch_over_the_maximum_is_413(
    common_settings: CommonSettings, database_url: str
) -> None:
    settings = ingest_settings(common_settings, database_url, max_batch_events=3)
    async with running_ingest(settings) as ingest:
        assert_problem(await ingest.post([event() for _ in range(4)]), 413, "batch-too-large")
        assert await topic_events(settings) == []


async def test_batch_with_invalid_events_is_422_listing_each(ingest: Ingest) -> None:
    now = datetime.now(UTC)
    batch = [
        event(),
        event(data={"document_id": "x"}),
        event(unit="99999"),
        event(at=now + timedelta(hours=2)),
        event(at=now - timedelta(days=400)),
    ]
    body = assert_problem(await ingest.post(batch), 422, "invalid-events")
    errors = body["errors"]
    assert isinstance(errors, list)
    by_index = {(e["index"], e["code"]) for e in errors}
    assert {i for i, _ in by_index} == {1, 2, 3, 4}
    assert (2, "unit-unknown") in by_index
    assert (3, "time-in-future") in by_index
    assert (4, "time-beyond-horizon") in by_index
    assert all(e["pointer"].startswith("/") for e in errors)
    assert await topic_events(ingest.settings) == []  # not even the valid first one


async def test_sibling_commune_is_403_listing_the_offending_indexes(ingest: Ingest) -> None:
    batch = [event(HAM_RONG), event(HAC_THANH), event(HAM_RONG)]
    body = assert_problem(await ingest.post(batch, key="commune"), 403, "out-of-scope")
    assert [(e["index"], e["pointer"]) for e in body["errors"]] == [(1, "/unit")]  # type: ignore[attr-defined]
    assert await topic_events(ingest.settings) == []


async def test_event_type_outside_scope_is_403(ingest: Ingest) -> None:
    batch = [event(), event(event_type="vn.egov.meeting.held")]
    body = assert_problem(await ingest.post(batch, key="documents-only"), 403, "out-of-scope")
    assert [(e["index"], e["code"]) for e in body["errors"]] == [(1, "type-out-of-scope")]  # type: ignore[attr-defined]
    assert await topic_events(ingest.settings) == []


async def test_other_province_is_403(ingest: Ingest) -> None:
    assert_problem(await ingest.post(event(BAC_KAN_WARD)), 403, "out-of-scope")
    assert await topic_events(ingest.settings) == []


async def test_rate_limit_is_429_with_retry_after(
    common_settings: CommonSettings, database_url: str
) -> None:
    settings = ingest_settings(
        common_settings,
        database_url,
        rate_limit_per_s=0.01,
        rate_limit_burst=1,
        max_batch_events=1,
    )
    async with running_ingest(settings) as ingest:
        first = event()
        assert (await ingest.post(first)).status_code == 202
        response = await ingest.post(event())
        assert_problem(response, 429, "rate-limited")
        assert int(response.headers["retry-after"]) >= 1
        # another key has its own bucket
        assert (await ingest.post(event(BAC_KAN_WARD), key="thai-nguyen")).status_code == 202
        assert len(await topic_events(settings)) == 2


async def test_a_batch_over_the_keys_event_budget_is_429_and_nothing_of_it_is_produced(
    common_settings: CommonSettings, database_url: str
) -> None:
    """The per-key limit counts events, not requests: after a batch of 6 from a budget of
    10, a second batch of 6 is refused whole (one request, but 6 events); a batch of 4
    still fits, because the refused one took nothing."""
    settings = ingest_settings(
        common_settings,
        database_url,
        rate_limit_per_s=0.01,
        rate_limit_burst=10,
        max_batch_events=10,
    )
    async with running_ingest(settings) as ingest:
        accepted = [event() for _ in range(6)]
        assert (await ingest.post(accepted)).status_code == 202
        over = [event() for _ in range(6)]
        response = await ingest.post(over)
        assert_problem(response, 429, "rate-limited")
        assert int(response.headers["retry-after"]) >= 1 / 0.01  # 2 events at 0.01/s: 200 s
        assert "events" in response.json()["detail"]
        fits = [event() for _ in range(4)]
        assert (await ingest.post(fits)).status_code == 202
        assert ids(await topic_events(settings)) == ids(accepted + fits)


async def test_a_batch_both_invalid_and_out_of_scope_lists_every_refusal_at_once(
    ingest: Ingest,
) -> None:
    # Until 2026-12-05 only the invalid event was listed: the publisher dropped it, resent,
    # and met a 403 for the foreign ward in a second round trip.
    good = [event(HAM_RONG), event(HAC_THANH)]
    invalid = event("99999")  # no such unit: 422
    foreign = event(BAC_KAN_WARD)  # Thái Nguyên's ward, outside the Thanh Hóa key: 403
    response = await ingest.post([good[0], invalid, foreign, good[1]])
    problem = assert_problem(response, 422, "invalid-events")
    errors = problem["errors"]
    assert isinstance(errors, list)
    assert [(e["index"], e["code"]) for e in errors] == [
        (1, "unit-unknown"),
        (2, "unit-out-of-scope"),
    ]
    assert problem["detail"] == (
        "1 of 4 events are invalid and 1 more may not be published with this API key; "
        "nothing from this request was published."
    )
    assert await topic_events(ingest.settings) == []  # nothing of a refused request
    resend = await ingest.post(good)  # what the answer says to resend
    assert resend.status_code == 202, resend.text
    assert ids(await topic_events(ingest.settings)) == ids(good)
