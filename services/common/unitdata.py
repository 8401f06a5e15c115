"""Build data/units/ from the official dataset (services/common/unitstore.py loads it).

``python -m services.common.unitdata SOURCE_DIR [OUT_DIR]`` rebuilds the committed files
from ``../shared/data/vn-units`` (see data/units/README.md). The crosswalk matches the
2025 merger list's predecessor names (Vietnamese text) to old codes within the
predecessor provinces; whatever does not match exactly one old unit is reported, never
guessed.
"""

from __future__ import annotations

import csv
import io
import shutil
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from services.common.paths import UNITS_DIR
from services.common.unitnames import (
    ALIASES,
    DISTRICT_TYPES,
    PROVINCE_TYPES,
    Mention,
    ascii_key,
    name_key,
    parse_mentions,
    split_top,
    strip_type,
)

UNIT_FIELDS = ("code", "level", "name", "name_en", "full_name", "full_name_en", "parent_code")
CROSSWALK_FIELDS = ("old_code", "old_level", "new_code", "match", "old_name", "new_name")
DEPARTMENT_FIELDS = (
    "code",
    "era",
    "abbrev",
    "province_code",
    "name",
    "name_en",
    "full_name",
    "full_name_en",
)
SOURCE_FILES = {
    "2024": "units-2024-three-level.json",
    "2025": "units-2025-two-level.json",
    "merger": "merger-2025.json",
}

# The project's own department scheme (not official codes): "<province code>-<abbrev>".
DEPARTMENTS: tuple[tuple[str, str, str], ...] = (
    ("VPUBND", "Văn phòng Ủy ban nhân dân", "Office of the People's Committee"),
    ("SNV", "Sở Nội vụ", "Department of Home Affairs"),
    ("STC", "Sở Tài chính", "Department of Finance"),
    ("STP", "Sở Tư pháp", "Department of Justice"),
    ("SCT", "Sở Công Thương", "Department of Industry and Trade"),
    ("SNNMT", "Sở Nông nghiệp và Môi trường", "Department of Agriculture and Environment"),
    ("SXD", "Sở Xây dựng", "Department of Construction"),
    ("SKHCN", "Sở Khoa học và Công nghệ", "Department of Science and Technology"),
    ("STTTT", "Sở Thông tin và Truyền thông", "Department of Information and Communications"),
    ("SGDDT", "Sở Giáo dục và Đào tạo", "Department of Education and Training"),
    ("SYT", "Sở Y tế", "Department of Health"),
    ("SVHTTDL", "Sở Văn hóa, Thể thao và Du lịch", "Department of Culture, Sports and Tourism"),
)

# ---------------------------------------------------------------- source reading


@dataclass(frozen=True, slots=True)
class Row:
    """One unit as written to units-<era>.csv."""

    code: str
    level: str
    name: str
    name_en: str
    full_name: str
    full_name_en: str
    parent_code: str

    def cells(self) -> tuple[str, ...]:
        return (
            self.code,
            self.level,
            self.name,
            self.name_en,
            self.full_name,
            self.full_name_en,
            self.parent_code,
        )


def _row(item: dict[str, Any], level: str, parent: str) -> Row:
    return Row(
        item["Code"],
        level,
        item["Name"],
        item["NameEn"],
        item["FullName"],
        item["FullNameEn"],
        parent,
    )


def read_2024(data: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for prov in data:
        rows.append(_row(prov, "province", ""))
        for dist in prov["District"] or []:
            rows.append(_row(dist, "district", prov["Code"]))
            rows.extend(_row(ward, "commune", dist["Code"]) for ward in dist["Ward"] or [])
    return rows


def read_2025(data: list[dict[str, Any]]) -> list[Row]:
    rows: list[Row] = []
    for prov in data:
        rows.append(_row(prov, "province", ""))
        rows.extend(_row(ward, "commune", prov["Code"]) for ward in prov["Wards"] or [])
    return rows


def _load_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


# ---------------------------------------------------------------- matching


@dataclass(slots=True)
class Index:
    """Old (2024) units of some provinces, by name key."""

    rows: dict[str, Row]
    exact: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    folded: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))

    def add(self, row: Row) -> None:
        self.exact[name_key(row.name)].append(row)
        self.folded[ascii_key(row.name)].append(row)

    def lookup(self, name: str) -> list[Row]:
        return self.exact.get(name_key(name)) or self.folded.get(ascii_key(name)) or []


