"""The KPI catalogue: loads data/kpis.json and compiles its conditions into fast predicates.

Each KPI's default targets are dated, cited data of their own (data/targets.json,
services/common/targetdata.py), attached to the KPI at load.

A condition is a small JSON tree (see the file's ``$comment``), compiled once into a
closure over a :class:`CloudEvent`, so that the stream processors pay a few function
calls per event and nobody writes a KPI in Python.

Every fault of the file is a :class:`CatalogueError` naming the file, the KPI and what is
wrong: a service refuses to start on it rather than count with a broken definition. Loaded
with the contract's event types, each ``data.*`` path a condition reads is also checked
against the event type's schemas (schemas/events, the one source of truth): a typo would
otherwise read a field no event has, and every unit's rate would silently fall to 0 %.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from services.common.events import CloudEvent
from services.common.paths import KPI_CATALOGUE, SCHEMAS_DIR
from services.common.targetdata import LEVELS, DatedTarget, TargetData

Predicate = Callable[[CloudEvent], bool]
__all__ = ["LEVELS", "CatalogueError", "Kpi", "KpiCatalogue", "compile_condition"]


class CatalogueError(ValueError):
    """The catalogue file is malformed; the message names the KPI and the problem."""


@dataclass(frozen=True, slots=True)
class Kpi:
    """One rate: which events it reads, what counts above and below the line, its targets."""

    id: str
    name_vi: str
    name_en: str
    description_en: str
    event_type: str
    denominator: Predicate
    numerator: Predicate
    min_volume: int
    schedule: tuple[DatedTarget, ...] = ()
    """Its default targets (data/targets.json), oldest first, never overlapping."""
    reads: tuple[str, ...] = ()
    """Field paths whose values alone decide the outcome, apart from ``compares``."""
    compares: tuple[Predicate, ...] = ()
    """The field-to-field comparisons of its conditions (``lte_field``), one per leaf."""

    def count(self, event: CloudEvent) -> tuple[int, int]:
        """(numerator, denominator) contribution of one event of this KPI's type."""
        if not self.denominator(event):
            return 0, 0
        return (1 if self.numerator(event) else 0), 1

    def default_on(self, day: date | None = None) -> DatedTarget | None:
        """The default valid on ``day`` (a Vietnam calendar day); None: the latest one."""
        if day is None:
            return self.schedule[-1] if self.schedule else None
        return next((e for e in self.schedule if e.valid_on(day)), None)

    def target_bp(self, level: str, day: date | None = None) -> int | None:
        """The default target in basis points for a unit level on ``day`` (None: latest)."""
        found = self.default_on(day)
        return found.target_bp[level] if found is not None else None

    def target_for(self, level: str, day: date | None = None) -> float:
        """``target_bp`` as a ratio 0..1, for the displays that still take a float."""
        bp = self.target_bp(level, day)
        if bp is None:
            raise KeyError(f"KPI {self.id!r} has no target for {day}")
        return bp / 10_000


