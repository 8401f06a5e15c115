"""Bad input the schemathesis and envelope fuzzers do not reach: nesting, encodings, types.

schemathesis (test_openapi_fuzz.py) sends bodies the OpenAPI document describes; the
unit fuzzers feed ``decode_body`` and the validator. Here the running app gets bodies
nested beyond the parser's depth limit, invalid UTF-8 (bad bytes, overlong forms, a
lone surrogate escape, a byte-order mark), content types it does not take, and a huge
field, plus seeded byte-level mutations of a valid batch: each is a precise 4xx problem
(never 5xx), the problem document stays small, and nothing of a refused request is
published.
"""

from __future__ import annotations

import os
import random

import orjson
import pytest

from services.ingest.problems import PROBLEM_BASE
from tests.integration.ingest.harness import Ingest, event, topic_events

pytestmark = pytest.mark.integration

SINGLE, BATCH = "application/cloudevents+json", "application/cloudevents-batch+json"


def _good() -> tuple[dict[str, object], bytes]:
    ev = event()
    return ev, orjson.dumps(ev)


def _with_id(raw: bytes, ev: dict[str, object], replacement: bytes) -> bytes:
    body = raw.replace(b'"id":"' + str(ev["id"]).encode() + b'"', b'"id":' + replacement, 1)
    assert body != raw
    return body


def bad_bodies() -> list[tuple[str, bytes, str, int, str]]:
    """(case, body, content type, status, problem slug)."""
    ev, raw = _good()
    deep = 100_000
    return [
        ("nested-batch", b"[" * deep + b"]" * deep, BATCH, 400, "malformed-json"),
        ("nested-member", b'{"data":' + b"[" * deep + b"]" * deep + b"}", SINGLE, 400,
         "malformed-json"),
        ("nested-element", b"[" + b"[" * 1000 + b"]" * 1000 + b"]", BATCH, 422,
         "invalid-events"),
        ("nested-id", _with_id(raw, ev, b"[" * 500 + b"]" * 500), SINGLE, 422, "invalid-events"),
        ("invalid-utf8", _with_id(raw, ev, b'"\xc3\x28"'), SINGLE, 400, "malformed-json"),
        ("overlong-utf8", _with_id(raw, ev, b'"\xc0\xaf"'), SINGLE, 400, "malformed-json"),
        ("cesu-surrogate", _with_id(raw, ev, b'"\xed\xa0\x80"'), SINGLE, 400, "malformed-json"),
        ("lone-surrogate-escape", _with_id(raw, ev, b'"\\ud800"'), SINGLE, 400,
         "malformed-json"),
        ("byte-order-mark", b"\xef\xbb\xbf" + raw, SINGLE, 400, "malformed-json"),
        ("latin-1", raw.replace(b"}", b',"note":"\xe9"}', 1), SINGLE, 400, "malformed-json"),
        ("text-plain", raw, "text/plain", 415, "unsupported-media-type"),
        ("plain-json", raw, "application/json", 415, "unsupported-media-type"),
        ("form", raw, "application/x-www-form-urlencoded", 415, "unsupported-media-type"),
        ("multipart", raw, "multipart/form-data; boundary=x", 415, "unsupported-media-type"),
        ("xml", b"<event/>", "application/cloudevents+xml", 415, "unsupported-media-type"),
        ("missing", raw, "", 415, "unsupported-media-type"),
        ("object-as-batch", raw, BATCH, 400, "malformed-json"),
        ("array-as-single", b"[" + raw + b"]", SINGLE, 422, "invalid-events"),
        ("huge-field", orjson.dumps(dict(ev, id="x" * 3_000_000)), SINGLE, 422,
         "invalid-events"),
        ("oversized", b"[" + b",".join([raw] * 12_000) + b"]", BATCH, 413, "body-too-large"),
    ]  # fmt: skip


async def test_bad_bodies_are_precise_4xx_problems_and_publish_nothing(ingest: Ingest) -> None:
    """One service for every case (a service per case would cost a second each)."""
    wrong = []
    for case, body, content_type, status, slug in bad_bodies():
        response = await ingest.post(body, headers={"content-type": content_type})
        problem = response.json() if response.status_code >= 400 else {}
        if (response.status_code, problem.get("type")) != (status, PROBLEM_BASE + slug):
            wrong.append(f"{case}: {response.status_code} {response.text[:200]}")
        elif len(response.content) > 16 * 1024:
            wrong.append(f"{case}: a {len(response.content):,}-byte problem echoes the input")
    assert not wrong, wrong
    assert await topic_events(ingest.settings) == []


@pytest.mark.parametrize("content_type", [f"{SINGLE}; charset=utf-8", SINGLE.upper()])
async def test_content_type_parameters_and_case_are_accepted(
    ingest: Ingest, content_type: str
) -> None:
    ev = event()
    response = await ingest.post(orjson.dumps(ev), headers={"content-type": content_type})
    assert response.status_code == 202, response.text
    assert [e["id"] for e in await topic_events(ingest.settings)] == [ev["id"]]


async def test_mutated_batches_are_refused_or_published_whole(ingest: Ingest) -> None:
    """Seeded byte-level mutations of valid batches: flips, cuts, splices, inserts."""
    seed = int(os.environ.get("EGOV_FAULTS_SEED") or random.randrange(2**31))
    rng = random.Random(seed)
    accepted: list[object] = []
    statuses = []
    for _ in range(150):
        events = [event() for _ in range(rng.randint(1, 5))]
        body = bytearray(orjson.dumps(events))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(body))
            action = rng.choice(["flip", "cut", "insert", "splice"])
            if action == "flip":
                body[at] = rng.randrange(256)
            elif action == "cut":
                del body[at : at + rng.randint(1, 20)]
            elif action == "insert":
                body[at:at] = rng.choice([b"\xff", b"[", b"{", b'"', b"\\", b"\x00", b"\xc0\xaf"])
            else:
                body[at:at] = orjson.dumps(event())
        content_type = rng.choice([BATCH, BATCH, SINGLE, "application/json"])
        response = await ingest.post(bytes(body), headers={"content-type": content_type})
        statuses.append(response.status_code)
        assert response.status_code < 500, (seed, bytes(body)[:200], response.text)
        if response.status_code == 202:
            accepted += orjson.loads(bytes(body))
        else:
            assert response.headers["content-type"] == "application/problem+json", seed
    published = sorted(e["id"] for e in await topic_events(ingest.settings))
    want = sorted(e["id"] for e in accepted if isinstance(e, dict))  # type: ignore[misc]
    assert published == want, f"seed {seed}: published differs from what got 202"
    assert len(set(statuses)) > 2, statuses  # the mutations reached several refusals