def _qualifier_ok(row: Row, qualifier: str, rows: dict[str, Row]) -> bool:
    district = rows[row.parent_code] if row.level == "commune" else row
    province = rows[district.parent_code] if district.parent_code else district
    _, q = strip_type(qualifier, DISTRICT_TYPES + PROVINCE_TYPES)
    key = name_key(q)
    return key in (name_key(district.name), name_key(province.name))


def _narrow(cands: list[Row], keep: Any) -> list[Row]:
    kept = [c for c in cands if keep(c)]
    return kept or cands


def match_mention(m: Mention, index: Index, new_code: str) -> list[Row]:
    """Old units a mention can mean, narrowed by level, type and bracketed qualifier."""
    district = m.kind in DISTRICT_TYPES
    cands = [c for c in index.lookup(m.name) if (c.level == "district") == district]
    if m.kind and len(cands) > 1:
        cands = _narrow(cands, lambda c: c.full_name.lower().startswith(m.kind))
    for q in m.qualifiers:
        if len(cands) > 1:
            cands = _narrow(cands, lambda c, q=q: _qualifier_ok(c, q, index.rows))
    if len(cands) > 1:
        # A new unit usually keeps one predecessor's code (see the source README).
        cands = _narrow(cands, lambda c: c.code == new_code)
    return cands


# ---------------------------------------------------------------- crosswalk


@dataclass(slots=True)
class Crosswalk:
    """The crosswalk being built, with what the report must list."""

    links: dict[str, dict[str, bool]] = field(default_factory=lambda: defaultdict(dict))
    unmatched: list[tuple[str, str, str, str]] = field(default_factory=list)
    districts: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    new_by_name: dict[tuple[str, str], str] = field(default_factory=dict)

    def link(self, old: str, new: str, partial: bool) -> None:
        self.links[old][new] = self.links[old].get(new, False) or partial


def _province_map(
    merger: list[dict[str, Any]], old: list[Row], cw: Crosswalk
) -> dict[str, set[str]]:
    """New province code -> old province codes; links provinces in the crosswalk."""
    by_key = {name_key(r.name): r.code for r in old if r.level == "province"}
    preds: dict[str, set[str]] = {}
    for entry in (e for e in merger if e["magoc"] == "0"):
        text = entry["truocsapnhap"].split(".")[0]
        names = [entry["ten"]] if text.strip() == "giữ nguyên" else split_top(text)
        found = set()
        for raw in names:
            _, name = strip_type(raw, ("thủ đô", *PROVINCE_TYPES))
            code = by_key.get(name_key(ALIASES.get(name.lower(), name)))
            if code is None:
                cw.unmatched.append((entry["ma"], entry["ten"], raw, "no old province"))
                continue
            found.add(code)
            cw.link(code, entry["ma"], False)
        preds[entry["ma"]] = found
    return preds


def _new_units(merger: list[dict[str, Any]], new: list[Row], cw: Crosswalk) -> dict[str, Row]:
    """Merger entry code -> 2025 unit (by code, else by unique name in its province)."""
    by_code = {r.code: r for r in new if r.level == "commune"}
    by_name: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for r in by_code.values():
        by_name[(r.parent_code, name_key(r.full_name))].append(r)
    result = {}
    for entry in (e for e in merger if e["magoc"] != "0"):
        unit = by_code.get(entry["ma"])
        if unit is None:
            same = by_name.get((entry["magoc"], name_key(entry["ten"])), [])
            unit = same[0] if len(same) == 1 else None
            cw.notes.append(_code_note(entry, unit))
        if unit is not None:
            result[entry["ma"]] = unit
    return result


def _unique_names(new: list[Row]) -> dict[tuple[str, str], str]:
    """(province, name key) -> commune code, for names unique in their province."""
    seen: dict[tuple[str, str], list[str]] = defaultdict(list)
    for r in (r for r in new if r.level == "commune"):
        seen[(r.parent_code, name_key(r.name))].append(r.code)
    return {k: v[0] for k, v in seen.items() if len(v) == 1}