class KpiCatalogue:
    """All KPIs, indexed by id and by the event type they read."""

    def __init__(self, kpis: list[Kpi], fingerprint: bytes = b"") -> None:
        self.kpis = tuple(kpis)
        self.fingerprint = fingerprint
        """SHA-256 of the catalogue file (empty when built in code): ingest's summaries of
        KPI counts are trusted only by a worker that loaded the same catalogue."""
        self._by_id = {k.id: k for k in kpis}
        by_type: dict[str, list[Kpi]] = {}
        for kpi in kpis:
            by_type.setdefault(kpi.event_type, []).append(kpi)
        self._by_type = {t: tuple(ks) for t, ks in by_type.items()}
        self._counters = {t: _TypeCounter(ks) for t, ks in self._by_type.items()}

    @classmethod
    def load(
        cls,
        path: Path = KPI_CATALOGUE,
        event_types: frozenset[str] | None = None,
        targets: TargetData | None = None,
        schemas_dir: Path = SCHEMAS_DIR,
    ) -> KpiCatalogue:
        """Read and compile the catalogue; ``event_types`` (from the contract) are checked.

        With ``event_types``, every ``data.*`` path a condition reads must be a field of
        its event type in the schemas under ``schemas_dir``, and an operand the field's
        JSON type. The default targets come from ``targets``, else from targets.json
        beside ``path``; every KPI needs one, and every KPI named there must exist. The
        fingerprint covers the KPI file only: targets judge figures, they never change
        what is counted. Any fault is a CatalogueError naming ``path``.
        """
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise CatalogueError(f"{path}: cannot read the KPI catalogue: {exc}") from None
        try:
            raw = _entries(text)
            data = (
                targets if targets is not None else TargetData.load(path.with_name("targets.json"))
            )
            kpis = [_kpi(entry, data) for entry in raw]
            _check_catalogue(kpis, raw, data, event_types, schemas_dir)
        except CatalogueError as exc:
            raise CatalogueError(f"{path}: {exc}") from None
        return cls(kpis, hashlib.sha256(text).digest())

    def get(self, kpi_id: str) -> Kpi:
        return self._by_id[kpi_id]

    def for_type(self, event_type: str) -> tuple[Kpi, ...]:
        return self._by_type.get(event_type, ())

    def counts(self, event: CloudEvent) -> tuple[KpiCount, ...]:
        """(kpi id, numerator, denominator) of every KPI whose denominator ``event`` enters.

        The same as calling ``count`` of each KPI of its type, memoised (see _TypeCounter).
        """
        counter = self._counters.get(event.type)
        return counter(event) if counter is not None else ()

    def counts_of_envelope(
        self, envelope: Mapping[str, Any], time: datetime
    ) -> tuple[KpiCount, ...]:
        """``counts`` of a validated envelope (a parsed JSON object) whose ``time`` is parsed.

        For the metrics workers' fast lane: when a type's conditions read only ``data``
        fields (most do), no CloudEvent is built for the answer.
        """
        counter = self._counters.get(envelope["type"])
        return counter.of_envelope(envelope, time) if counter is not None else ()

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self.kpis)


KpiCount = tuple[str, int, int]
"""(kpi id, numerator, denominator) of one event, for a KPI whose denominator it enters."""

MEMO_LIMIT = 4096
"""Outcomes kept per event type. Real conditions read a few flags and short codes, so a
handful of outcomes cover every event; a catalogue that reads, say, ``id`` stops being
memoised at this size instead of growing without bound."""


class _TypeCounter:
    """The KPI counts of one event type, memoised on what the conditions read.

    The outcome of a type's conditions depends only on the values of the fields they
    read and on the results of their field-to-field comparisons. Those make the memo's
    key: a few dictionary reads per event instead of every predicate of every KPI (the
    metrics workers run this once per event).
    """

    __slots__ = ("_compares", "_data_only", "_kpis", "_names", "_others", "memo")

    def __init__(self, kpis: tuple[Kpi, ...]) -> None:
        self._kpis = kpis
        paths = sorted({path for kpi in kpis for path in kpi.reads})
        self._names = tuple(p.removeprefix("data.") for p in paths if p.startswith("data."))
        self._others = tuple(_getter(p) for p in paths if not p.startswith("data."))
        self._compares = tuple(c for kpi in kpis for c in kpi.compares)
        # The key is then the values of ``_names`` in ``data``, in that order, and nothing else.
        self._data_only = not self._others and not self._compares
        self.memo: dict[tuple[Any, ...], tuple[KpiCount, ...]] = {}

    def of_envelope(self, envelope: Mapping[str, Any], time: datetime) -> tuple[KpiCount, ...]:
        """``self(event)`` for a parsed envelope; a CloudEvent is built only when needed."""
        if self._data_only:
            try:
                found = self.memo.get(tuple(map(envelope["data"].get, self._names)))
            except TypeError:  # unhashable: __call__ evaluates it directly
                found = None
            if found is not None:
                return found
        return self(_event_of_envelope(envelope, time))

    def __call__(self, event: CloudEvent) -> tuple[KpiCount, ...]:
        key = tuple(map(event.data.get, self._names))
        if not self._data_only:
            key += (
                *[get(event) for get in self._others],
                *[compare(event) for compare in self._compares],
            )
        try:
            found = self.memo.get(key)
        except TypeError:  # a list or object value: not hashable, evaluated directly
            return self._evaluate(event)
        if found is None:
            found = self._evaluate(event)
            if len(self.memo) < MEMO_LIMIT:
                self.memo[key] = found
        return found

    def _evaluate(self, event: CloudEvent) -> tuple[KpiCount, ...]:
        counts = []
        for kpi in self._kpis:
            num, den = kpi.count(event)
            if den:
                counts.append((kpi.id, num, den))
        return tuple(counts)


