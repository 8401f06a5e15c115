"""Review 84: today's dead-letter tools (3c797a6), dead letters per province (59fea09) and
ingest's overload bounds (fdd9bd2), as their users live them.

A strict xfail is a defect found here, asserting the right behaviour; the passing tests
are what was checked and found right. The dead-letter tests run ``egov-pulse
dead-letters`` as an operator does (tests/integration/metrics/test_review81_dead_letters.py
``egov``) against dead letters written as the workers write them
(services/metrics/pipeline.py ``dead_letter``, ``reference_of``); the ingest tests run the
served ``egov-pulse ingest`` (uvicorn, httptools, uvloop, the head-limited protocol:
tests/integration/ingest/test_review82_overload.py ``served_ingest``).

Found (strict xfails):
- a dead letter written as a reference (a record too large to carry, whose events came
  from a publisher's key) loses its ``egov_publisher`` header, and ``replay`` publishes
  its events ``--unbound``: not under the identity they were first published with, so the
  publisher's own resend counts them a second time;
- pipelined requests whose bytes arrive in one read larger than EGOV_MAX_HEADER_BYTES are
  refused 431 ``headers-too-large`` (the bound is applied to the read, not to the head);
- a body declared larger than EGOV_MAX_BODY_BYTES is answered 503 broker-unavailable
  (retry) instead of 413 when it is also larger than the free in-flight budget;
- after an early answer (a 413 on a declared Content-Length, a 401, a 503 at once) the
  head deadline runs while the client still sends its body: a second, unasked-for 408
  ``headers-too-slow`` follows on the connection, is counted as a slow client, and the
  connection is cut under the uploading publisher.

All four fixed 2026-12-06: a reference dead letter carries its record's ``egov_publisher``
(and one written before is read for it from the records it points at); the head bound
counts each pipelined head on its own; a declared body over ``EGOV_MAX_BODY_BYTES`` is a
413 before the admission check; after an early answer the connection waits for the
body's end (closed only when the body stops coming for ``EGOV_BODY_TIMEOUT_S``).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from services.common.contract import Contract
from services.common.kafka import ensure_topics, make_producer
from services.common.settings import CommonSettings
from services.common.units import UnitRegistry
from services.deadletters.letters import DeadLetter as ReadLetter
from services.deadletters.reading import TopicReader
from services.ingest.validation import SINGLE
from services.metrics.decoding import RecordDecoder
from services.metrics.dlqprovince import DeadLetterProvinces
from services.metrics.pipeline import DeadLetter, reference_of
from tests.integration.deadletters.test_dead_letters_cli import _key
from tests.integration.ingest.harness import event
from tests.integration.ingest.test_review82_overload import (
    Served,
    headers,
    publish_one,
    request_head,
    served_ingest,
)
from tests.integration.metrics.harness import document
from tests.integration.metrics.test_review81_dead_letters import PROVINCE, UNIT, egov
from tests.integration.processes import service_env

pytestmark = pytest.mark.integration
Headers = list[tuple[str, bytes]]


# --- helpers ------------------------------------------------------------------------------


async def _produce(
    settings: CommonSettings, topic: str, key: bytes | None, value: bytes, hdrs: Headers
) -> tuple[int, int]:
    """One record; its (partition, offset)."""
    producer = make_producer(settings)
    await producer.start()
    try:
        meta = await producer.send_and_wait(topic, value, key=key, headers=hdrs)
        return int(meta.partition), int(meta.offset)
    finally:
        await producer.stop()


async def _records(settings: CommonSettings, topic: str) -> list[ReadLetter]:
    """Every record of ``topic`` now, with its headers (read with no group)."""
    async with TopicReader(settings) as reader:
        return await reader.dead_letters(topic, None)


def _events(value: bytes | None) -> list[dict[str, object]]:
    """The events of a record value (one, or a batch)."""
    parsed = orjson.loads(value or b"[]")
    return parsed if isinstance(parsed, list) else [parsed]


def _metric(served: Served, name: str, label: str = "") -> float:
    text = httpx.get(served.base + "/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and label in line and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _read_all(sock: socket.socket, until: float) -> bytes:
    """What the server sends until it closes or ``until`` (monotonic) passes."""
    got = b""
    while time.monotonic() < until:
        sock.settimeout(max(0.05, until - time.monotonic()))
        try:
            part = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            break
        if not part:
            break
        got += part
    return got


# --- dead letters: replay -----------------------------------------------------------------


def test_a_referenced_dead_letter_is_replayed_under_its_publishers_identity(
    common_settings: CommonSettings, database_url: str
) -> None:
    """A publisher's batch record, too large to carry in a dead letter (a 1,000-event
    batch from ingest is over 1 MB), was dead-lettered by a worker bug (``unprocessable``)
    as a reference; the bug is fixed and the operator replays it. Its events must be
    published under the publisher's identity, as ingest first published them (docs/
    ingest.md, "Dead letters replayed"): else the publisher's own resend, which the
    runbook asks for, counts them a second time."""
    settings = common_settings
    asyncio.run(ensure_topics(settings))
    publisher = f"tdoffice-{uuid.uuid4().hex[:6]}"
    asyncio.run(_key(database_url, publisher))
    event = document(f"big-{uuid.uuid4().hex[:8]}", UNIT, datetime.now(UTC))
    bound: Headers = [("egov_publisher", publisher.encode())]
    value = orjson.dumps(event)
    partition, offset = asyncio.run(
        _produce(settings, settings.topic_documents, PROVINCE.encode(), value, bound)
    )
    # As services/metrics/pipeline.py dead_letter() makes it (the record's headers and
    # the dlq ones), then its reference, as for a record over DEAD_LETTER_MAX_BYTES.
    whole = DeadLetter(
        PROVINCE.encode(),
        value,
        [
            *bound,
            ("dlq_reason", b"unprocessable"),
            ("dlq_detail", b"worker bug"),
            ("dlq_source", f"{settings.topic_documents}[{partition}]@{offset}".encode()),
        ],
        "unprocessable",
        settings.topic_documents,
        partition,
        offset,
        "worker bug",
    )
    ref = reference_of(whole)
    asyncio.run(
        _produce(settings, settings.topic_dead_letter, ref.key, ref.value or b"", ref.headers)
    )
    env = service_env(settings, database_url)
    done = egov(env, "dead-letters", "replay", "--reason", "unprocessable")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "replayed 1 events of 1 dead letters" in out, out
    replayed = [
        r
        for r in asyncio.run(_records(settings, settings.topic_documents))
        if r.header("egov_backfill") is not None
    ]
    assert len(replayed) == 1, replayed  # it was published (nothing lost) ...
    assert f"as --publisher {publisher!r}" in out, out  # ... under whose identity
    assert replayed[0].header("egov_publisher") == publisher


def test_a_partial_dead_letter_replays_the_valid_events_and_names_the_refused_one(
    common_settings: CommonSettings, database_url: str
) -> None:
    """A dead-lettered batch of three (an unbound record written straight to Kafka) whose
    middle event is still invalid (a unit nobody knows): the replay publishes the two
    others once, names the refused one by its id, and exits 1; run again, it publishes
    nothing new under another identity (the same two, the same headers)."""
    settings = common_settings
    asyncio.run(ensure_topics(settings))
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:6]
    batch = [
        document(f"a-{tag}", UNIT, now),
        document(f"bad-{tag}", "99999", now),
        document(f"c-{tag}", UNIT, now),
    ]
    hdrs: Headers = [
        ("dlq_reason", b"unknown-unit"),
        ("dlq_detail", b"unit 01843 not known yet"),
        ("dlq_source", f"{settings.topic_documents}[0]@7".encode()),
    ]
    asyncio.run(
        _produce(settings, settings.topic_dead_letter, PROVINCE.encode(), orjson.dumps(batch), hdrs)
    )
    env = service_env(settings, database_url)
    first = egov(env, "dead-letters", "replay", "--reason", "unknown-unit")
    out = first.stdout + first.stderr
    assert first.returncode == 1, out
    assert f"event 'bad-{tag}'" in out and "[unit-unknown]" in out, out
    assert "replayed 2 events of 1 dead letters" in out, out
    published = [
        r
        for r in asyncio.run(_records(settings, settings.topic_documents))
        if r.header("egov_backfill") is not None
    ]
    ids = sorted(str(e["id"]) for r in published for e in _events(r.value))
    assert ids == [f"a-{tag}", f"c-{tag}"], ids
    assert all(r.header("egov_publisher") is None for r in published)  # unbound, as first


# --- dead letters: list and the province label --------------------------------------------


def test_list_json_stays_one_parseable_object_per_line_whatever_the_bytes(
    common_settings: CommonSettings, database_url: str
) -> None:
    """Dead letters with a binary key, a non-UTF-8 value and a detail holding a newline
    and non-UTF-8 bytes: ``list --json`` prints one JSON object per dead letter, each
    with its place, so an operator's script never breaks on them."""
    settings = common_settings
    asyncio.run(ensure_topics(settings))
    odd: list[tuple[bytes | None, bytes, Headers]] = [
        (b"\xff\x00\x19", b"\xff\xfe{not json", [("dlq_reason", b"malformed-json")]),
        (
            None,
            orjson.dumps(document("x\n\t\u0000y", UNIT)),
            [("dlq_reason", b"schema-violation"), ("dlq_detail", b"line\nbreak \xc3\x28")],
        ),
        (b"19", b"", [("dlq_reason", b"malformed-json"), ("egov_publisher", b"\xff\xff")]),
    ]
    for key, value, hdrs in odd:
        asyncio.run(_produce(settings, settings.topic_dead_letter, key, value, hdrs))
    env = service_env(settings, database_url)
    shown = egov(env, "dead-letters", "list", "--json")
    assert shown.returncode == 0, shown.stderr
    items = [orjson.loads(line) for line in shown.stdout.splitlines()]
    assert len(items) == 3, shown.stdout
    assert len({i["dead_letter"] for i in items}) == 3
    assert {i["reason"] for i in items} == {"malformed-json", "schema-violation"}
    rows = egov(env, "dead-letters", "list")
    assert rows.returncode == 0 and len(rows.stdout.splitlines()) == 3, rows.stdout


