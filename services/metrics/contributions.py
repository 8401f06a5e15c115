"""The names of the tally arithmetic that metrics modules import from here: its one home
is services/common/tally.py (the batch every decode path produces, and its sums)."""

from __future__ import annotations

from services.common.tally import Deltas as Deltas
from services.common.tally import dedup_digest as dedup_digest