def _entries(text: bytes) -> list[Mapping[str, Any]]:
    """The KPI objects of the file's text, or why it has none."""
    try:
        raw = json.loads(text)
    except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
        raise CatalogueError(f"the KPI catalogue is not valid JSON: {exc}") from None
    kpis = raw.get("kpis") if isinstance(raw, dict) else None
    if not isinstance(kpis, list):
        raise CatalogueError("the KPI catalogue must be an object whose 'kpis' is a list")
    for number, entry in enumerate(kpis, start=1):
        if not isinstance(entry, dict):
            raise CatalogueError(f"KPI number {number} in 'kpis' is not an object: {entry!r}")
    return kpis


def _check_catalogue(
    kpis: list[Kpi],
    raw: list[Mapping[str, Any]],
    data: TargetData,
    event_types: frozenset[str] | None,
    schemas_dir: Path,
) -> None:
    """What no single KPI shows: targets of unknown KPIs, ids twice, the contract's fields."""
    if unknown := data.kpis - {k.id for k in kpis}:
        raise CatalogueError(f"targets name KPIs not in the catalogue: {sorted(unknown)}")
    seen: set[str] = set()
    schemas: dict[str, FieldTypes | None] = {}  # per event type: several KPIs read one
    for kpi, entry in zip(kpis, raw, strict=True):
        if kpi.id in seen:
            raise CatalogueError(f"KPI {kpi.id!r} is defined twice")
        seen.add(kpi.id)
        if event_types is None:
            continue
        if kpi.event_type not in event_types:
            raise CatalogueError(f"KPI {kpi.id!r} reads unknown event type {kpi.event_type!r}")
        if kpi.event_type not in schemas:
            schemas[kpi.event_type] = _schema_fields(schemas_dir, kpi.event_type)
        _check_fields(kpi, entry, schemas[kpi.event_type])


def _check_fields(kpi: Kpi, entry: Mapping[str, Any], fields: FieldTypes | None) -> None:
    """Every ``data.*`` path of the KPI's conditions is a field of its type, of a type that
    its operand can equal: a typo would read nothing, and count every event as not met."""
    for side in ("denominator", "numerator"):
        for leaf in _leaves(entry[side]):
            problem = _leaf_problem(leaf, fields)
            if problem is not None:
                raise CatalogueError(f"KPI {kpi.id!r} {side}, of {kpi.event_type}: {problem}")


def _kpi(entry: Mapping[str, Any], targets: TargetData) -> Kpi:
    kpi_id = entry.get("id", "?")
    if "targets" in entry:
        raise CatalogueError(f"KPI {kpi_id!r}: targets are dated data now, in targets.json")
    try:
        for name in ("id", "name_vi", "name_en", "event_type"):
            if not isinstance(entry[name], str) or not entry[name]:
                raise CatalogueError(f"{name!r} must be a non-empty string: {entry[name]!r}")
        min_volume = entry["min_volume"]
        if isinstance(min_volume, bool) or not isinstance(min_volume, int) or min_volume < 0:
            raise CatalogueError(f"'min_volume' must be a whole number >= 0: {min_volume!r}")
        denominator, numerator = (_side(entry, side) for side in ("denominator", "numerator"))
    except KeyError as exc:
        raise CatalogueError(f"KPI {kpi_id!r}: missing {exc.args[0]!r}") from None
    except CatalogueError as exc:
        raise CatalogueError(f"KPI {kpi_id!r}: {exc}") from None
    schedule = targets.schedule(kpi_id)
    if not schedule:
        raise CatalogueError(f"KPI {kpi_id!r} has no default target in targets.json")
    return Kpi(
        id=entry["id"],
        name_vi=entry["name_vi"],
        name_en=entry["name_en"],
        description_en=entry.get("description_en", ""),
        event_type=entry["event_type"],
        denominator=denominator,
        numerator=numerator,
        min_volume=min_volume,
        schedule=schedule,
        # Compiled first: the trees are sound by now, so walking them cannot fail.
        reads=tuple(sorted(_reads(entry["denominator"]) | _reads(entry["numerator"]))),
        compares=(*_compares(entry["denominator"]), *_compares(entry["numerator"])),
    )


