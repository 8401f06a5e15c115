"""The event contract: loads the JSON Schemas in schemas/ and validates CloudEvents against them."""

from __future__ import annotations

import copy
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

import jsonschema_rs

from services.common.events import is_rfc3339, parse_time
from services.common.kpis import KpiCatalogue
from services.common.paths import SCHEMAS_DIR
from services.common.textrows import escape_field, invisible

ENVELOPE_FILE = "cloudevent.schema.json"
EVENTS_DIR = "events"
EXAMPLES_DIR = "examples"
SCHEMA_BASE_URI = "https://schemas.egov-pulse.vn"
FAMILY_KEYWORD = "x-egov-family"
VERSION_KEYWORD = "x-egov-version"
NFC_MAX_KEYWORD = "x-egov-nfc-max-length"
"""On an identifier compared in Unicode NFC (``id``, every ``dossier_id``): its length limit
in NFC. Its ``maxLength`` bounds the form as sent, four times that (the longest canonical
decomposition of a character is four code points): so an id sent decomposed (NFD) is
accepted exactly when its composed form is (schemas/CONTRACT.md §1; review 91)."""

# The date-time format is ours, not the library's: it must accept exactly what
# events.parse_time accepts, so that a valid event can always be parsed downstream.
_FORMAT_OPTIONS: dict[str, Any] = {
    "validate_formats": True,
    "formats": {"date-time": is_rfc3339},
}


EVENT_YEARS: Final = (2000, 2100)
"""The years an event's ``time`` may be written in, and ``UTC_OFFSETS`` its offsets: the
rule is the pattern of ``time`` in cloudevent.schema.json (what every language's validator
applies); these name it for messages, and bound what a worker trusts in a summary
(tests/unit/common/test_contract.py holds the two equal)."""
UTC_OFFSETS: Final = ("-12:00", "+14:00")
EARLIEST_EVENT_EPOCH: Final = datetime(
    EVENT_YEARS[0], 1, 1, tzinfo=timezone(timedelta(hours=14))
).timestamp()
LATEST_EVENT_EPOCH: Final = datetime(
    EVENT_YEARS[1], 12, 31, 23, 59, 59, 999999, tzinfo=timezone(-timedelta(hours=12))
).timestamp()
_TIME_SHAPE = re.compile(r"\d+-\d\d-\d\d[Tt][\d:.]+(?:[Zz]|[+-]\d\d:\d\d)", re.ASCII)
"""A time that looks like RFC 3339: the pattern refuses it only for its range."""

# Longest reason text, in characters (the value jsonschema quotes is cut, not the sense).
_MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class Violation:
    """One reason an event breaks the contract.

    `pointer` is an RFC 6901 JSON pointer into the submitted event ("" for the whole
    event); `reason` is English text that names the field.
    """

    pointer: str
    reason: str


@dataclass(frozen=True, slots=True)
class _Version:
    """One schema version of one event type, with its compiled validators."""

    number: int
    uri: str
    family: str
    data: jsonschema_rs.Validator  # validates `data` alone, to explain failures
    whole: jsonschema_rs.Validator  # envelope and data in one pass: the fast path
    untimed: jsonschema_rs.Validator
    """``whole`` without the format of the envelope's ``time``, which ``checked_time``
    checks by parsing it (the format is Python's ``is_rfc3339``: called from the validator
    it cost ~1.3 µs an event, half of the validation)."""
    composed: tuple[tuple[str, int], ...] = ()
    """The fields whose NFC form has a length limit (``NFC_MAX_KEYWORD``): JSON pointer
    ("/id", "/data/dossier_id") and the limit."""


class ContractError(Exception):
    """The schema files themselves are inconsistent (a bug in schemas/, found at load)."""


