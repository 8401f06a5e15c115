"""Ingest's mark on the records it validated and summarised, and the workers' check of it.

Ingest checks every event against the contract before it produces it. A metrics worker
checks records too, because anyone who can write a topic can write anything; for a record
that ingest produced that is the same check twice, a third of a worker's cost per event.
Ingest therefore adds ``egov_validated``: an HMAC-SHA256, under a key that only the
services hold (``EGOV_RECORD_SIGNING_KEY``), of the contract's fingerprint and the record
as a worker will read it. A worker whose own signer verifies it skips the schema check;
every other check (units, clock, grace, duplicates) still runs.

A packed record can also carry ingest's summary of its events (services/common/
summaries.py) in ``egov_summary``, trusted under its own MAC in ``egov_summary_mac``, keyed
with the fingerprint of everything the summary was computed from (contract, KPI catalogue,
unit registry) and of the summary format's version. A signer writes summaries under one
fingerprint and may verify those of older versions too (``verifies_summaries_of``):
``check_summary`` says which version a summary was signed under.

Version 2 (this module) covers the whole record, not only its value: the topic, the record
key, every ``egov_`` header (the acceptance time, ``egov_backfill``, ``egov_publisher``, the
summary; in any order, each occurrence) and the value. A signed record copied into another
topic, re-keyed, or given a backfill header is no longer signed. Each MAC header names its
version, the key (a short id derived from it) and the fingerprint it was made under, so a
worker tells apart:

- a MAC of an older version, another key (a rotation) or another fingerprint (a rolling
  upgrade of the contract, catalogue or registry): not for it, so the record is read as
  unsigned and validated in full; one naming a publisher is dead-lettered
  ``publisher-unsigned`` unless its ``egov_ingested`` verifies (services/metrics/
  pipeline.py, review 86);
- a MAC made for its own key and fingerprint that does not verify: forged or altered, and
  ``check_summary`` says so (the worker dead-letters the record);
- a summary without a MAC: claimed, not signed (dead-lettered too).

Someone without the key cannot sign a record of their own; copying a signed record whole
only repeats events that were valid (dedup counts them once).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Final

VALIDATED_HEADER: Final = "egov_validated"
SUMMARY_HEADER: Final = "egov_summary"
SUMMARY_MAC_HEADER: Final = "egov_summary_mac"
INGESTED_HEADER: Final = "egov_ingested"
"""A MAC of the record under the key alone (no contract or summary fingerprint): the
record came from a service holding the key, whatever contract it ran. A worker on another
contract (a rolling upgrade) still validates such a record in full, but believes its
acceptance time (``egov_accepted_ms``) as it would a signed one's."""
SIGNED_PREFIX: Final = "egov_"
"""Every header with this prefix is covered by the MACs (except the MACs themselves)."""
VERSION: Final = b"v2"
_MAC_HEADERS: Final = frozenset({VALIDATED_HEADER, SUMMARY_MAC_HEADER})
"""Headers no MAC covers. ``egov_ingested`` is not one of them: ingest adds it before the
summary's MAC and the record's signature, which cover it like any ``egov_`` header (as
the workers of the release before it, which did not know it, expect); it covers the
headers before it, so its own check leaves it out (:meth:`RecordSigner.ingested`)."""
_RECORD_DOMAIN: Final = b"egov-record/2:"
_SUMMARY_DOMAIN: Final = b"egov-summary/2:"
"""Keep a summary MAC from ever equalling a record signature, whatever the inputs."""
_INGESTED_DOMAIN: Final = b"egov-ingested/2:"
_ID_BYTES: Final = 8
"""Hex digits of the key and fingerprint ids in a MAC header: enough to tell a rotation or
an upgrade apart, and they give nothing of the key away (HMAC output)."""
_PREFIX_SIZE: Final = len(VERSION) + 3 + 4 * _ID_BYTES
"""Bytes of a MAC header's prefix (version:key id:fingerprint id:)."""
_INGESTED_PREFIX_SIZE: Final = len(VERSION) + 2 + 2 * _ID_BYTES
"""Bytes of an ``egov_ingested`` header's prefix (version:key id:)."""
_NONE: Final = (2**64 - 1).to_bytes(8, "big")
"""The length written for an absent key or header value (no real length is this big)."""