def _code_note(entry: dict[str, Any], unit: Row | None) -> str:
    where = f"matched by name to {unit.code} {unit.full_name}" if unit else "not in the 2025 data"
    return f"merger entry {entry['ma']} {entry['ten']} (province {entry['magoc']}): {where}"


def _index_for(codes: Iterable[str], old: list[Row], cache: dict[frozenset[str], Index]) -> Index:
    key = frozenset(codes)
    if key not in cache:
        rows = {r.code: r for r in old}
        index = Index(rows)
        for r in old:
            province = r.parent_code if r.level == "district" else None
            if r.level == "commune":
                province = rows[r.parent_code].parent_code
            if province in key:
                index.add(r)
        cache[key] = index
    return cache[key]


def _link_entry(entry: dict[str, Any], unit: Row, index: Index, cw: Crosswalk) -> None:
    text = entry["truocsapnhap"].strip()
    if text.lower().startswith("giữ nguyên"):
        text = entry["ten"]
    for m in parse_mentions(text):
        cands = match_mention(m, index, unit.code)
        if len(cands) != 1:
            found = " ".join(c.code for c in cands) or "no old unit of that name"
            cw.unmatched.append((unit.code, unit.full_name, m.text, found))
        elif cands[0].level == "district":
            _link_district(cands[0], unit, index, cw, m)
        else:
            cw.link(cands[0].code, unit.code, m.partial)
            _link_targets(cands[0], unit, m, cw)


def _link_targets(old: Row, unit: Row, m: Mention, cw: Crosswalk) -> None:
    """ "(phần còn lại sau khi sáp nhập vào xã A)": A, in the same province, got a part."""
    for target in m.targets:
        code = cw.new_by_name.get((unit.parent_code, name_key(target)))
        if code is not None:
            cw.link(old.code, code, True)


def _link_district(dist: Row, unit: Row, index: Index, cw: Crosswalk, m: Mention) -> None:
    """A whole district named as a predecessor: each of its communes goes to the unit, and
    so does the district itself. Without its own row an island district with no communes
    (Bạch Long Vĩ, Côn Đảo: each became its đặc khu whole) had no successor at all: its
    pre-reform figures were restated nowhere and today's đặc khu key could not backfill
    them (review 61). A district named by several units is ``partial``, as a commune is."""
    cw.districts.append((dist.code, dist.full_name, f"{unit.code} {unit.full_name}"))
    cw.link(dist.code, unit.code, m.partial)
    for row in index.rows.values():
        if row.level == "commune" and row.parent_code == dist.code:
            cw.link(row.code, unit.code, m.partial)


def build_crosswalk(
    merger: list[dict[str, Any]], old: list[Row], new: list[Row]
) -> tuple[list[tuple[str, ...]], Crosswalk]:
    cw = Crosswalk()
    preds = _province_map(merger, old, cw)
    units = _new_units(merger, new, cw)
    cw.new_by_name = _unique_names(new)
    cache: dict[frozenset[str], Index] = {}
    for entry in (e for e in merger if e["magoc"] != "0"):
        unit = units.get(entry["ma"])
        if unit is not None:
            index = _index_for(preds.get(unit.parent_code, ()), old, cache)
            _link_entry(entry, unit, index, cw)
    return _crosswalk_rows(cw, old, new), cw


def _crosswalk_rows(cw: Crosswalk, old: list[Row], new: list[Row]) -> list[tuple[str, ...]]:
    olds = {r.code: r for r in old}
    news = {r.code: r for r in new}
    rows: list[tuple[str, ...]] = []
    for code in sorted(cw.links, key=lambda c: (len(c), c)):
        targets = cw.links[code]
        match = _match_kind(code, targets, olds, news)
        for new_code in sorted(targets):
            o, n = olds[code], news[new_code]
            rows.append((code, o.level, new_code, match, o.full_name, n.full_name))
    return rows


def _match_kind(
    code: str, targets: dict[str, bool], olds: dict[str, Row], news: dict[str, Row]
) -> str:
    if len(targets) > 1 or any(targets.values()):
        return "partial"
    (new_code,) = targets
    same = new_code == code and name_key(olds[code].name) == name_key(news[new_code].name)
    return "unchanged" if same else "merged"


# ---------------------------------------------------------------- departments