class Contract:
    """All event types, their schema versions and topic families, compiled once.

    Load it once per process (`Contract.load()`) and share it: `validate` is safe to
    call from any thread and does no I/O.
    """

    __slots__ = ("_dir", "_envelope", "_types", "fingerprint")

    def __init__(
        self,
        schemas_dir: Path,
        envelope: jsonschema_rs.Validator,
        types: Mapping[str, Mapping[str, _Version]],
        fingerprint: bytes = b"",
    ) -> None:
        self._dir = schemas_dir
        self._envelope = envelope
        # type -> {dataschema URI -> version}; the current version is also keyed by "".
        self._types = types
        self.fingerprint = fingerprint
        """SHA-256 of the schema files: two processes that loaded the same contract agree
        on it (services/common/signing.py relies on that)."""

    @property
    def schemas_dir(self) -> Path:
        """Where its schemas were read (``EGOV_SCHEMAS_DIR``): the KPI catalogue's fields
        are checked against the same files (``KpiCatalogue.load``)."""
        return self._dir

    @classmethod
    def load(cls, schemas_dir: Path = SCHEMAS_DIR) -> Contract:
        """Read and compile every schema under `schemas_dir`; raises ContractError if broken."""
        envelope = _read_json(schemas_dir / ENVELOPE_FILE)
        envelope_validator = _compile(envelope)
        versions: dict[str, list[_Version]] = {}
        paths = sorted((schemas_dir / EVENTS_DIR).glob("*.schema.json"))
        for path in paths:
            event_type, version = _parse_schema_file(path, envelope)
            versions.setdefault(event_type, []).append(version)
        digest = hashlib.sha256()
        for path in [schemas_dir / ENVELOPE_FILE, *paths]:
            digest.update(f"{path.relative_to(schemas_dir).as_posix()}\0".encode())
            digest.update(path.read_bytes())
        return cls(schemas_dir, envelope_validator, _index_versions(versions), digest.digest())

    @property
    def event_types(self) -> frozenset[str]:
        return frozenset(self._types)

    def family(self, event_type: str) -> str:
        """Topic family (documents, dossiers, meetings) of a type; KeyError if unknown."""
        return self._types[event_type][""].family

    def families(self) -> frozenset[str]:
        return frozenset(versions[""].family for versions in self._types.values())

    def dataschema_uri(self, event_type: str, version: int | None = None) -> str:
        """URI naming a schema version (the current one by default); KeyError if unknown."""
        versions = self._types[event_type]
        if version is None:
            return versions[""].uri
        for candidate in versions.values():
            if candidate.number == version:
                return candidate.uri
        raise KeyError(f"{event_type} has no version {version}")

    def validate(self, event: object) -> list[Violation]:
        """Every way `event` breaks the contract; [] means valid."""
        if not isinstance(event, dict):
            return [Violation("", f"an event must be a JSON object, not {_json_kind(event)}")]
        version = self._route(event)
        try:
            if version is not None and version.whole.is_valid(event):
                return _too_long_composed(event, version.composed)
            return self._explain(event, version)
        except ValueError as error:  # e.g. nesting deeper than the validator's recursion limit
            return [Violation("", f"the event cannot be checked: {error}")]

    def checked_time(self, event: object) -> datetime | list[Violation]:
        """The event's ``time``, parsed, if the event is valid; else ``validate``'s answer.

        Accepts exactly what ``validate`` accepts: ``time``'s date-time format is
        ``is_rfc3339``, i.e. ``parse_time`` succeeds, so a valid event is the untimed
        schema and a ``time`` that parses. The time is parsed once, here, and not again
        by the caller (services/metrics/decoding.py). Anything else takes ``validate``,
        whose reasons are unchanged."""
        if isinstance(event, dict):
            version = self._route(event)
            if version is not None:
                try:
                    if version.untimed.is_valid(event) and not _too_long_composed(
                        event, version.composed
                    ):
                        # Its pattern held the grammar (``_untimed``); fromisoformat
                        # refuses impossible dates, as parse_time would.
                        return datetime.fromisoformat(event["time"].upper())
                except ValueError:  # an impossible date, or nesting too deep: validate says
                    pass
        violations = self.validate(event)
        if violations or not isinstance(event, dict):
            return violations or [Violation("", "an event must be a JSON object")]
        return parse_time(event["time"])

    def examples(
        self, event_type: str, kind: Literal["valid", "invalid"]
    ) -> list[tuple[Path, dict[str, Any]]]:
        """The example files of a type, sorted by name; KeyError if the type is unknown."""
        if event_type not in self._types:
            raise KeyError(event_type)
        folder = self._dir / EXAMPLES_DIR / event_type / kind
        return [(path, _read_json(path)) for path in sorted(folder.glob("*.json"))]

    def _route(self, event: dict[str, Any]) -> _Version | None:
        """The schema version an event names, or None when its type/dataschema is unknown."""
        event_type = event.get("type")
        versions = self._types.get(event_type) if isinstance(event_type, str) else None
        if versions is None:
            return None
        dataschema = event.get("dataschema", "")
        return versions.get(dataschema) if isinstance(dataschema, str) else None

    def _explain(self, event: dict[str, Any], version: _Version | None) -> list[Violation]:
        """The slow path: envelope problems first, data problems only for a sound envelope."""
        violations = list(_violations(self._envelope, event, ""))
        if version is None:
            reported = {violation.pointer for violation in violations}
            violations.extend(
                violation
                for violation in self._routing_violations(event)
                if violation.pointer not in reported
            )
        if violations or version is None:
            return violations
        violations = list(_violations(version.data, event["data"], "/data"))
        reported = {violation.pointer for violation in violations}
        too_long = _too_long_composed(event, version.composed)
        return violations + [v for v in too_long if v.pointer not in reported]

    def _routing_violations(self, event: dict[str, Any]) -> Iterator[Violation]:
        event_type = event.get("type")
        if not isinstance(event_type, str):
            return  # the envelope schema already reported it
        versions = self._types.get(event_type)
        if versions is None:
            known = ", ".join(sorted(self._types))
            yield Violation("/type", f"'type' {event_type!r} is not a known event type ({known})")
            return
        dataschema = event.get("dataschema")
        if isinstance(dataschema, str) and dataschema not in versions:
            known = ", ".join(sorted(uri for uri in versions if uri))
            yield Violation(
                "/dataschema",
                f"'dataschema' {dataschema!r} is not a known version of {event_type} ({known})",
            )


