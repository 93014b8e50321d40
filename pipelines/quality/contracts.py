"""Source contracts: which GX suite validates a source, and its schema (columns and types).

Suites are committed JSON under expectations/suites/:
- `landed_observations.json`: the default contract of a parsed batch (every source);
- `source_<source_id>.json`: a source's own suite. `meta.extends` names the suite whose
  expectations come first (normally `landed_observations`); its own expectations follow.
  `meta.contract.columns` is the raw schema: each column's name and type (`number`, `period`,
  `string`), in file order;
- `mart_<model>.json`: the contract of a published mart (see pipelines/quality/publish.py).

A batch's schema is compared by name with its source's contract, or, for a source without a
contract, with the schema of the source's previous accepted batch. Any difference (a column
added, missing, renamed or of another type) quarantines the batch whole.
"""
from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass

from pipelines.config import EXPECTATIONS_DIR

DEFAULT_SUITE = "landed_observations"
SUITES_DIR = EXPECTATIONS_DIR / "suites"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")

# A column's type is the class that at least TYPE_MAJORITY of its non-empty values belong to:
# a few bad cells are bad rows (quarantined one by one), not a type change.
TYPE_MAJORITY = 0.8
TYPES = ("number", "period", "string", "empty")


def source_suite_name(source_id: str) -> str:
    """The suite that validates a source: its own if committed, else the default."""
    name = f"source_{source_id}"
    return name if _NAME.match(name) and (SUITES_DIR / f"{name}.json").is_file() else DEFAULT_SUITE


@functools.cache
def load_suite(name: str) -> dict:
    """A suite as GX reads it ({name, expectations, meta}), with `extends` resolved."""
    if not _NAME.match(name):
        raise ValueError(f"not a suite name: {name!r}")
    raw = json.loads((SUITES_DIR / f"{name}.json").read_text())
    meta = dict(raw.get("meta", {}))
    expectations = list(raw.get("expectations", []))
    parent = meta.get("extends")
    if parent:
        expectations = [*load_suite(parent)["expectations"], *expectations]
    names = [e["meta"]["check_name"] for e in expectations]
    if len(names) != len(set(names)):
        raise ValueError(f"suite {name}: check names repeat: {sorted(n for n in names if names.count(n) > 1)}")
    return {"name": raw.get("name", name), "expectations": expectations, "meta": meta}


def all_suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.json") if _NAME.match(p.stem))


def contract_columns(suite_name: str) -> list[tuple[str, str]] | None:
    """The raw schema a source's suite declares, or None (compare with the previous batch)."""
    contract = load_suite(suite_name)["meta"].get("contract")
    if not contract:
        return None
    return [(c["name"], c["type"]) for c in contract["columns"]]


# ---- column types ---------------------------------------------------------------------------
_NUMBER = re.compile(r"^[-+]?(\d{1,3}(,\d{3})+|\d+)?(\.\d+)?([eE][-+]?\d+)?%?$")
_PERIOD = re.compile(r"^\d{4}(-\d{1,2}(-\d{1,2})?|\s*-?\s*Q[1-4])$", re.IGNORECASE)


def value_type(v: object) -> str | None:
    """number | period | string for one cell; None for an empty cell."""
    if v is None:
        return None
    if isinstance(v, bool):
        return "string"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, (dt.date, dt.datetime)):
        return "period"
    text = str(v).strip()
    if not text:
        return None
    if _PERIOD.match(text):
        return "period"
    if any(ch.isdigit() for ch in text) and _NUMBER.match(text):
        return "number"
    return "string"


_UNSEEN = object()


def infer_schema(columns: list[str], records: list[dict], markers=()) -> list[tuple[str, str]]:
    """[(column, type)] in file order; type `empty` when a column has no value at all, and
    `string` when no type reaches TYPE_MAJORITY of the non-empty values. Cells holding one of
    the source's missing `markers` (`N/A`, `-`) are left out like empty cells: a marked gap
    is a missing value (its row is quarantined as missing_value), never a change of type."""
    markers = {str(m).strip() for m in markers}
    out = []
    for name in columns:
        if not name:
            continue  # an unnamed trailing column (spreadsheet padding)
        counts: dict[str, int] = {}
        memo: dict[str, str | None] = {}  # texts repeat (ids, periods, counts): type each once
        for rec in records:
            v = rec.get(name)
            kind = type(v)
            if kind is str:
                t = memo.get(v, _UNSEEN)
                if t is _UNSEEN:
                    t = memo[v] = None if v.strip() in markers else value_type(v)
            elif kind is float or kind is int:
                t = "number"
            else:
                t = value_type(v)
            if t:
                counts[t] = counts.get(t, 0) + 1
        total = sum(counts.values())
        if not total:
            out.append((name, "empty"))
            continue
        best, n = max(counts.items(), key=lambda kv: kv[1])
        out.append((name, best if n >= TYPE_MAJORITY * total else "string"))
    return out


def compatible(expected: str, observed: str) -> bool:
    """`string` accepts anything (any cell can be text); an `empty` column fits any type."""
    return expected == observed or expected == "string" or observed == "empty" or expected == "empty"


@dataclass(frozen=True)
class SchemaChange:
    change: str              # added | missing | renamed | type_changed
    column: str              # the column's name (for renamed: the new name)
    previous: str | None = None   # renamed: the old name; type_changed: the old type
    current: str | None = None    # type_changed: the new type

    def describe(self) -> str:
        if self.change == "renamed":
            return f"column renamed {self.previous!r} → {self.column!r}"
        if self.change == "type_changed":
            return f"column {self.column!r} changed type {self.previous} → {self.current}"
        return f"column {self.change} {self.column!r}"


def compare_schema(expected: list[tuple[str, str]], observed: list[tuple[str, str]]) -> list[SchemaChange]:
    """Differences by name. A missing column and an added column at the same position, with
    compatible types, are reported as one rename."""
    exp_names = [n for n, _ in expected]
    obs_names = [n for n, _ in observed]
    exp_type, obs_type = dict(expected), dict(observed)
    missing = [n for n in exp_names if n not in obs_type]
    added = [n for n in obs_names if n not in exp_type]
    changes: list[SchemaChange] = []
    for old in list(missing):
        pos = exp_names.index(old)
        if pos < len(obs_names) and obs_names[pos] in added and compatible(exp_type[old], obs_type[obs_names[pos]]):
            new = obs_names[pos]
            changes.append(SchemaChange("renamed", new, old))
            missing.remove(old)
            added.remove(new)
    changes += [SchemaChange("missing", n) for n in missing]
    changes += [SchemaChange("added", n) for n in added]
    for n in exp_names:
        if n in obs_type and not compatible(exp_type[n], obs_type[n]):
            changes.append(SchemaChange("type_changed", n, exp_type[n], obs_type[n]))
    return changes
