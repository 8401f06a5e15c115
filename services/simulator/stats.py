"""What one simulator run did, counted as it goes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class SimulatorStats:
    """Event and request counts of a run; ``summary()`` is the one line the CLI prints.

    ``accepted`` counts events the ingest service answered 2xx for; ``refused`` events
    it answered 4xx for (never retried); ``failed`` events given up on after retries.
    """

    generated: int = 0
    late: int = 0
    duplicates: int = 0
    batches: int = 0
    accepted: int = 0
    refused: int = 0
    refusals: int = 0
    retries: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (
            f"simulator: {self.generated} events generated ({self.late} late, "
            f"{self.duplicates} duplicates) in {self.batches} batches: {self.accepted} accepted, "
            f"{self.refused} refused in {self.refusals} requests, {self.failed} failed, "
            f"{self.retries} retries"
        )
