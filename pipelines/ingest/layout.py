"""How a batch's table is read through its source's configuration, before any value is parsed:
which declared layout it has, which record key each mapped column names, the batch's period
when it is outside the table (a title cell, a fixed cell, the file name, the sheet name), and
which rows the source's row rules leave out.

Everything here works on a raw batch and its source entry and names what it could not do, so
that a whole batch is refused with a reason the user can act on (`ambiguous_column`,
`unknown_layout`, `period_not_found`) and never silently misread.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import PurePath

from kpimodel.periods import MONTH_NUMBERS as _MONTHS
from pipelines.ingest.parsing import _text
from pipelines.ingest.readers import RawBatch, column_letter

# The record key a batch-level period is placed under, so that the mapping reads it like a column.
BATCH_PERIOD = "__period__"
# Source settings that do not change how a file is read: editing them re-reads nothing.
NOT_READING = ("description", "cadence", "lag_days", "max_file_mb", "timeout_seconds", "retries")
BATCH_PERIOD_FORMS = ("title", "cell", "file_name", "sheet_name")


def mapping_sha256(source: dict) -> str:
    """The identity of a source's mapping: everything in its entry that decides what its files
    are read as. A file read under one mapping is read again under a changed one."""
    reading = {k: v for k, v in source.items() if k not in NOT_READING}
    return hashlib.sha256(json.dumps(reading, sort_keys=True, default=str).encode()).hexdigest()


class Refused(Exception):
    """The whole batch cannot be read through the mapping: a named reason and what to do."""

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class Prepared:
    """A batch ready for parsing: the effective source entry (layout applied, column names
    resolved), the kept records by record number, and the rows left out by each rule."""
    source: dict
    numbered: list[tuple[int, dict]]
    excluded: dict[str, list[int]] = field(default_factory=dict)
    layout: str | None = None
    period_origin: str | None = None
    mapped: list[str] = field(default_factory=list)  # the record keys the mapping reads


def _norm(name: str) -> str:
    return " ".join(str(name).split())


def headings_of(batch: RawBatch) -> list[tuple[str, str, int]]:
    if batch.headings is not None:
        return batch.headings
    return [(c, c, i) for i, c in enumerate(batch.columns, start=1) if c]


def _letter_to_position(ref: str) -> int | None:
    m = re.fullmatch(r"\$([A-Za-z]{1,3}|\d{1,4})", ref.strip())
    if not m:
        return None
    token = m[1]
    if token.isdigit():
        return int(token)
    pos = 0
    for ch in token.upper():
        pos = pos * 26 + (ord(ch) - 64)
    return pos


def resolve_column(ref: str, headings: list[tuple[str, str, int]]) -> str:
    """The record key a mapped column reference names: the full key ("Group / Column"), the
    column's own heading when only one column has it, or a letter / position (`$F`, `$6`).
    A reference that names nothing is returned as is (reported as a missing column)."""
    want = _norm(ref)
    for key, _, _ in headings:
        if key == want:
            return key
    pos = _letter_to_position(ref)
    if pos is not None:
        return next((k for k, _, p in headings if p == pos), ref)
    same = [(k, p) for k, h, p in headings if h == want]
    if len(same) == 1:
        return same[0][0]
    if len(same) > 1:
        listed = ", ".join(f"{k!r} (column {column_letter(p)})" for k, p in same)
        raise Refused("ambiguous_column", f"{ref!r} stands in {len(same)} columns: {listed}; map one of these names")
    return ref


def _resolve_field(spec, headings):
    if spec is None:
        return None
    if isinstance(spec, str):
        return resolve_column(spec, headings)
    spec = dict(spec)
    for key in ("column", "year", "month", "quarter"):
        if key in spec and isinstance(spec[key], str):
            spec[key] = resolve_column(spec[key], headings)
    for key in ("subtract", "sum", "join"):
        if key in spec:
            spec[key] = [resolve_column(c, headings) for c in spec[key]]
    return spec


def _resolve_rules(rules, headings):
    out = []
    for rule in rules or []:
        rule = dict(rule)
        for kind in ("exclude", "include"):
            if kind in rule:
                rule[kind] = {**rule[kind], "column": resolve_column(rule[kind]["column"], headings)}
        out.append(rule)
    return out


def choose_layout(source: dict, headings: list[tuple[str, str, int]]) -> tuple[dict, str | None]:
    """The source entry with the first declared layout whose header holds all its labels
    applied; the source itself when it declares none."""
    layouts = source.get("layouts")
    if not layouts:
        return source, None
    present = {k for k, _, _ in headings} | {h for _, h, _ in headings}
    missing_by = []
    for layout in layouts:
        missing = [lab for lab in layout["header_contains"] if _norm(lab) not in present]
        if not missing:
            effective = {**source, "columns": {**source["columns"], **layout.get("columns", {})}}
            if "row_rules" in layout:
                effective["row_rules"] = layout["row_rules"]
            return effective, layout["name"]
        missing_by.append(f"{layout['name']} lacks {', '.join(map(repr, missing))}")
    raise Refused("unknown_layout", "the header fits no declared layout (" + "; ".join(missing_by) +
                  "): declare this layout in the source's `layouts`")


# ---- the batch's period, when it is outside the table ----------------------------------------
def _from_parts(m: re.Match, where: str) -> str:
    parts = {k: v for k, v in m.groupdict().items() if v is not None}
    if "period" in parts:
        return parts["period"]
    if "year" not in parts or not ({"month", "quarter"} & set(parts)):
        raise Refused("period_not_found", f"{where}: the pattern needs named parts (?P<year>..) and "
                                          "(?P<month>..) or (?P<quarter>..), or (?P<period>..)")
    if not parts["year"].isdigit() or len(parts["year"]) not in (2, 4):
        raise Refused("period_not_found", f"{where}: year {parts['year']!r} is not 2 or 4 digits")
    year = int(parts["year"])
    if year < 100:
        year += 2000 if year < 70 else 1900
    if "quarter" in parts:
        quarter = parts["quarter"].lstrip("Qq")
        if quarter not in ("1", "2", "3", "4"):
            raise Refused("period_not_found", f"{where}: {parts['quarter']!r} is not a quarter")
        return f"{year:04d}-Q{quarter}"
    month = parts["month"]
    number = int(month) if month.isdigit() else _MONTHS.get(month.lower().rstrip("."))
    if not number or not 1 <= number <= 12:
        raise Refused("period_not_found", f"{where}: {month!r} is not a month")
    return f"{year:04d}-{number:02d}"


def _title_value(rows: list[tuple], label: str) -> tuple[str, str] | None:
    """The first non-empty cell right of a cell holding `label` (with or without its colon)."""
    want = _norm(label).rstrip(":").lower()
    for r, row in enumerate(rows):
        for c, v in enumerate(row):
            if isinstance(v, str) and _norm(v).rstrip(":").lower() == want:
                for c2 in range(c + 1, len(row)):
                    if row[c2] is not None and _text(row[c2]) is not None:
                        return row[c2], f"{column_letter(c2 + 1)}{r + 1}"
                return None
    return None


def batch_period(spec, batch: RawBatch):
    """(value, format, origin) of a batch-level period, or None when the period is a column."""
    if not isinstance(spec, dict) or not set(spec) & set(BATCH_PERIOD_FORMS):
        return None
    fmt = spec.get("format")
    sheet = f"sheet {batch.sheet!r}" if batch.sheet else "the file"
    if "title" in spec:
        found = _title_value(batch.top_rows, spec["title"])
        if found is None:
            raise Refused("period_not_found", f"no cell {spec['title']!r} with a value beside it above the header of {sheet}")
        value, cell = found
        return value, fmt, f"title cell {batch.sheet}!{cell} beside {spec['title']!r}"
    if "cell" in spec:
        m = re.fullmatch(r"([A-Za-z]{1,3})(\d+)", spec["cell"])
        col, row = _letter_to_position("$" + m[1]), int(m[2])
        rows = batch.top_rows
        value = rows[row - 1][col - 1] if row <= len(rows) and col <= len(rows[row - 1]) else None
        if _text(value) is None:
            raise Refused("period_not_found", f"cell {spec['cell'].upper()} of {sheet} is empty or not above the header")
        return value, fmt, f"cell {batch.sheet}!{spec['cell'].upper()}"
    if "file_name" in spec:
        name = PurePath(batch.source_file or "").name
        return (*_named(spec["file_name"], name, f"file name {name!r}", fmt), f"file name {name!r}")
    name = batch.sheet or ""
    if spec["sheet_name"] is True:
        return name, fmt, f"sheet name {name!r}"
    return (*_named(str(spec["sheet_name"]), name, f"sheet name {name!r}", fmt), f"sheet name {name!r}")


def file_name_period(spec: dict, name: str) -> str:
    """The period text a `{file_name: pattern}` spec finds in a file name (Refused when none)."""
    return _named(spec["file_name"], PurePath(name).name, f"file name {PurePath(name).name!r}", spec.get("format"))[0]


def _named(pattern: str, text: str, where: str, fmt: str | None) -> tuple[str, str | None]:
    """(period text, format) from a name and a pattern: its named parts, or the whole match."""
    m = re.search(pattern, text)
    if not m:
        raise Refused("period_not_found", f"{where} does not match the pattern '{pattern}'")
    parts = m.groupdict()
    if not parts:
        return m[0], fmt
    if parts.get("period") is not None:
        return parts["period"], fmt
    return _from_parts(m, where), None  # built as YYYY-MM / YYYY-Qn


# ---- row rules -------------------------------------------------------------------------------
def _matches(cond: dict, record: dict) -> bool:
    text = _text(record.get(cond["column"]))
    if "empty" in cond:
        return (text is None) == bool(cond["empty"])
    if text is None:
        return False
    if "equals" in cond:
        return text == _text(cond["equals"])
    if "in" in cond:
        return text in {_text(v) for v in cond["in"]}
    return re.search(cond["matches"], text) is not None


def apply_row_rules(numbered: list[tuple[int, dict]], rules) -> tuple[list[tuple[int, dict]], dict[str, list[int]]]:
    """Kept records and, per rule name, the record numbers it left out. Rules apply in order;
    the first that leaves a row out names it."""
    if not rules:
        return numbered, {}
    kept, excluded = [], {}
    for n, rec in numbered:
        for rule in rules:
            if "exclude" in rule and _matches(rule["exclude"], rec):
                hit = True
            elif "include" in rule and not _matches(rule["include"], rec):
                hit = True
            else:
                hit = False
            if hit:
                excluded.setdefault(rule["name"], []).append(n)
                break
        else:
            kept.append((n, rec))
    return kept, excluded


def rule_columns(rules) -> list[str]:
    return [rule[k]["column"] for rule in rules or [] for k in ("exclude", "include") if k in rule]


def prepare_batch(batch: RawBatch, source: dict) -> Prepared:
    """The batch through its source's layout, column references, batch period and row rules;
    raises Refused naming why the whole batch cannot be read."""
    from pipelines.ingest.parsing import required_columns

    headings = headings_of(batch)
    source, layout = choose_layout(source, headings)
    columns = {name: _resolve_field(spec, headings) for name, spec in source["columns"].items()}
    effective = {**source, "columns": columns, "row_rules": _resolve_rules(source.get("row_rules"), headings)}
    if source.get("wide"):
        kpi_columns = {resolve_column(c, headings): k for c, k in source["wide"]["kpi_columns"].items()}
        effective["wide"] = {**source["wide"], "kpi_columns": kpi_columns}
    numbered = list(enumerate(batch.records, start=1))
    origin = None
    found = batch_period(source["columns"]["period"], batch)
    if found is not None:
        value, fmt, origin = found
        columns["period"] = {"column": BATCH_PERIOD, **({"format": fmt} if fmt else {})}
        numbered = [(n, {**rec, BATCH_PERIOD: value}) for n, rec in numbered]
        origin = f"{origin}: {_text(value)!r}"
    kept, excluded = apply_row_rules(numbered, effective["row_rules"])
    mapped = [c for c in required_columns(effective) + rule_columns(effective["row_rules"]) if c != BATCH_PERIOD]
    return Prepared(effective, kept, excluded, layout, origin, list(dict.fromkeys(mapped)))