Header = tuple[str, object]


class SummaryCheck(Enum):
    """What a worker may do with a record's summary (``RecordSigner.check_summary``)."""

    NONE = "none"
    """No summary header: nothing claimed."""
    NOT_OURS = "not-ours"
    """An older version, another key or another fingerprint: read the events instead."""
    VERIFIED = "verified"
    FORGED = "summary-forged"
    """A MAC for this key and fingerprint that does not verify (the value, topic, key,
    a header or the summary was changed, or someone guessed): dead-letter the record."""
    UNSIGNED = "summary-unsigned"
    """A summary without a usable MAC header: dead-letter the record."""


def _framed(data: bytes | None) -> bytes:
    """``data`` with its length first, so no split of the parts gives the same input."""
    if data is None:
        return _NONE
    return len(data).to_bytes(8, "big") + data


def covered_headers(headers: Iterable[Header]) -> list[tuple[bytes, bytes | None]]:
    """The headers a MAC covers, in a canonical order (sorted: producers and tools may keep
    any order; every occurrence counts, so a duplicated header is a change)."""
    out = []
    for name, value in headers:
        if isinstance(name, str) and name.startswith(SIGNED_PREFIX) and name not in _MAC_HEADERS:
            out.append((name.encode(), value if isinstance(value, bytes) else None))
    out.sort(key=lambda h: (h[0], h[1] is None, h[1] or b""))
    return out


