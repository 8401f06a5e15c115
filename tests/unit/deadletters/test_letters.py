"""Dead letters read, selected, shown and planned for replay: the pure parts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from services.common.units import VN_TZ
from services.deadletters.letters import DeadLetter, Target, events_in
from services.deadletters.replay import plan
from services.deadletters.selection import Selection, parse_since
from services.deadletters.views import Shown

NOW = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)


def letter(place: str = "dl[0]@1", **headers: str) -> DeadLetter:
    value = orjson.dumps({"id": "e1", "source": "urn:s"})
    return DeadLetter(
        place,
        int(NOW.timestamp() * 1000),
        b"19",
        value,
        tuple((k, v.encode()) for k, v in headers.items()),
    )


def test_a_reference_names_its_record_and_an_undecodable_batch_its_range() -> None:
    big = DeadLetter(
        "dl[0]@2", 0, b"19",
        orjson.dumps({"topic": "ev", "partition": 1, "offset": 7, "batch_index": 3}),
        (("dlq_reference", b"1"),),
    )  # fmt: skip
    assert big.target() == Target("ev", 1, 7, 7, 3)
    body = {"topic": "ev", "partition": 0, "offset": 9, "detail": "ev[0] offsets 5..9: could not"}
    batch = DeadLetter("dl[0]@3", 0, None, orjson.dumps(body), (("dlq_reference", b"1"),))
    assert batch.target() == Target("ev", 0, 5, 9)
    assert batch.target() is not None and batch.target().place == "ev[0]@5..9"  # type: ignore[union-attr]
    assert letter().target() is None  # a copy, not a reference


def test_events_of_a_value() -> None:
    assert events_in(b'{"id": "a"}', None) == [{"id": "a"}]
    assert events_in(b'[{"id": "a"}, {"id": "b"}]', None) == [{"id": "a"}, {"id": "b"}]
    assert events_in(b'[{"id": "a"}, {"id": "b"}]', 1) == [{"id": "b"}]
    assert "not JSON" in str(events_in(b"{not json", None))
    assert events_in(None, None) == "the record has no value"


def test_since_reads_a_duration_or_a_time_in_vietnam() -> None:
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("7d", NOW) == NOW - timedelta(days=7)
    assert parse_since("2026-12-06T08:00", NOW) == datetime(2026, 12, 6, 8, tzinfo=VN_TZ)
    assert parse_since("2026-12-06T08:00Z", NOW) == datetime(2026, 12, 6, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="--since"):
        parse_since("yesterday", NOW)


def test_selection() -> None:
    dead = letter(dlq_reason="time-in-future", dlq_source="egov.documents[2]@41")
    bound = letter(dlq_reason="time-in-future", egov_publisher="tdoffice-38")
    assert Selection(reason="time-in-future").takes(dead)
    assert not Selection(reason="unknown-unit").takes(dead)
    assert Selection(source_topic="egov.documents").takes(dead)
    assert not Selection(source_topic="egov.dossiers").takes(dead)
    assert Selection(publisher="-").takes(dead) and not Selection(publisher="-").takes(bound)
    assert Selection(publisher="tdoffice-38").takes(bound)
    assert not Selection(since=NOW + timedelta(seconds=1)).takes(dead)
    assert Selection(province="19").takes_province("19")
    assert not Selection(province="19").takes_province("38")


def test_a_row_escapes_what_a_header_holds() -> None:
    dead = letter(dlq_reason="unknown-unit", dlq_detail="a\tb\nc", dlq_source="ev[0]@1")
    row = Shown(dead, ({"id": "e1", "source": "urn:s"},), "", "", "19").row()
    fields = row.split("\t")
    assert len(fields) == 10 and "\n" not in row
    assert fields[0] == NOW.astimezone(VN_TZ).isoformat(timespec="seconds")
    assert fields[1:8] == ["ev[0]@1", "unknown-unit", "a\\tb\\nc", "-", "19", "19", "e1"]
    assert fields[8:] == ["urn:s", "-"]


def test_replay_takes_one_dead_letter_per_record_and_says_what_it_leaves() -> None:
    first = letter("dl[0]@1", dlq_source="ev[0]@5", dlq_reason="r")
    twice = letter("dl[1]@4", dlq_source="ev[0]@5", dlq_reason="r")
    other = letter("dl[0]@2", dlq_source="ev[0]@5", dlq_batch_index="1", dlq_reason="r")
    broken = letter("dl[0]@3", dlq_source="ev[0]@6", egov_publisher="", dlq_reason="r")
    expired = letter("dl[0]@5", dlq_source="ev[0]@7", dlq_reason="r")
    shown = [
        Shown(first, ({"id": "e1"},), "", "", "19"),
        Shown(twice, ({"id": "e1"},), "", "", "19"),
        Shown(other, ({"id": "e2"},), "", "", "19"),
        Shown(broken, ({"id": "e3"},), "", "", "19"),
        Shown(expired, (), "expired: ev[0] now starts at offset 9", "reference to ev[0]@7", ""),
    ]
    chosen, left = plan(shown)
    assert [s.letter.place for s in chosen] == ["dl[0]@1", "dl[0]@2"]
    assert any(line.startswith("once: dl[1]@4") for line in left), left
    assert any("dl[0]@3" in line and "publisher" in line for line in left), left
    assert any("dl[0]@5" in line and "expired" in line for line in left), left