def department_rows(old: list[Row], new: list[Row]) -> list[tuple[str, ...]]:
    """The standard departments of every province of each era, named after the province
    of that era (``80-STTTT`` is Long An's until 2025-06-30, Tây Ninh's since). Who
    succeeds a 2024-era department is not stored: it is the department of the same
    abbreviation in the province its province went into (crosswalk-2025.csv)."""
    rows: list[tuple[str, ...]] = []
    for era, units in (("2024", old), ("2025", new)):
        for prov in (r for r in units if r.level == "province"):
            where = prov.full_name[:1].lower() + prov.full_name[1:]
            for abbrev, name, name_en in DEPARTMENTS:
                code = f"{prov.code}-{abbrev}"
                full = f"{name} {where}"
                full_en = f"{name_en} of {prov.full_name_en}"
                rows.append((code, era, abbrev, prov.code, name, name_en, full, full_en))
    return rows


# ---------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class BuildReport:
    """What a build wrote, with the crosswalk's counts."""

    units_2024: dict[str, int]
    units_2025: dict[str, int]
    departments: dict[str, int]
    crosswalk: dict[str, int]
    unmatched_mentions: int
    split_communes: int
    old_communes_without_successor: int
    files: tuple[str, ...]


def _csv_text(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _level_counts(rows: list[Row]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r.level] += 1
    return dict(counts)


def _sorted_units(rows: list[Row]) -> list[Row]:
    order = {"province": 0, "district": 1, "commune": 2}
    return sorted(rows, key=lambda r: (order[r.level], r.code))


def build(source_dir: Path, out_dir: Path = UNITS_DIR) -> BuildReport:
    """Rebuild every file of data/units/ from the shared dataset, deterministically."""
    old = read_2024(_load_json(source_dir / SOURCE_FILES["2024"]))
    new = read_2025(_load_json(source_dir / SOURCE_FILES["2025"]))
    merger = _load_json(source_dir / SOURCE_FILES["merger"])
    rows, cw = build_crosswalk(merger, old, new)
    depts = department_rows(old, new)
    report = _report(old, new, rows, cw, depts)
    out_dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "units-2024.csv": _csv_text(UNIT_FIELDS, (r.cells() for r in _sorted_units(old))),
        "units-2025.csv": _csv_text(UNIT_FIELDS, (r.cells() for r in _sorted_units(new))),
        "crosswalk-2025.csv": _csv_text(CROSSWALK_FIELDS, rows),
        "departments.csv": _csv_text(DEPARTMENT_FIELDS, depts),
        "crosswalk-report.md": _report_md(report, rows, cw, old),
        "README.md": _readme(report),
    }
    for name, text in texts.items():
        (out_dir / name).write_text(text, encoding="utf-8", newline="\n")
    shutil.copyfile(source_dir / "LICENSE", out_dir / "LICENSE")
    return report


def _report(
    old: list[Row],
    new: list[Row],
    rows: list[tuple[str, ...]],
    cw: Crosswalk,
    depts: list[tuple[str, ...]],
) -> BuildReport:
    matches: dict[str, set[str]] = defaultdict(set)
    for old_code, level, _, match, *_ in rows:
        matches[f"{level}:{match}"].add(old_code)
    linked = {r[0] for r in rows}
    orphans = [r for r in old if r.level == "commune" and r.code not in linked]
    return BuildReport(
        units_2024=_level_counts(old),
        units_2025=_level_counts(new),
        departments={era: sum(1 for d in depts if d[1] == era) for era in ("2024", "2025")},
        crosswalk={k: len(v) for k, v in sorted(matches.items())},
        unmatched_mentions=len(cw.unmatched),
        split_communes=sum(1 for t in cw.links.values() if len(t) > 1),
        old_communes_without_successor=len(orphans),
        files=(
            "units-2024.csv",
            "units-2025.csv",
            "crosswalk-2025.csv",
            "crosswalk-report.md",
            "departments.csv",
            "README.md",
            "LICENSE",
        ),
    )


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows]
    return lines


