"""Review 91: an identifier's length limit holds in Unicode NFC, so an id sent
decomposed (NFD) is accepted exactly when its composed form is."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from services.common.contract import NFC_MAX_KEYWORD, Contract, ContractError
from services.common.paths import SCHEMAS_DIR


@pytest.fixture(scope="module")
def contract() -> Contract:
    return Contract.load()


def received(contract: Contract, **changes: Any) -> dict[str, Any]:
    (_, example), *_ = contract.examples("vn.egov.dossier.received", "valid")
    data = {**example["data"], **changes.pop("data", {})}
    return {**example, **changes, "data": data}


def test_every_normalised_id_has_its_nfc_limit_and_room_for_its_nfd_form() -> None:
    envelope = json.loads((SCHEMAS_DIR / "cloudevent.schema.json").read_text())
    fields = [envelope["properties"]["id"]]
    for path in sorted((SCHEMAS_DIR / "events").glob("*.schema.json")):
        properties = json.loads(path.read_text())["properties"]
        fields += [properties["dossier_id"]] if "dossier_id" in properties else []
    assert len(fields) == 6
    for field in fields:
        assert field["maxLength"] == 4 * field[NFC_MAX_KEYWORD]


def test_an_id_too_long_composed_is_refused_naming_both_lengths(contract: Contract) -> None:
    decomposed = unicodedata.normalize("NFD", "ệ" * 65)  # 195 code points, 65 composed
    [violation] = contract.validate(received(contract, data={"dossier_id": decomposed}))
    assert violation.pointer == "/data/dossier_id"
    assert "'dossier_id'" in violation.reason
    assert "65 characters in Unicode NFC (sent as 195)" in violation.reason
    assert isinstance(contract.checked_time(received(contract, id="a" * 129)), list)


def test_the_longest_decomposed_form_of_a_limit_id_is_accepted(contract: Contract) -> None:
    widest = "\u1f82" * 64  # four code points each, decomposed
    decomposed = unicodedata.normalize("NFD", widest)
    assert len(decomposed) == 256
    event = received(contract, id=unicodedata.normalize("NFD", "\u1f82" * 128))
    event["data"]["dossier_id"] = decomposed
    assert contract.validate(event) == []
    assert not isinstance(contract.checked_time(event), list)


def test_a_limit_without_room_for_its_nfd_form_is_refused_at_load(tmp_path: Path) -> None:
    envelope = json.loads((SCHEMAS_DIR / "cloudevent.schema.json").read_text())
    envelope["properties"]["id"]["maxLength"] = 128
    (tmp_path / "events").mkdir()
    name = "vn.egov.document.issued.v1.schema.json"
    (tmp_path / "events" / name).write_bytes((SCHEMAS_DIR / "events" / name).read_bytes())
    (tmp_path / "cloudevent.schema.json").write_text(json.dumps(envelope))
    with pytest.raises(ContractError, match=NFC_MAX_KEYWORD):
        Contract.load(tmp_path)