def _read_json(path: Path) -> dict[str, Any]:
    with path.open("rb") as file:
        value = json.load(file)
    if not isinstance(value, dict):
        raise ContractError(f"{path}: expected a JSON object")
    return value


def _compile(
    schema: dict[str, Any], registry: jsonschema_rs.Registry | None = None
) -> jsonschema_rs.Validator:
    try:
        return jsonschema_rs.validator_for(schema, registry=registry, **_FORMAT_OPTIONS)
    except (ValueError, jsonschema_rs.ReferencingError) as error:
        raise ContractError(f"{schema.get('$id')}: {error}") from error


def _parse_schema_file(path: Path, envelope: dict[str, Any]) -> tuple[str, _Version]:
    """Read events/<type>.v<N>.schema.json and check its name, $id and keywords agree."""
    schema = _read_json(path)
    event_type, _, suffix = path.name.removesuffix(".schema.json").rpartition(".v")
    number = schema.get(VERSION_KEYWORD)
    family = schema.get(FAMILY_KEYWORD)
    uri = f"{SCHEMA_BASE_URI}/{event_type}/v{number}.json"
    if not suffix.isdigit() or number != int(suffix) or schema.get("$id") != uri:
        raise ContractError(f"{path}: name, {VERSION_KEYWORD} and $id {uri} must agree")
    if not isinstance(family, str) or not family:
        raise ContractError(f"{path}: {FAMILY_KEYWORD} must name a topic family")
    whole = _compile_whole(envelope, schema)
    untimed = _compile_whole(_untimed(envelope), schema)
    composed = (*_composed_limits(envelope, ""), *_composed_limits(schema, "/data"))
    version = _Version(number, uri, family, _compile(schema), whole, untimed, composed)
    return event_type, version


def _composed_limits(schema: dict[str, Any], prefix: str) -> Iterator[tuple[str, int]]:
    """The properties of ``schema`` with an NFC length limit (``NFC_MAX_KEYWORD``), with
    their pointers; a limit its ``maxLength`` could refuse an NFD form of is refused."""
    for name, field in schema.get("properties", {}).items():
        limit = field.get(NFC_MAX_KEYWORD) if isinstance(field, dict) else None
        if limit is None:
            continue
        if not isinstance(limit, int) or limit < 1 or field.get("maxLength", 0) < 4 * limit:
            raise ContractError(
                f"{schema.get('$id')}: '{name}': {NFC_MAX_KEYWORD} must be a positive integer"
                " and maxLength at least 4 times it (the longest NFD form of an NFC id)"
            )
        yield f"{prefix}/{_escape(name)}", limit