def _report_md(
    report: BuildReport, rows: list[tuple[str, ...]], cw: Crosswalk, old: list[Row]
) -> str:
    partial: dict[str, list[str]] = defaultdict(list)
    names = {r[0]: r[4] for r in rows}
    for r in rows:
        if r[3] == "partial":
            partial[r[0]].append(r[2])
    linked = {r[0] for r in rows}
    orphans = [r for r in old if r.level == "commune" and r.code not in linked]
    lines = [
        "# Crosswalk report (generated by services/common/unitdata.py; do not edit)",
        "",
        "Nothing below was guessed: these units resolve as unknown or ambiguous after",
        "2025-07-01.",
        "",
        "## Counts",
        "",
        *_md_table(("what", "count"), _count_rows(report)),
        "",
        f"## Predecessor mentions not matched to exactly one old unit ({len(cw.unmatched)})",
        "",
        *_md_table(("new code", "new unit", "mention", "candidates"), sorted(cw.unmatched)),
        "",
        f"## Old communes split or partly merged ({len(partial)}): ambiguous, candidates listed",
        "",
        *_md_table(
            ("old code", "old unit", "candidate new codes"),
            ((c, names[c], " ".join(v)) for c, v in sorted(partial.items())),
        ),
        "",
        f"## Old communes named by no merger entry ({len(orphans)}): no successor",
        "",
        *_md_table(("old code", "old unit"), ((r.code, r.full_name) for r in orphans)),
        "",
        f"## Whole districts named as predecessors ({len(cw.districts)})",
        "",
        "Their communes are linked to the new unit; the district code itself has no successor.",
        "",
        *_md_table(("district", "name", "new unit"), sorted(cw.districts)),
        "",
        f"## Merger entries whose code is not in the 2025 data ({len(cw.notes)})",
        "",
        *[f"- {note}" for note in sorted(cw.notes)],
        "",
    ]
    return "\n".join(lines)


def _count_rows(report: BuildReport) -> list[tuple[str, str]]:
    rows = [(f"crosswalk old {k.replace(':', ' ')}", str(v)) for k, v in report.crosswalk.items()]
    rows += [
        ("old communes split between several new units", str(report.split_communes)),
        ("old communes with no successor", str(report.old_communes_without_successor)),
        ("unmatched predecessor mentions", str(report.unmatched_mentions)),
    ]
    return rows


def _readme(report: BuildReport) -> str:
    u24, u25 = report.units_2024, report.units_2025
    return README.format(
        provinces_2024=u24.get("province", 0),
        districts_2024=u24.get("district", 0),
        communes_2024=u24.get("commune", 0),
        provinces_2025=u25.get("province", 0),
        communes_2025=u25.get("commune", 0),
        departments_2024=report.departments["2024"],
        departments_2025=report.departments["2025"],
        counts="\n".join(f"| {k} | {v} |" for k, v in _count_rows(report)),
        dept_list="\n".join(f"| `{a}` | {n} | {e} |" for a, n, e in DEPARTMENTS),
    )


