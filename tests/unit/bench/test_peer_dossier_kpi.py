"""The peer comparison's second KPI (dossier_online) and its receipts: dedup per dossier,
the offline procedures outside the denominator, the contract's shape."""

from __future__ import annotations

from datetime import datetime, timedelta

from bench.peers.events import receipt_events
from bench.peers.kpi import DOSSIER_KPI_ID, DayKpi, dedup_key, reference_figures
from services.common.contract import Contract
from services.common.units import VN_TZ

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=VN_TZ)
HAM_RONG, THANH_HOA = "14758", "38"


def receipt(
    i: int, level: str = "full", channel: str = "online", at: datetime = NOW, event_id: str = ""
) -> dict[str, object]:
    return {
        "id": event_id or f"rec-{i}",
        "source": "https://dichvucong.thanhhoa.gov.vn/motcua",
        "type": "vn.egov.dossier.received",
        "time": at.isoformat(),
        "unit": HAM_RONG,
        "data": {
            "dossier_id": f"H38.{i}",
            "procedure_code": "1.001612",
            "service_level": level,
            "channel": channel,
        },
    }


def test_a_dossier_counts_once_whatever_its_event_ids() -> None:
    events = [
        receipt(1),
        receipt(1),  # an exact re-send
        receipt(1, event_id="another-id"),  # the same receipt exported again
        receipt(2, channel="counter"),
        receipt(3, level="offline", channel="counter"),  # outside the denominator
        receipt(4, at=NOW - timedelta(days=1)),  # yesterday
    ]
    figures = reference_figures(events, DayKpi(DOSSIER_KPI_ID, NOW.date()))
    assert figures[HAM_RONG] == [1, 2]
    assert figures[THANH_HOA] == [1, 2]


def test_documents_keep_their_event_identity() -> None:
    doc = {"id": "e1", "source": "s", "type": "vn.egov.document.issued", "data": {}}
    assert dedup_key(doc) == "s\0e1"


def test_generated_receipts_meet_the_contract_and_repeat_some_dossiers() -> None:
    events = receipt_events(2_000, NOW)
    contract = Contract.load()
    assert [contract.validate(e) for e in events[:300]] == [[]] * 300
    assert len({dedup_key(e) for e in events}) < len({(e["source"], e["id"]) for e in events})
    figures = reference_figures(events, DayKpi(DOSSIER_KPI_ID, NOW.date()))
    num, den = figures[THANH_HOA]
    assert 0.6 < num / den < 0.8  # 70% of full-process receipts come online