def _side(entry: Mapping[str, Any], side: str) -> Predicate:
    """One condition of a KPI compiled, its faults named by the side they are on."""
    try:
        return compile_condition(entry[side])
    except CatalogueError as exc:
        raise CatalogueError(f"{side}: {exc}") from None


FieldTypes = Mapping[str, frozenset[str] | None]
"""An event type's ``data`` fields -> their JSON types (None: the schema does not say)."""


def _schema_fields(schemas_dir: Path, event_type: str) -> FieldTypes | None:
    """The fields of every schema version of ``event_type`` (an old version's events are
    still counted), or None when a version admits other fields or no schema is found
    (a contract loaded from elsewhere): then nothing can be said against a path."""
    fields: dict[str, set[str] | None] = {}
    versions = [
        path
        for path in (schemas_dir / "events").glob(f"{event_type}.v*.schema.json")
        # named as services/common/contract.py reads them: <type>.v<N>.schema.json
        if path.name.removesuffix(".schema.json").removeprefix(f"{event_type}.v").isdigit()
    ]
    if not versions:
        return None
    for path in versions:
        schema = json.loads(path.read_bytes())
        if schema.get("additionalProperties") is not False:
            return None
        for name, prop in schema.get("properties", {}).items():
            types = _json_types(prop)
            known = fields.setdefault(name, set())
            fields[name] = None if known is None or types is None else known | types
    return {name: None if t is None else frozenset(t) for name, t in fields.items()}


def _json_types(prop: Mapping[str, Any]) -> set[str] | None:
    """The JSON types a property's schema admits, where it says (type, enum or const)."""
    if isinstance(prop.get("type"), str):
        return {prop["type"]}
    if isinstance(prop.get("type"), list):
        return set(prop["type"])
    if isinstance(prop.get("enum"), list):
        return {_json_type(value) for value in prop["enum"]}
    if "const" in prop:
        return {_json_type(prop["const"])}
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _admits(types: frozenset[str], value: Any) -> bool:
    """Whether a field of JSON ``types`` can equal ``value``; null stands for "absent"."""
    kind = _json_type(value)
    if kind == "null":
        return True
    return kind in types or (kind == "integer" and "number" in types)


def _leaf_problem(leaf: Mapping[str, Any], fields: FieldTypes | None) -> str | None:
    """Why a compiled field condition can never read what it means, or None."""
    if fields is None:
        return None
    (op,) = (k for k in leaf if k != "field")
    paths = [leaf["field"], leaf[op]] if op == "lte_field" else [leaf["field"]]
    for path in paths:
        if path.startswith("data.") and path.removeprefix("data.") not in fields:
            known = ", ".join(sorted(fields))
            return f"{path!r} is not a field of its schema (it has: {known})"
    typed = [(p, fields[p.removeprefix("data.")]) for p in paths if p.startswith("data.")]
    for path, types in typed:
        if types is not None and (problem := _operand_problem(op, leaf[op], types)):
            return f"{path!r} is {' or '.join(sorted(types))} in the schema: {problem}"
    return None


def _operand_problem(op: str, operand: Any, types: frozenset[str]) -> str | None:
    """Why ``op operand`` never holds of a field of JSON ``types``, or None."""
    if op in ("eq", "ne", "in", "not_in"):
        operands = operand if op in ("in", "not_in") else [operand]
        wrong = [value for value in operands if not _admits(types, value)]
        return f"{op} {wrong[0]!r} never holds" if wrong else None
    if op == "gt" and not types & {"integer", "number"}:
        return "not a number, gt never holds"
    if op == "lte_field" and "string" not in types:
        return "not a timestamp, lte_field never holds"
    return None


def _event_of_envelope(envelope: Mapping[str, Any], time: datetime) -> CloudEvent:
    return CloudEvent(
        envelope["id"],
        envelope["source"],
        envelope["type"],
        time,
        envelope["unit"],
        envelope["data"],
        envelope.get("dataschema"),
    )


