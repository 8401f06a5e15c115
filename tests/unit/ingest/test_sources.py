"""Keys bound to their sources: prefix matching, the 403 reasons, and the CLI's checks. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.common.contract import Contract
from services.common.headers import publisher_of
from services.common.units import UnitRegistry
from services.ingest.keys import (
    ApiKey,
    check_name,
    check_sources,
    scope_violations,
    source_allowed,
)
from services.ingest.validation import EventValidator, Limits, Record

CONTRACT = Contract.load()
REGISTRY = UnitRegistry.from_dir()
NOW = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
TDOFFICE = "https://tdoffice.thanhhoa.gov.vn/"


@pytest.mark.parametrize(
    ("source", "prefix", "allowed"),
    [
        ("https://tdoffice.thanhhoa.gov.vn/nongcong", TDOFFICE, True),
        ("https://tdoffice.thanhhoa.gov.vn/nongcong", "https://tdoffice.thanhhoa.gov.vn", True),
        ("https://tdoffice.thanhhoa.gov.vn", "https://tdoffice.thanhhoa.gov.vn", True),
        # Not a boundary: another host that merely starts with the same characters.
        (
            "https://tdoffice.thanhhoa.gov.vn.example.com/",
            "https://tdoffice.thanhhoa.gov.vn",
            False,
        ),
        ("https://tdoffice.thanhhoa.gov.vnx", "https://tdoffice.thanhhoa.gov.vn", False),
        # A port of the host is the host; a user name before '@' names another host.
        ("https://tdoffice.thanhhoa.gov.vn:8443/nc", "https://tdoffice.thanhhoa.gov.vn", True),
        (
            "https://tdoffice.thanhhoa.gov.vn:x@dichvucong.thanhhoa.gov.vn/",
            "https://tdoffice.thanhhoa.gov.vn",
            False,
        ),
        (
            "https://tdoffice.thanhhoa.gov.vn:443@evil.example/",
            "https://tdoffice.thanhhoa.gov.vn",
            False,
        ),
        ("https://tdoffice.thanhhoa.gov.vn:8443/a@b", "https://tdoffice.thanhhoa.gov.vn", True),
        ("urn:egov:tdoffice:38", "urn:egov:tdoffice:", True),
        ("urn:egov:tdoffice:38", "urn:egov:tdoffice:3", False),
        ("urn:egov:dvc:38", "urn:egov:tdoffice:", False),
        ("https://dichvucong.thanhhoa.gov.vn/motcua", TDOFFICE, False),
        ("anything", "", False),
    ],
)
def test_a_prefix_allows_its_own_source_and_what_lies_under_it(
    source: str, prefix: str, allowed: bool
) -> None:
    assert source_allowed(source, prefix) is allowed


def key(*sources: str) -> ApiKey:
    types = frozenset(CONTRACT.event_types)
    return ApiKey("0123456789ab", "tdoffice-38", frozenset({"38"}), types, b"", sources=sources)


def records(*sources: str) -> list[Record]:
    events = []
    for n, source in enumerate(sources):
        example = dict(CONTRACT.examples("vn.egov.document.issued", "valid")[0][1])
        example.update(id=f"e{n}", source=source, unit="14758", time=NOW.isoformat())
        events.append(example)
    limits = Limits(timedelta(minutes=5), timedelta(days=14))
    found, errors = EventValidator(CONTRACT, REGISTRY, limits).check(events, NOW)
    assert errors == []
    return found


def test_a_foreign_source_is_refused_by_index_naming_it_and_the_allowed_prefixes() -> None:
    found = records(TDOFFICE + "nongcong", "https://dichvucong.thanhhoa.gov.vn/x", TDOFFICE)
    denied = scope_violations(key(TDOFFICE, "urn:egov:tdoffice:"), found, REGISTRY)
    assert [(e.index, e.pointer, e.code) for e in denied] == [(1, "/source", "source-out-of-scope")]
    assert "'https://dichvucong.thanhhoa.gov.vn/x'" in denied[0].reason
    assert f"its sources: {TDOFFICE}, urn:egov:tdoffice:" in denied[0].reason


def test_a_key_bound_to_nothing_says_how_to_bind_it() -> None:
    """Keys made before sources were bound (migration 0013) publish nothing until bound."""
    denied = scope_violations(key(), records(TDOFFICE + "nongcong"), REGISTRY)
    assert [(e.index, e.code) for e in denied] == [(0, "source-out-of-scope")]
    assert "bound to no sources" in denied[0].reason
    assert "egov-pulse keys sources tdoffice-38 --sources" in denied[0].reason


def test_the_cli_refuses_an_empty_or_blank_source_list() -> None:
    assert check_sources([]) == ["--sources may not be empty"]
    assert check_sources([TDOFFICE, "a b"]) != []
    assert check_sources([TDOFFICE, "urn:egov:tdoffice:"]) == []


def test_a_key_name_fits_the_publisher_header_the_workers_accept() -> None:
    """The name travels as egov_publisher; a worker dead-letters a header over 200 bytes."""
    assert check_name("tdoffice-38") == []
    assert check_name("hội-nghị-" + "x" * 180) == []
    assert check_name("x" * 201) != [] and check_name("   ") != []
    # Control characters: the name travels in a header and is stored with its dossiers.
    assert check_name("tdoffice\x0038") != [] and check_name("tdoffice\n38") != []


def test_a_publisher_header_holding_a_nul_names_no_publisher() -> None:
    with pytest.raises(ValueError, match="NUL"):
        publisher_of([("egov_publisher", b"tdoffice\x0038")])
    assert publisher_of([("egov_publisher", "hội-nghị".encode())]) == "hội-nghị"
