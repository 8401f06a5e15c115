"""The bounded request head shared by ingest, the alerts API and the wall (review 87)."""

from __future__ import annotations

import pytest
from pydantic_settings import BaseSettings

from services.alerts.settings import AlertsSettings
from services.common.httphead import (
    HeadLimitedProtocol,
    head_limited,
    headers_too_large,
    headers_too_slow,
)
from services.common.settings import HeadBounds
from services.common.variables import field_variables
from services.ingest.settings import IngestSettings
from services.wall.settings import WallSettings

SERVICES: tuple[type[BaseSettings], ...] = (IngestSettings, AlertsSettings, WallSettings)


def test_ingest_answers_stay_what_its_contract_lists() -> None:
    """The bytes ingest sent before the protocol moved to services/common (review 82)."""
    assert headers_too_slow(10.0).response() == (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
        b"content-length: 185\r\nconnection: close\r\n\r\n"
        b'{"type":"https://egov-pulse.vn/problems/headers-too-slow",'
        b'"title":"Request head too slow","status":408,'
        b'"detail":"The request head was not complete within 10 s; send the request again."}'
    )
    assert headers_too_large(32768).response() == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: application/problem+json\r\ncontent-length: 174\r\n"
        b"connection: close\r\n\r\n"
        b'{"type":"https://egov-pulse.vn/problems/headers-too-large",'
        b'"title":"Request header fields too large","status":431,'
        b'"detail":"The request line and headers exceed 32768 bytes."}'
    )


@pytest.mark.parametrize("settings", SERVICES)
def test_every_http_service_reads_the_same_head_bounds(
    settings: type[BaseSettings], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert field_variables(settings, "header_timeout_s") == ["EGOV_HEADER_TIMEOUT_S"]
    assert field_variables(settings, "max_header_bytes") == ["EGOV_MAX_HEADER_BYTES"]
    monkeypatch.setenv("EGOV_HEADER_TIMEOUT_S", "2.5")
    monkeypatch.setenv("EGOV_MAX_HEADER_BYTES", "8192")
    read = settings()
    assert isinstance(read, HeadBounds)
    assert (read.header_timeout_s, read.max_header_bytes) == (2.5, 8192)


@pytest.mark.parametrize("settings", SERVICES)
def test_the_defaults_are_ten_seconds_and_32_kib(settings: type[BaseSettings]) -> None:
    fields = settings.model_fields
    assert fields["header_timeout_s"].default == 10.0
    assert fields["max_header_bytes"].default == 32 * 1024


def test_each_service_gets_its_own_bounded_class() -> None:
    refused: list[str] = []
    one = head_limited(1.5, 8192, refused.append, body_gap_s=2.0)
    other = head_limited(10.0, 32768)
    assert issubclass(one, HeadLimitedProtocol) and issubclass(other, HeadLimitedProtocol)
    assert (one.head_timeout_s, one.max_head_bytes, one.body_gap_s) == (1.5, 8192, 2.0)
    assert (other.head_timeout_s, other.max_head_bytes, other.refused) == (10.0, 32768, None)
    assert HeadLimitedProtocol.head_timeout_s == 10.0  # the base is never changed
