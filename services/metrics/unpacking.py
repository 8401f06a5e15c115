"""A fetched record batch the consumer cannot unpack is dead-lettered, not fatal.

aiokafka unpacks each fetched batch inside its fetcher: a batch in a codec this process
lacks (``UnsupportedCodecError``), or a record whose header name is not UTF-8 (its C
parser decodes names strictly; librdkafka and Go clients may send any bytes, and Java's
consumer reads them) raises out of ``getmany``. The worker then exits, its successor
reads the same batch from the same stored position and exits again: the partition never
counts another record, and nothing says which record did it (review 62).

Here each batch the fetcher unpacks is read through :class:`_Batch`: when reading its
records raises, the rest of the batch (from the first record not yet handed out to its
last offset) becomes one stand-in record, value None, header :data:`UNDECODABLE` naming
the offsets and the error. The counting dead-letters it (``Preparer``, reason
``undecodable-batch``) and its offset moves the stored position past the batch, with the
flush that records the dead letter, as for any refused record. The original bytes stay
on the event topic for its retention: the dead letter says where.

A batch whose header cannot be read at all (its length, its offsets) is not covered:
there is no next offset to move to, and aiokafka's own error stands.

Installed once per process by :func:`install` (the metrics worker's app), as a subclass
of aiokafka's ``PartitionRecords`` set in its fetcher module: the one place aiokafka
builds them. Upstream, the same would be an option of the fetcher.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from aiokafka import codec
from aiokafka.consumer import fetcher as aiokafka_fetcher

UNDECODABLE = "egov_undecodable"
"""Header of the stand-in record of a batch that could not be unpacked: its detail."""


@dataclass(frozen=True, slots=True)
class _StandIn:
    """What aiokafka's ``_consumer_record`` reads of a record, for the unread rest of a
    batch: its last offset (the position moves past the batch), no key, no value."""

    offset: int
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int = -1
    timestamp_type: int = 0
    key: bytes | None = None
    value: bytes | None = None
    checksum: int | None = None


class _Batch:
    """One fetched batch, whose records are read as aiokafka reads them until that raises."""

    def __init__(self, batch: Any, tp: Any) -> None:
        self._batch = batch
        self._tp = tp

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def __iter__(self) -> Iterator[Any]:
        handed = self._batch.base_offset - 1
        try:
            for record in self._batch:  # decompressed and parsed here, record by record
                handed = record.offset
                yield record
        except Exception as exc:  # any error of the batch's bytes, not of this process
            last = self._batch.next_offset - 1
            if last <= handed:
                return  # nothing of it left unread
            detail = (
                f"{self._tp.topic}[{self._tp.partition}] offsets {handed + 1}..{last}: "
                f"the record batch could not be unpacked ({type(exc).__name__}: {exc})"
            )
            yield _StandIn(last, ((UNDECODABLE, detail[:2000].encode()),))

    def __next__(self) -> Any:  # a control batch's marker (aiokafka reads it with next)
        return next(self._batch)


class _Records:
    """A fetch's record set whose batches are read as :class:`_Batch`."""

    def __init__(self, records: Any, tp: Any) -> None:
        self._records = records
        self._tp = tp

    def has_next(self) -> bool:
        return bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        return None if batch is None else _Batch(batch, self._tp)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._records, name)


class TolerantPartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one partition's fetch, batches read as :class:`_Batch`."""

    def __init__(self, tp: Any, records: Any, *args: Any) -> None:
        super().__init__(tp, _Records(records, tp), *args)


class MissingCodec(RuntimeError):
    """This process cannot decompress a codec Kafka producers may use."""


def require_codecs() -> None:
    """Refuse to start without every codec a publisher's producer may choose: each of
    Kafka's four is one setting away in Java, librdkafka and Go clients, and a batch in
    a missing one could only be dead-lettered unread (the dependency is
    ``aiokafka[lz4,snappy,zstd]``, cramjam; pyproject.toml)."""
    missing = [
        name
        for name, present in (
            ("gzip", codec.has_gzip),
            ("snappy", codec.has_snappy),
            ("lz4", codec.has_lz4),
            ("zstd", codec.has_zstd),
        )
        if not present()
    ]
    if missing:
        raise MissingCodec(
            f"aiokafka cannot decompress {', '.join(missing)} here: install egov-pulse's "
            "dependencies (aiokafka[lz4,snappy,zstd] needs cramjam)"
        )


def install() -> None:
    """Have aiokafka's fetcher (this process's) build :class:`TolerantPartitionRecords`."""
    aiokafka_fetcher.PartitionRecords = TolerantPartitionRecords