README = """\
# Administrative units (generated; do not edit by hand)

Vietnam's administrative units with their General Statistics Office codes, before and
after the 2025 reform, for `services.common.units.UnitRegistry`.

## Provenance

Source: the MIT-licensed dataset `thanglequoc/vietnamese-provinces-database` (LICENSE
beside this file), as copied into `../shared/data/vn-units/`:

- `units-2024-three-level.json`: tag v2.4.1 (2025-07-19),
  `json/simplified_json_generated_data_vn_units.json`
- `units-2025-two-level.json`: tag v4.2.0 (2026-08-02),
  `json/full_json_generated_data_vn_units_2026-07-25__20_49_07.json`
- `merger-2025.json`: tag v4.2.0,
  `dataset-generation-scripts/sapnhap-bando-crawler/donvi_tinhthanh.json`

Rebuild (byte-identical; `tests/unit/common/test_unitdata.py` checks it):

    python -m services.common.unitdata ../shared/data/vn-units data/units

## Files

| file | content |
|---|---|
| `units-2024.csv` | three-level hierarchy in force until 2025-06-30: {provinces_2024} provinces, \
{districts_2024} districts, {communes_2024} communes |
| `units-2025.csv` | two-level hierarchy in force from 2025-07-01: {provinces_2025} provinces, \
{communes_2025} communes (đặc khu included) |
| `crosswalk-2025.csv` | old code -> new code, one row per candidate |
| `crosswalk-report.md` | everything the crosswalk could not match or found split |
| `departments.csv` | provincial departments (the project's own codes): \
{departments_2024} of the 2024 era, {departments_2025} of the 2025 era |

Columns of the unit files: `code, level (province|district|commune), name, name_en,
full_name, full_name_en, parent_code` (empty for provinces). Dates are local
(Asia/Ho_Chi_Minh): an event's local date decides which file its code is read in.

## How the crosswalk is derived

- Provinces: the merger list's province entries name their predecessors
  ("tỉnh Bắc Kạn và tỉnh Thái Nguyên", "giữ nguyên"); each is matched by name.
- Communes: each predecessor named in a new commune's entry is matched by name among
  the old units of the new province's predecessor provinces only. Names are compared
  case-insensitively, with tone-mark placement normalised ("hoà" = "hòa"), hyphens and
  leading zeros ignored, "xã/phường/thị trấn" prefixes removed; the diacritic-free form
  is used only if the exact form finds nothing. When a name has several candidates they
  are narrowed by the stated type, by the bracketed district or province ("Xã Tân
  Thành (huyện Hàm Yên)"), then by code identity with the new unit (a new unit keeps
  one predecessor's code). Anything still not exactly one unit is listed in the report.
- `match`: `unchanged` (same code and name, named by one entry only), `merged` (wholly
  merged into one new unit), `partial` (named by several new units, or only part of its
  area: "một phần diện tích", "phần còn lại"). A "một phần" phrase marks every later
  predecessor of the same entry partial (conservative: the text does not say where
  the list ends).
- A whole district named as a predecessor (island districts that became đặc khu) links
  itself and each of its communes to the new unit. The district's own row (since
  2026-12-05, review 61) gives an island district without communes (Bạch Long Vĩ, Côn
  Đảo) a successor for its earlier figures: restated on the đặc khu, backfilled by its
  key.

## Decisions

- Districts were abolished on 2025-07-01: a district code on an event dated from
  2025-07-01 is unknown (never mapped to a guessed commune), the six whose crosswalk
  row names the đặc khu they became included.
- A `partial` old commune is ambiguous after the reform: the registry raises
  `AmbiguousUnit` with the candidate new codes, even when only one is known.
- A code in use in both eras (reused, like 16342: Xã Thăng Long until 2025-06-30, Xã
  Thăng Bình since) means the current unit after the reform; the crosswalk is used
  only for codes that no longer exist.

## Crosswalk counts

| what | count |
|---|---|
{counts}

## Departments (the project's scheme, not official codes)

Code `<province code>-<abbrev>`, e.g. `19-STTTT` for Sở Thông tin và Truyền thông
Thái Nguyên; the same standard set for each province of each era: the 63 provinces
until 2025-06-30, the 34 since. Column `era` says which: a 2024-era department belongs
to the old province of its code and is named after it (`06-STTTT`: Sở Thông tin và
Truyền thông tỉnh Bắc Kạn; `19-STP` before 2025-07-01 belongs to the old, smaller Thái
Nguyên; `80-STTTT` was Long An's and is Tây Ninh's since).

After the reform a department code of the 2024 era that no longer exists (a province
dissolved on 2025-07-01) means the department of the same abbreviation in the province
its province went into, by the province rows of the crosswalk (`06-STTTT` ->
`19-STTTT`, `67-SNV` -> `68-SNV`); a code in use in both eras means today's department.
Restated history of a department of today sums the departments of its kind in its
province's predecessors (`19-STTTT` before 2025-07-01: `06-STTTT` + `19-STTTT`). The
crosswalk file itself has no department rows.

`STTTT` is kept because operators and integrators use it, although most provinces
merged it into the Sở Khoa học và Công nghệ in 2025.

District offices (phòng, ban of a huyện, until 2025-06-30) have no codes here: the
source dataset has none, and no scheme is invented for them, so their events are
published under their district's code and count for the district
(`tests/unit/test_review36_domain.py` keeps this limit as a strict xfail).

| abbrev | name | English |
|---|---|---|
{dept_list}
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not 1 <= len(args) <= 2:
        print("usage: python -m services.common.unitdata SOURCE_DIR [OUT_DIR]", file=sys.stderr)
        return 2
    out = Path(args[1]) if len(args) == 2 else UNITS_DIR
    report = build(Path(args[0]), out)
    print(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