def test_the_province_label_stays_within_the_registry_whatever_the_keys(
    common_settings: CommonSettings,
) -> None:
    """Thousands of hostile keys (look-alikes of province codes, binary, long) and values
    name no province the registry does not know: the label's values stay bounded (the
    provinces of both eras and ""), a pre-2025 province is kept, an event's unit places
    a record with a foreign key."""
    registry = UnitRegistry.from_dir(common_settings.units_dir)
    provinces = DeadLetterProvinces(
        RecordDecoder(Contract.load(common_settings.schemas_dir), registry)
    )
    now = datetime.now(UTC)
    labels: set[str] = set()
    hostile = [
        *(f"{n:03d}".encode() for n in range(1000)),
        *(f"{n} ".encode() for n in range(100)),
        *(f"+{n}".encode() for n in range(100)),
        *(bytes([n, 0x31]) for n in range(256) if not 0x30 <= n <= 0x39),
        *(uuid.uuid4().bytes for _ in range(2000)),
        b"\xd9\xa1\xd9\xa9",  # Arabic-Indic digits "19"
        "１９".encode(),  # fullwidth "19"
    ]
    for key in hostile:
        labels.add(provinces.of(key, b"not json", now))
    assert labels == {""}, sorted(labels)[:20]
    assert provinces.of(b"06", None, now) == "06"  # Bac Kan, before the reform
    assert provinces.of(b"zz", orjson.dumps(document("u", UNIT)), now) == PROVINCE
    assert provinces.of(b"zz", orjson.dumps({"unit": "0" * 5000}), now) == ""