def _too_long_composed(
    event: dict[str, Any], fields: tuple[tuple[str, int], ...]
) -> list[Violation]:
    """A violation for each field of ``fields`` (of an event its schema accepts) whose NFC
    form is longer than its limit, naming both lengths. An ASCII id within its limit (the
    usual one) is its own NFC form: it is spared the normalisation."""
    found: list[Violation] = []
    for pointer, limit in fields:
        parent: Any = event.get("data") if pointer.startswith("/data/") else event
        value = parent.get(pointer.rpartition("/")[2]) if isinstance(parent, dict) else None
        if not isinstance(value, str) or (len(value) <= limit and value.isascii()):
            continue
        composed = len(unicodedata.normalize("NFC", value))
        if composed > limit:
            reason = (
                f"is {composed} characters in Unicode NFC (sent as {len(value)}), longer"
                f" than {limit}: an id is compared, and limited, in its composed form"
            )
            found.append(Violation(pointer, _short(_name_field(pointer, reason))))
    return found


NOT_RFC3339: Final = (
    "2024-05-09T03:10:00",  # no offset: a naive time, read in the server's zone
    "2024-05-09",
    "2024-05-09T03:10Z",
    "20240509T031000Z",
    "2024-05-09T03:10:00+0700",
    "2024-05-09T03:10:00+07",
    "2024-05-09 03:10:00Z",
    "2024-W19-4T03:10:00Z",
    "2024-05-09T03:10:00,5Z",
    "2024-05-09T03:10:00.Z",
    "2024-05-09T03:10:00.1234567890Z",
    "2024-05-09T03:10:00.5+07:00:30",
    "2024-05-09T03:10:00Z\n",
)
"""ISO 8601 times that ``datetime.fromisoformat`` reads and RFC 3339 with an offset does
not allow: the pattern of the envelope's ``time`` must refuse each (``_untimed``)."""


def _untimed(envelope: dict[str, Any]) -> dict[str, Any]:
    """The envelope schema without the format of ``time`` (its pattern and length stay).

    Its ``time`` pattern must refuse every form ``fromisoformat`` reads beyond RFC 3339
    (``NOT_RFC3339``): an event it passes then has a time ``fromisoformat`` alone can
    judge (``Contract.checked_time``), without ``parse_time``'s own grammar check, a
    third of a microsecond an event. A schema whose pattern lets one through is refused
    here, at load, not trusted."""
    untimed = copy.deepcopy(envelope)
    time = untimed.get("properties", {}).get("time", {})
    if time.get("format") != "date-time":
        raise ContractError(f"{ENVELOPE_FILE}: 'time' must have the date-time format")
    del time["format"]
    pattern = _compile({"type": "string", **time})
    let_through = [text for text in NOT_RFC3339 if pattern.is_valid(text)]
    if let_through or not pattern.is_valid("2024-05-09T03:10:00.5+07:00"):
        raise ContractError(
            f"{ENVELOPE_FILE}: the pattern of 'time' must hold RFC 3339 with an offset"
            f" (it lets {let_through[:3]} through)"
        )
    return untimed


def _compile_whole(
    envelope: dict[str, Any], data_schema: dict[str, Any]
) -> jsonschema_rs.Validator:
    """One validator for envelope + data, so a valid event crosses into Rust once."""
    registry = jsonschema_rs.Registry(
        [(envelope["$id"], envelope), (data_schema["$id"], data_schema)]
    )
    whole = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": data_schema["$id"].removesuffix(".json") + ".whole.json",
        "allOf": [{"$ref": envelope["$id"]}],
        "properties": {"data": {"$ref": data_schema["$id"]}},
    }
    return _compile(whole, registry)


def _index_versions(versions: dict[str, list[_Version]]) -> dict[str, dict[str, _Version]]:
    index: dict[str, dict[str, _Version]] = {}
    for event_type, found in versions.items():
        if len({version.family for version in found}) != 1:
            raise ContractError(f"{event_type}: all versions must share one {FAMILY_KEYWORD}")
        current = max(found, key=lambda version: version.number)
        index[event_type] = {version.uri: version for version in found} | {"": current}
    return index