def _getter(path: str) -> Callable[[CloudEvent], Any]:
    if path.startswith("data."):
        name = path.removeprefix("data.")
        return lambda event: event.data.get(name)
    if path in ("time", "type", "source", "unit", "id"):
        return lambda event: getattr(event, path)
    raise CatalogueError(f"unknown field path {path!r}")


def _as_time(value: Any) -> datetime | None:
    """An aware datetime, or None. Events reach the KPIs only once the contract has checked
    their date-time fields against RFC 3339, so ``fromisoformat`` (C) parses them directly
    instead of ``parse_time`` matching the grammar again (once per resolved dossier)."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.upper())
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else None
    return None


def _compare(get: Callable[[CloudEvent], Any], op: str, operand: Any) -> Predicate:
    if op == "eq":
        return lambda e: bool(get(e) == operand)
    if op == "ne":
        return lambda e: bool(get(e) != operand)
    if op == "in":
        allowed = frozenset(_values(op, operand))
        return lambda e: get(e) in allowed
    if op == "not_in":
        refused = frozenset(_values(op, operand))
        return lambda e: get(e) not in refused
    if op == "gt":
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            raise CatalogueError(f"gt compares with a number, not {operand!r}")

        def greater(event: CloudEvent) -> bool:
            value = get(event)
            if isinstance(value, bool) or not isinstance(value, int | float):
                return False  # a boolean is an int in Python, never an amount
            return value > operand

        return greater
    if op == "lte_field":
        if not isinstance(operand, str):
            raise CatalogueError(f"lte_field takes a field path, not {operand!r}")
        other = _getter(operand)

        def lte(event: CloudEvent) -> bool:
            left, right = _as_time(get(event)), _as_time(other(event))
            return left is not None and right is not None and left <= right

        return lte
    raise CatalogueError(f"unknown operator {op!r}")


def _values(op: str, operand: Any) -> list[Any]:
    """The operand of ``in``/``not_in``: a list of values a field can equal."""
    if not isinstance(operand, list):
        raise CatalogueError(f"{op} takes a list of values, not {operand!r}")
    if any(isinstance(value, list | dict) for value in operand):
        raise CatalogueError(f"{op} takes values, not lists or objects: {operand!r}")
    return operand


def _leaves(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The field conditions of a condition tree, in order."""
    if "all" in node or "any" in node:
        return [leaf for child in node.get("all", node.get("any", [])) for leaf in _leaves(child)]
    if "not" in node:
        return _leaves(node["not"])
    return [node] if "field" in node else []


def _reads(node: Mapping[str, Any]) -> set[str]:
    return {leaf["field"] for leaf in _leaves(node) if "lte_field" not in leaf}


def _compares(node: Mapping[str, Any]) -> list[Predicate]:
    return [
        _compare(_getter(leaf["field"]), "lte_field", leaf["lte_field"])
        for leaf in _leaves(node)
        if "lte_field" in leaf
    ]


def compile_condition(node: Mapping[str, Any]) -> Predicate:
    """Compile one condition tree into a predicate over a CloudEvent; CatalogueError
    says what is wrong with a malformed one."""
    if not isinstance(node, Mapping):
        raise CatalogueError(f"a condition is an object, not {node!r}")
    if "all" in node or "any" in node:
        combine = "all" if "all" in node else "any"
        if len(node) != 1 or not isinstance(node[combine], list):
            raise CatalogueError(f"{combine} takes a list of conditions, alone: {dict(node)}")
        parts = [compile_condition(n) for n in node[combine]]
        if combine == "all":
            return lambda e: all(p(e) for p in parts)
        return lambda e: any(p(e) for p in parts)
    if "not" in node:
        if len(node) != 1:
            raise CatalogueError(f"not takes one condition, alone: {dict(node)}")
        inner = compile_condition(node["not"])
        return lambda e: not inner(e)
    if "field" in node:
        ops = [k for k in node if k != "field"]
        if len(ops) != 1:
            raise CatalogueError(f"a field condition needs exactly one operator: {dict(node)}")
        if not isinstance(node["field"], str):
            raise CatalogueError(f"a field is a path, not {node['field']!r}")
        return _compare(_getter(node["field"]), ops[0], node[ops[0]])
    raise CatalogueError(f"not a condition: {dict(node)}")
