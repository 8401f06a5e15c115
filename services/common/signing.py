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

Someone who can write to the topics but does not hold the key cannot forge a signature
for a value of their own; copying a signed value only repeats an event that was valid.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Final

VALIDATED_HEADER: Final = "egov_validated"


class RecordSigner:
    """Signs and verifies record values under one key and one contract fingerprint."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes, contract_fingerprint: bytes) -> None:
        if not key:
            raise ValueError("the record signing key is empty")
        # The key and fingerprint are absorbed once; each record costs a copy and its bytes.
        self._base = hmac.new(key, contract_fingerprint, hashlib.sha256)

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
                return hmac.compare_digest(self.sign(value), signature)
        return False