def _violations(
    validator: jsonschema_rs.Validator, instance: Any, prefix: str
) -> Iterator[Violation]:
    for error in validator.iter_errors(instance):
        yield from _from_error(error, prefix)


def _from_error(error: jsonschema_rs.ValidationError, prefix: str) -> Iterator[Violation]:
    """Point at the offending field itself, even when the schema reports its parent."""
    pointer = prefix + "".join("/" + _escape(part) for part in error.instance_path)
    kind = error.kind
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        yield Violation(f"{pointer}/{_escape(kind.property)}", _short(error.message))
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        for name in kind.unexpected:
            reason = _short(f"'{name}' is not an allowed property")
            yield Violation(f"{pointer}/{_escape(name)}", reason)
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.PropertyNames):
        bad_name = str(kind.error.instance)
        reason = _short(f"'{bad_name}' is not an allowed name")
        yield Violation(f"{pointer}/{_escape(bad_name)}", reason)
    elif (hidden := _hidden_refused(kind, error.instance)) is not None:
        # The validator quotes the value raw: "H38\u200b" would read as "H38".
        shown = f'"{escape_field(str(error.instance))}" does not match the pattern'
        reason = f"{shown}: it holds {hidden}, a control, format or invisible character"
        yield Violation(pointer, _short(_name_field(pointer, reason)))
    elif pointer == "/time" and _out_of_range(kind, error.instance):
        years, offsets = "{} to {}".format(*EVENT_YEARS), "{} to {}".format(*UTC_OFFSETS)
        reason = f"'time': {error.instance!r} is out of range: years {years}, offsets {offsets}"
        yield Violation(pointer, _short(reason))
    else:
        yield Violation(pointer, _short(_name_field(pointer, error.message)))


def _out_of_range(kind: object, value: object) -> bool:
    """Whether the ``time`` pattern refused a well-formed time (a year or offset out of range)."""
    pattern = isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern)
    return pattern and isinstance(value, str) and _TIME_SHAPE.fullmatch(value) is not None


def _hidden_refused(kind: object, value: object) -> str | None:
    """The first control, format or invisible character of a string its pattern refused
    (``U+200B ZERO WIDTH SPACE``) that the pattern refuses alone; None if it holds none.
    The identifiers' patterns refuse them (schemas/CONTRACT.md §1)."""
    if not isinstance(kind, jsonschema_rs.ValidationErrorKind.Pattern):
        return None
    if not isinstance(value, str) or len(value) > _MAX_REASON:  # an id is 128 at most
        return None
    for c in value:
        if invisible(c) and not _pattern(kind.pattern).is_valid(c):
            name = unicodedata.name(c, "")
            return f"U+{ord(c):04X} {name}".rstrip()
    return None


@lru_cache(maxsize=64)
def _pattern(pattern: str) -> jsonschema_rs.Validator:
    """A validator of the schemas' ``pattern`` alone (a few, compiled on a refusal)."""
    return jsonschema_rs.validator_for({"type": "string", "pattern": pattern})


def _short(reason: str) -> str:
    """jsonschema quotes the offending value whole: a 3 MB field must not make a 3 MB
    reason (ingest returns reasons to the publisher; metrics puts them in a header)."""
    if len(reason) <= _MAX_REASON:
        return reason
    return f"{reason[: _MAX_REASON - 40]}… ({len(reason):,} characters in all)"


def _name_field(pointer: str, message: str) -> str:
    field = pointer.rpartition("/")[2].replace("~1", "/").replace("~0", "~")
    return f"'{field}': {message}" if pointer else message


def _escape(part: str | int) -> str:
    return str(part).replace("~", "~0").replace("/", "~1")


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def kpi_families() -> dict[str, str]:
    """KPI id -> the event family it counts (documents, dossiers, meetings), from the KPI
    catalogue and the contract the services load."""
    contract = Contract.load()
    catalogue = KpiCatalogue.load(
        event_types=contract.event_types, schemas_dir=contract.schemas_dir
    )
    return {kpi.id: contract.family(kpi.event_type) for kpi in catalogue.kpis}