class RecordSigner:
    """Signs records under one key, one contract fingerprint and (for summaries) one
    summary fingerprint; verifies them under that key and the ``also`` keys (a rotation:
    ``EGOV_RECORD_VERIFYING_KEYS``, the next key before ingest signs with it, the previous
    one while its records are still read)."""

    __slots__ = (
        "_base", "_ingested", "_ingested_prefix", "_keys", "_older", "_others", "_prefix",
        "_summary_base", "_summary_prefix",
    )  # fmt: skip

    def __init__(
        self,
        key: bytes,
        contract_fingerprint: bytes,
        summary_fingerprint: bytes | None = None,
        also: Sequence[bytes] = (),
    ) -> None:
        if not key:
            raise ValueError("the record signing key is empty")
        self._keys = (key, *(k for k in also if k and k != key))
        self._older: dict[bytes, tuple[int | None, hmac.HMAC]] = {}
        """Summary MAC prefixes this signer verifies but does not write: older versions,
        other keys; with the version (None: the current one)."""
        key_id = _hex_id(key, b"key-id")
        # The key and fingerprint are absorbed once; each record costs a copy and its bytes.
        self._base = hmac.new(key, _RECORD_DOMAIN + contract_fingerprint, hashlib.sha256)
        self._prefix = b"%s:%s:%s:" % (VERSION, key_id, _hex_id(key, contract_fingerprint))
        self._others: dict[bytes, hmac.HMAC] = {}
        """Record signature prefixes of the ``also`` keys, with their bases."""
        self._ingested: dict[bytes, hmac.HMAC] = {}
        for k in self._keys:
            prefix = b"%s:%s:" % (VERSION, _hex_id(k, b"key-id"))
            self._ingested[prefix] = hmac.new(k, _INGESTED_DOMAIN, hashlib.sha256)
            if k is not key:
                fp_id = _hex_id(k, contract_fingerprint)
                base = hmac.new(k, _RECORD_DOMAIN + contract_fingerprint, hashlib.sha256)
                self._others[b"%s%s:" % (prefix, fp_id)] = base
        self._ingested_prefix = b"%s:%s:" % (VERSION, key_id)
        self._summary_base = None
        self._summary_prefix = b""
        if summary_fingerprint is not None:
            fp = _SUMMARY_DOMAIN + summary_fingerprint
            self._summary_base = hmac.new(key, fp, hashlib.sha256)
            self._summary_prefix = b"%s:%s:%s:" % (VERSION, key_id, _hex_id(key, fp))
            self._verify_summaries(None, summary_fingerprint, self._keys[1:])

    def verifies_summaries_of(self, version: int, summary_fingerprint: bytes) -> None:
        """Also verify summaries made under ``summary_fingerprint``, an older version's:
        ``check_summary`` reports them as of ``version`` (never written by this signer)."""
        self._verify_summaries(version, summary_fingerprint, self._keys)

    def _verify_summaries(
        self, version: int | None, summary_fingerprint: bytes, keys: Sequence[bytes]
    ) -> None:
        fp = _SUMMARY_DOMAIN + summary_fingerprint
        for k in keys:
            prefix = b"%s:%s:%s:" % (VERSION, _hex_id(k, b"key-id"), _hex_id(k, fp))
            self._older[prefix] = (version, hmac.new(k, fp, hashlib.sha256))

    @property
    def summarizes(self) -> bool:
        """Whether this signer signs and verifies summaries (it has their fingerprint)."""
        return self._summary_base is not None

    @staticmethod
    def _mac(
        base: hmac.HMAC, topic: str, key: bytes | None, value: bytes, headers: Iterable[Header]
    ) -> bytes:
        mac = base.copy()
        mac.update(_framed(topic.encode()))
        mac.update(_framed(key))
        covered = covered_headers(headers)
        mac.update(len(covered).to_bytes(8, "big"))
        for name, header in covered:
            mac.update(_framed(name))
            mac.update(_framed(header))
        mac.update(value)
        return mac.hexdigest().encode()

    def header(
        self, value: bytes, *, topic: str, key: bytes | None, headers: Sequence[Header] = ()
    ) -> tuple[str, bytes]:
        """The ``egov_validated`` header of a record with these topic, key, value and
        (other) headers: add it last, after every ``egov_`` header it must cover."""
        return (VALIDATED_HEADER, self._prefix + self._mac(self._base, topic, key, value, headers))

    def verifies(
        self, value: bytes | None, headers: Sequence[Header], *, topic: str, key: bytes | None
    ) -> bool:
        """Whether ``headers`` carry a valid signature of the record under this signer's
        contract and one of its keys."""
        if not value:
            return False
        for name, signature in headers:
            if name == VALIDATED_HEADER:
                # A header may hold anything, even null: only bytes can be a signature.
                if not isinstance(signature, bytes):
                    return False
                prefix, base = self._prefix, self._base
                if not signature.startswith(prefix):
                    prefix = signature[:_PREFIX_SIZE]
                    found = self._others.get(prefix)
                    if found is None:
                        return False
                    base = found
                mac = self._mac(base, topic, key, value, headers)
                return hmac.compare_digest(prefix + mac, signature)
        return False

    def signed_headers(
        self,
        value: bytes,
        *,
        topic: str,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
        summary: bytes | None = None,
    ) -> list[tuple[str, bytes]]:
        """``headers`` with everything ingest adds to a record it validated, in the one
        order the workers of this release and of the one before verify: the summary
        (when given), ``egov_ingested`` over the ``egov_`` headers so far, the summary's
        MAC and the record's signature over all of them."""
        out = list(headers)
        if summary is not None:
            out = [h for h in out if h[0] != SUMMARY_HEADER]
            with_summary = [*out, (SUMMARY_HEADER, summary)]
            out.append(self.ingested_header(value, topic=topic, key=key, headers=with_summary))
            out += self.summary_headers(value, summary, topic=topic, key=key, headers=out)
        else:
            out.append(self.ingested_header(value, topic=topic, key=key, headers=out))
        out.append(self.header(value, topic=topic, key=key, headers=out))
        return out

    def ingested_header(
        self, value: bytes, *, topic: str, key: bytes | None, headers: Sequence[Header] = ()
    ) -> tuple[str, bytes]:
        """The ``egov_ingested`` header of a record (see :data:`INGESTED_HEADER`): add it
        after every ``egov_`` header it must cover (the summary's included) and before the
        summary's MAC and the record's signature, which cover it."""
        base = self._ingested[self._ingested_prefix]
        before = [h for h in headers if h[0] != INGESTED_HEADER]
        return (
            INGESTED_HEADER,
            self._ingested_prefix + self._mac(base, topic, key, value, before),
        )

    def ingested(
        self, value: bytes | None, headers: Sequence[Header], *, topic: str, key: bytes | None
    ) -> bool:
        """Whether the record carries a valid ``egov_ingested`` MAC under one of this
        signer's keys: it came from a service holding the key, whatever its contract."""
        if not value:
            return False
        for name, mac in headers:
            if name == INGESTED_HEADER:
                if not isinstance(mac, bytes):
                    return False
                prefix = mac[:_INGESTED_PREFIX_SIZE]
                base = self._ingested.get(prefix)
                if base is None:
                    return False
                before = [h for h in headers if h[0] != INGESTED_HEADER]
                expected = prefix + self._mac(base, topic, key, value, before)
                return hmac.compare_digest(expected, mac)
        return False

    def summary_headers(
        self,
        value: bytes,
        summary: bytes,
        *,
        topic: str,
        key: bytes | None,
        headers: Sequence[Header] = (),
    ) -> list[tuple[str, bytes]]:
        """``egov_summary`` and its MAC, for a record with these topic, key, value and
        (other) headers; any ``egov_summary`` among ``headers`` is replaced."""
        if self._summary_base is None:
            raise ValueError("this signer has no summary fingerprint")
        kept = [h for h in headers if h[0] != SUMMARY_HEADER]
        covered = [*kept, (SUMMARY_HEADER, summary)]
        mac = self._mac(self._summary_base, topic, key, value, covered)
        return [(SUMMARY_HEADER, summary), (SUMMARY_MAC_HEADER, self._summary_prefix + mac)]

    def check_summary(
        self, value: bytes | None, headers: Sequence[Header], *, topic: str, key: bytes | None
    ) -> tuple[SummaryCheck, bytes | None, int | None]:
        """What the record's summary is worth to this signer, and the summary when VERIFIED
        with the version it was signed under: None for the fingerprint this signer writes
        under, else the one given to ``verifies_summaries_of``."""
        summary = mac = None
        claimed = False
        for name, header in headers:
            if name == SUMMARY_HEADER and header is not None:  # a null header claims nothing
                summary, claimed = header, True
            elif name == SUMMARY_MAC_HEADER:
                mac = header
        if not claimed:
            return SummaryCheck.NONE, None, None
        if not isinstance(mac, bytes) or not isinstance(summary, bytes):
            return SummaryCheck.UNSIGNED, None, None
        version: int | None = None
        base, prefix = self._summary_base, self._summary_prefix
        if base is None or not mac.startswith(prefix):
            prefix = mac[:_PREFIX_SIZE]
            version, base = self._older.get(prefix, (None, None))
            if base is None:
                return SummaryCheck.NOT_OURS, None, None
        expected = prefix + self._mac(base, topic, key, value or b"", headers)
        if value and hmac.compare_digest(expected, mac):
            return SummaryCheck.VERIFIED, summary, version
        return SummaryCheck.FORGED, None, None

    def verified_summary(
        self, value: bytes | None, headers: Sequence[Header], *, topic: str, key: bytes | None
    ) -> bytes | None:
        """The record's summary if its MAC verifies under this signer, else None."""
        check, summary, _ = self.check_summary(value, headers, topic=topic, key=key)
        return summary if check is SummaryCheck.VERIFIED else None


def _hex_id(key: bytes, what: bytes) -> bytes:
    return hmac.new(key, b"id:" + what, hashlib.sha256).hexdigest()[: 2 * _ID_BYTES].encode()