# --- ingest: the head-limited protocol ----------------------------------------------------


def test_pipelined_requests_are_each_answered_however_many_arrive_in_one_read(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """A client pipelines one event and 1,000 ``GET /healthz`` on a keep-alive connection
    (HTTP/1.1 allows it; every head is ~40 bytes): each request is answered, in order,
    and the event published once."""
    with served_ingest(common_settings, database_url, tmp_path) as served:
        body = orjson.dumps(event())
        head = request_head(served, len(body))
        probe = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{served.port}\r\n\r\n".encode()
        count = 1000
        stream = head + body + probe * count
        assert len(stream) > 32 * 1024
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(stream)
            got = b""
            deadline = time.monotonic() + 20
            while got.count(b"HTTP/1.1 ") < count + 1 and time.monotonic() < deadline:
                more = _read_all(sock, min(deadline, time.monotonic() + 1))
                if not more and got:
                    break
                got += more
        statuses = re.findall(rb"HTTP/1\.1 (\d{3})", got)
        refused = _metric(served, "egov_ingest_connections_refused_total", "headers-too-large")
        assert statuses[:1] == [b"202"], (statuses[:3], refused)
        assert refused == 0
        assert statuses.count(b"200") == count, (len(statuses), statuses[-3:])


def test_an_early_answer_is_the_only_answer_while_the_body_still_arrives(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """A province gateway uploads a backlog larger than EGOV_MAX_BODY_BYTES over a slow
    link: ingest answers 413 from its Content-Length at once. While the gateway still
    sends its body (its HTTP client reads the answer once the body is sent), nothing
    else may come on that connection, and no slow client is counted: the gateway is
    not one."""
    with served_ingest(
        common_settings,
        database_url,
        tmp_path,
        EGOV_HEADER_TIMEOUT_S="1",
        EGOV_MAX_BODY_BYTES="65536",
        EGOV_MAX_INFLIGHT_BYTES="1048576",
    ) as served:
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(request_head(served, 200_000, SINGLE))
            first = _read_all(sock, time.monotonic() + 1.0)
            assert first.startswith(b"HTTP/1.1 413"), first[:200]
            # The body goes on, 2 KB every 0.1 s, for 3 s (three head deadlines).
            later = b""
            cut = False
            end = time.monotonic() + 3.0
            while time.monotonic() < end:
                try:
                    sock.sendall(b" " * 2048)
                except OSError:
                    cut = True
                    break
                time.sleep(0.1)
                sock.setblocking(False)
                try:
                    later += sock.recv(65536)
                except BlockingIOError:
                    pass
                except OSError:
                    cut = True
                    break
                finally:
                    sock.setblocking(True)
        slow = _metric(served, "egov_ingest_connections_refused_total", "headers-too-slow")
        publish_one(served)  # the service still accepts (nothing held)
        assert _metric(served, "egov_ingest_inflight_bytes") == 0
        assert (later[:60], cut, slow) == (b"", False, 0)


def test_a_chunked_body_over_the_limit_and_a_client_gone_mid_body_hold_nothing(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """With EGOV_MAX_INFLIGHT_BYTES = EGOV_MAX_BODY_BYTES = 64 KiB: a chunked body (no
    Content-Length) larger than that is a 413, a client that hangs up halfway through a
    declared body leaves nothing held, and the next publisher's event is a 202 on the
    topic (a leak would refuse everyone from then on)."""
    with served_ingest(
        common_settings,
        database_url,
        tmp_path,
        EGOV_MAX_BODY_BYTES="65536",
        EGOV_MAX_INFLIGHT_BYTES="65536",
    ) as served:

        def chunks() -> object:
            for _ in range(40):
                yield b" " * 4096

        big = httpx.post(
            served.base + "/v1/events",
            content=chunks(),  # type: ignore[arg-type]
            headers=headers(served.token, SINGLE),
            timeout=30,
        )
        assert big.status_code == 413, big.text
        for _ in range(5):
            with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
                sock.sendall(request_head(served, 60_000) + b" " * 30_000)
                time.sleep(0.1)
        time.sleep(0.5)
        assert _metric(served, "egov_ingest_inflight_bytes") == 0
        sent = publish_one(served)
        on_topic = [
            e
            for r in asyncio.run(_records(common_settings, common_settings.topic_documents))
            for e in _events(r.value)
        ]
        assert sum(1 for e in on_topic if e.get("id") == sent["id"]) == 1


def test_a_body_too_large_for_ever_is_a_413_not_a_503_to_retry(
    common_settings: CommonSettings, database_url: str, tmp_path: Path
) -> None:
    """With the defaults (EGOV_MAX_BODY_BYTES 4 MiB, EGOV_MAX_INFLIGHT_BYTES 8 MiB) and
    nothing under way, a publisher declares a 9 MiB backlog: it must be told 413
    ``body-too-large`` (split it), not 503 ``broker-unavailable`` with Retry-After, which
    its client retries for ever and which reads as a broker outage on the dashboards."""
    with served_ingest(common_settings, database_url, tmp_path) as served:
        assert _metric(served, "egov_ingest_inflight_bytes") == 0
        with socket.create_connection(("127.0.0.1", served.port), timeout=10) as sock:
            sock.sendall(request_head(served, 9 * 1024 * 1024, SINGLE))
            answer = _read_all(sock, time.monotonic() + 2.0)
        publish_one(served)  # the service itself is fine
        assert answer.startswith(b"HTTP/1.1 413"), answer[:400]
        assert b"body-too-large" in answer, answer[:400]
