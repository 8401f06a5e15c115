"""The stream agents: decode each batch of records, count what is valid, dead-letter the rest."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterable
from typing import Any

import faust

from services.metrics.decoding import Counted, RecordDecoder, Rejected
from services.metrics.exposition import PipelineMetrics
from services.metrics.settings import MetricsSettings
from services.metrics.state import EventCounts

log = logging.getLogger(__name__)


class EventPipeline:
    """What the agent does with one batch; kept apart from Faust so it is easy to test."""

    def __init__(self, decoder: RecordDecoder, counts: EventCounts, metrics: PipelineMetrics):
        self.decoder = decoder
        self.counts = counts
        self.metrics = metrics

    def process(self, value: bytes | None) -> Rejected | None:
        outcome = self.decoder.decode(value)
        if isinstance(outcome, Counted):
            self.counts.apply(outcome)
            self.metrics.processed.labels(outcome.event.type).inc()
            return None
        return outcome


def dead_letter_headers(event: Any, rejected: Rejected) -> dict[str, bytes]:
    """Why and from where: enough for an operator to find and replay the record."""
    message = event.message
    return {
        "dlq_reason": rejected.reason.encode(),
        "dlq_detail": rejected.detail[:2000].encode(),
        "dlq_source": f"{message.topic}[{message.partition}]@{message.offset}".encode(),
    }


def register_agents(app: faust.App, settings: MetricsSettings, pipeline: EventPipeline) -> None:
    """Attach the event agent to ``app``; one agent reads all three family topics."""
    source = app.topic(
        *settings.event_topics, key_type=bytes, value_type=bytes, value_serializer="raw"
    )
    dead_letter = app.topic(settings.topic_dead_letter, value_serializer="raw")

    async def count_events(stream: AsyncIterable[Any]) -> None:
        async for events in stream.take_events(  # type: ignore[attr-defined]
            settings.metrics_batch_size, within=settings.metrics_batch_within_s
        ):
            for event in events:
                rejected = pipeline.process(event.value)
                if rejected is None:
                    continue
                pipeline.metrics.dead_lettered.labels(event.message.topic, rejected.reason).inc()
                await dead_letter.send(
                    key=event.key,
                    value=event.value,
                    headers=dead_letter_headers(event, rejected),
                )

    app.agent(source, name="count-events")(count_events)
