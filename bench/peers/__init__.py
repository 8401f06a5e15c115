"""Peer comparisons: the same KPIs in another stream processor (see README.md here).

Imports nothing at module level: the Quix app imports ``bench.peers.kpi`` from the
peer virtualenv, which lacks this project's dependencies.
"""

from __future__ import annotations

from typing import Any


def run(mode: str) -> list[Any]:
    from bench.peers import compare

    return compare.run(mode)
