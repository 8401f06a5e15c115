"""Events keyed by something else than their province, published again keyed by it.

The contract keys every record by the province its events' units roll up to at the
events' time (schemas/CONTRACT.md, section 5), and a worker's figures are the sums of
the partitions it owns: everything one KPI rolls up must land in one partition.
Ingest keys that way; an integrator publishing straight to Kafka may not (another key,
a commune's code, no key at all), and its events then land in any partition. Counted
there, a province's figures were split between workers, and the readers, which keep one
worker's figure per unit (``merge_figures``), showed a part of them, silently (review 71).

So a worker counts an event validated in full (records no ingest vouches for) only if
its record's key is that province and the record is on that key's partition (murmur2,
Kafka's default partitioner; review 76: librdkafka's default is CRC32); else the event is
published again to its topic, keyed by its province, and counted when it arrives on that
province's partition. Like a
dead letter it is sent before the offsets move on (at least once: a crash in between
sends it again, and the dedup keys, which hold across partitions, count it once), with
the record's Kafka timestamp and headers, so the grace period and a backfill are judged
as for the original. The
records of a run keep their order per province. Summaries and records ingest signed are
not looked at: the MAC covers their key, which ingest set from the same registry.

A batch's events for one province go in records of at most ``FORWARD_MAX_BYTES`` (the
workers' producer refuses a larger one, which a topic may still hold: review 74); an
event larger than that alone cannot be sent, and its record is dead-lettered instead
(services/metrics/agents.py), never retried for ever.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka.partitioner import murmur2

FORWARD_MAX_BYTES = 900_000
"""Largest value a forward carries: Faust's producer refuses a record above its
``producer_max_request_size`` (1,000,000 bytes with key and headers; services/metrics/
app.py keeps it)."""


@functools.lru_cache(maxsize=4096)
def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as ingest's
    producer, aiokafka's and Java's; librdkafka's default is CRC32): a record keyed by its
    province elsewhere (another client's partitioner, a partition chosen by hand) splits
    the province's figures just as a wrong key does, and is moved the same way."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class Forward:
    """Events of one record for one province, to publish again keyed by it."""

    topic: str
    key: bytes
    value: bytes
    timestamp: float | None
    """The record's Kafka timestamp (epoch seconds): the grace is judged against it."""
    headers: tuple[tuple[str, bytes], ...]
    """The record's own (``egov_backfill``, ``egov_accepted_ms``: read there as here)."""
    events: int
    source: str
    """Where the events were: ``topic[partition]@offset``."""
    had_key: bytes | None
    partition: int = -1
    offset: int = -1


@dataclass(slots=True)
class Moves:
    """The events of one decoding loop that go to another key, grouped per record and
    province in the order they were met (:meth:`forwards`)."""

    _groups: dict[tuple[str, int, int, str], tuple[Any, list[Any], bool]] = field(
        default_factory=dict
    )

    def add(self, record: Any, province: str, element: Any, single: bool) -> None:
        """``element`` (a parsed event) of ``record`` (a single event's record when
        ``single``) belongs to ``province``'s partition."""
        where = (record.topic, record.partition, record.offset, province)
        group = self._groups.get(where)
        if group is None:
            self._groups[where] = (record, [element], single)
        else:
            group[1].append(element)

    def forwards(self) -> list[Forward]:
        out = []
        for (*_, province), (record, elements, single) in self._groups.items():
            values = [(record.value, 1)] if single else _batch_values(elements)
            for value, events in values:
                out.append(
                    Forward(
                        record.topic,
                        province.encode(),
                        value,
                        record.timestamp,
                        tuple(record.headers),
                        events,
                        f"{record.topic}[{record.partition}]@{record.offset}",
                        record.key,
                        record.partition,
                        record.offset,
                    )
                )
        return out


def _batch_values(elements: Sequence[Any]) -> list[tuple[bytes, int]]:
    """Batch records' values holding ``elements`` in order, each of at most
    FORWARD_MAX_BYTES unless one event alone is larger, with how many events each holds.
    An event orjson cannot write back (nested deeper than it writes) raises: its record is
    dead-lettered as unprocessable, whole."""
    whole = orjson.dumps(list(elements))
    if len(whole) <= FORWARD_MAX_BYTES:
        return [(whole, len(elements))]
    out: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    size = 2
    for element in elements:
        part = orjson.dumps(element)
        if parts and size + len(part) + 1 > FORWARD_MAX_BYTES:
            out.append((b"[" + b",".join(parts) + b"]", len(parts)))
            parts, size = [], 2
        parts.append(part)
        size += len(part) + 1
    out.append((b"[" + b",".join(parts) + b"]", len(parts)))
    return out
