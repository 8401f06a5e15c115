"""Ingest's mark on the records it validated, so that metrics workers need not validate
them a second time.

Ingest checks every event against the contract before it produces it. A metrics worker
must check records too, because integrators may publish straight to Kafka; for a record
that ingest produced that is the same check twice, and it was a third of a worker's
cost per event. Ingest therefore adds a header ``egov_validated``: an HMAC-SHA256, under
a key that only the services hold (``EGOV_RECORD_SIGNING_KEY``), of the contract's
fingerprint and the record's value. A worker that finds a signature that verifies, for
the contract it loaded itself, skips the schema check; every other check (units, clock,
grace, duplicates) still runs. A record without the header, with a wrong signature, or
validated under another version of the contract (a rolling upgrade) is validated in full.

A packed record can also carry ingest's summary of its events (services/common/
summaries.py) in ``egov_summary``, trusted under its own HMAC in ``egov_summary_mac``:
over the summary, the value, and the fingerprint of everything the summary was computed
from (contract, KPI catalogue, unit registry), so a worker that loaded anything else
reads the events itself.

Someone who can write to the topics but does not hold the key cannot forge a signature
for a value of their own; copying a signed value only repeats an event that was valid.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

VALIDATED_HEADER: Final = "egov_validated"
SUMMARY_HEADER: Final = "egov_summary"
SUMMARY_MAC_HEADER: Final = "egov_summary_mac"
_SUMMARY_DOMAIN: Final = b"egov-summary/1:"
"""Keeps a summary MAC from ever equalling a record signature, whatever the inputs."""


class RecordSigner:
    """Signs and verifies record values under one key and one contract fingerprint."""

    __slots__ = ("_base", "_summary_base")

    def __init__(
        self, key: bytes, contract_fingerprint: bytes, summary_fingerprint: bytes | None = None
    ) -> None:
        if not key:
            raise ValueError("the record signing key is empty")
        # The key and fingerprint are absorbed once; each record costs a copy and its bytes.
        self._base = hmac.new(key, contract_fingerprint, hashlib.sha256)
        self._summary_base = (
            None
            if summary_fingerprint is None
            else hmac.new(key, _SUMMARY_DOMAIN + summary_fingerprint, hashlib.sha256)
        )

    @property
    def summarizes(self) -> bool:
        """Whether this signer signs and verifies summaries (it has their fingerprint)."""
        return self._summary_base is not None

    def sign(self, value: bytes) -> bytes:
        mac = self._base.copy()
        mac.update(value)
        return mac.hexdigest().encode()

    def header(self, value: bytes) -> tuple[str, bytes]:
        return (VALIDATED_HEADER, self.sign(value))

    def verifies(self, value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> bool:
        """Whether ``headers`` carry a valid signature of ``value`` (constant-time compare)."""
        if not value:
            return False
        for name, signature in headers:
            if name == VALIDATED_HEADER:
                # A header may hold anything, even null: only bytes can be a signature.
                return isinstance(signature, bytes) and hmac.compare_digest(
                    self.sign(value), signature
                )
        return False

    def summary_mac(self, value: bytes, summary: bytes) -> bytes:
        if self._summary_base is None:
            raise ValueError("this signer has no summary fingerprint")
        mac = self._summary_base.copy()
        # Length first: no split of summary + value into two other parts gives the same MAC.
        mac.update(len(summary).to_bytes(8, "big"))
        mac.update(summary)
        mac.update(value)
        return mac.hexdigest().encode()

    def summary_headers(self, value: bytes, summary: bytes) -> list[tuple[str, bytes]]:
        return [(SUMMARY_HEADER, summary), (SUMMARY_MAC_HEADER, self.summary_mac(value, summary))]

    def verified_summary(
        self, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> bytes | None:
        """The record's summary if its MAC verifies under this signer, else None."""
        if not value or self._summary_base is None:
            return None
        summary = mac = None
        for name, header in headers:
            if name == SUMMARY_HEADER:
                summary = header
            elif name == SUMMARY_MAC_HEADER:
                mac = header
        if not isinstance(summary, bytes) or not isinstance(mac, bytes):
            return None
        return summary if hmac.compare_digest(self.summary_mac(value, summary), mac) else None
