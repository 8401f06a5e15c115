"""Review 75: the docs today's commits (82888fb..5afafa1) added or changed, read against
the code as it is now. Each test was a strict xfail for a statement in README.md or
docs/*.md that was false or made stale today, asserting what the fixed doc says; the
three docs were fixed the same day.

1. docs/alerts.md, "Refused at start-up": the URLs of EGOV_METRICS_URLS,
   EGOV_ALERTMANAGER_URL, EGOV_INGEST_URL, EGOV_ALERT_WEBHOOK_URL or
   EGOV_ALERTS_PUBLIC_URL are checked, "(empty still turns the first three off)". The
   first three include EGOV_METRICS_URLS, whose emptiness the same sentence says is
   refused (services/alerts/settings.py ``_workers``), and leave out
   EGOV_ALERT_WEBHOOK_URL, which empty does turn off (``_url_or_off``).
2. docs/runbooks.md, EgovRecordsMiskeyed: "An event too large to publish again alone
   (above 900 KB) is dead-lettered instead". 900 KB is where a batch's forwards are cut
   (``FORWARD_MAX_BYTES``); a single-event record is forwarded as it is, whatever its
   size, and any forward is dead-lettered (``unforwardable``) only when the producer
   refuses it (``TOO_LARGE_ERRORS``: Faust's ``producer_max_request_size``, 1,000,000
   bytes with key and headers). A 950 KB record is forwarded, not dead-lettered.
3. README.md: ``EGOV_TOPIC_PARTITIONS`` is "partitions per event topic: the ceiling on
   metrics workers", and "each event topic has `EGOV_TOPIC_PARTITIONS` partitions". Since
   543cb45 (today) an existing topic keeps the partitions it was created with whatever
   the setting says (services/common/kafka.py ``ensure_topics`` creates missing topics
   only, ``_say_partitions`` warns); docs/runbooks.md, "More metrics workers than
   partitions", says so, README still tells an operator that raising it scales out.
"""

from __future__ import annotations

import inspect
import re

import pytest

# The docs as review 69 reads them, and its helpers: one reading of the same files.
from tests.unit.test_review69_docs import ALERTS_MD, README, RUNBOOKS_MD, _flat, _section

# --- 1. docs/alerts.md: which empty URL turns something off -----------------------------


def test_alerts_md_says_which_empty_urls_turn_a_sink_off(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from services.alerts.settings import AlertsSettings

    # The code: these three accept "" (off) ...
    off = ["EGOV_ALERTMANAGER_URL", "EGOV_INGEST_URL", "EGOV_ALERT_WEBHOOK_URL"]
    for name in off:
        monkeypatch.setenv(name, "")
    settings = AlertsSettings()
    assert (settings.alertmanager_url, settings.ingest_url, settings.alert_webhook_url) == (
        "",
        "",
        "",
    )
    # ... and these two refuse it.
    for name in ("EGOV_METRICS_URLS", "EGOV_ALERTS_PUBLIC_URL"):
        monkeypatch.setenv(name, "")
        with pytest.raises(ValidationError):
            AlertsSettings()
        monkeypatch.delenv(name)

    flat = _flat(ALERTS_MD)
    start = flat.index("Refused at start-up, in one line naming the variable")
    paragraph = flat[start : flat.index("## Evaluation cycle", start)]
    urls = paragraph[paragraph.index("a host in") :]
    listed = re.findall(r"`(EGOV_[A-Z_]+_URLS?)`", urls[: urls.index(")")])
    said = re.search(r"empty still turns the first (\w+) off", paragraph)
    if said:  # "the first N" of the list must be exactly the ones empty turns off
        n = {"two": 2, "three": 3, "four": 4}[said.group(1)]
        assert listed[:n] == off, listed
    else:  # named: the parenthetical that says what empty does names exactly those
        (aside,) = [a for a in re.findall(r"\(([^()]*)\)", urls) if "empty" in a]
        assert sorted(re.findall(r"EGOV_[A-Z_]+_URLS?", aside)) == sorted(off), aside


# --- 2. docs/runbooks.md: which event is too large to forward ---------------------------


def test_runbook_miskeyed_dead_letters_only_what_the_producer_refuses() -> None:
    from services.metrics import agents
    from services.metrics.pipeline import Record
    from services.metrics.rekeying import FORWARD_MAX_BYTES
    from tests.unit.metrics.helpers import as_bytes, document
    from tests.unit.metrics.test_rekeying import NOW, THAI_NGUYEN, TOPIC, preparer

    # A single-event record of ~950 KB (JSON whitespace after the event, which the
    # contract's parser takes), keyed "38" though its commune is in 19: forwarded as it
    # is, not dead-lettered, though above 900 KB.
    value = as_bytes(document(THAI_NGUYEN, NOW, "big")) + b" " * 950_000
    assert FORWARD_MAX_BYTES < len(value) < 1_000_000
    prepared = preparer().prepare([Record(TOPIC, 0, 0, b"38", value)], NOW)
    assert prepared.dead_letters == []
    assert [len(f.value) for f in prepared.forwards] == [len(value)]
    # The dead letter comes only from the producer's refusal.
    assert "except TOO_LARGE_ERRORS" in inspect.getsource(agents)

    section = _flat(_section(RUNBOOKS_MD, "### EgovRecordsMiskeyed"))
    assert "(above 900 KB)" not in section
    assert "1 MB" in section or "1,000,000" in section or "producer" in section


# --- 3. README.md: EGOV_TOPIC_PARTITIONS and existing topics ----------------------------


def test_readme_says_topic_partitions_apply_when_a_topic_is_created() -> None:
    from services.common import kafka

    source = inspect.getsource(kafka.ensure_topics)
    assert "create_partitions" not in source  # never re-partitions
    assert "if name not in existing" in source  # creates missing topics only

    row = next(line for line in README.splitlines() if line.startswith("| `EGOV_TOPIC_PARTITIONS`"))
    assert re.search(r"creat|existing|More metrics workers than partitions", row), row
    flat = _flat(README)
    assert "each event topic has `EGOV_TOPIC_PARTITIONS` partitions and" not in flat
