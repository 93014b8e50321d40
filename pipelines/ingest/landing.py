"""Land a source's new batches: parse, validate (GX), then append accepted rows to
raw.observations and rejected rows to raw.quarantine, each with a named reason.

For every batch: rows_accepted + rows_quarantined = rows_in. A batch whose file (sha256) or
query result was landed before is skipped, so re-ingesting is a no-op. Before its rows are
read, a batch's schema is checked against its source's contract (expectations/suites/
source_<id>.json) or previous batch: a change quarantines it whole, with the change named;
an empty file is a named outcome too (docs/quality.md).
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from pipelines.catalog.loader import Catalog
from pipelines.catalog.tables import value_range
from pipelines.ingest.bounds import check_workbook
from pipelines.ingest.fastparse import parse_batch
from pipelines.ingest.layout import BATCH_PERIOD, Prepared, Refused, mapping_sha256, prepare_batch, rule_columns
from pipelines.ingest.parsing import DEFAULT_MISSING_MARKERS, expand_wide, required_columns
from pipelines.ingest.readers import (RawBatch, SourceError, _sha256_file, files_in_order, read_batches,
                                      read_file_batches, row_map)
from pipelines.quality.contracts import compare_schema, contract_columns, infer_schema, source_suite_name
from pipelines.quality.gx_validation import ExpectationOutcome, validate_frame
from pipelines.quality.store import ensure_quality
from pipelines.text import one_line
from pipelines.warehouse import allow_shared_sources, ensure_landing, insert_frame, is_warehouse_failure

# Above this share of rejected rows a batch is not trusted (critical): a file that is mostly
# wrong more likely has a systematic problem (wrong template, shifted columns) than bad rows --
# provided at least MIN_REJECTED_ROWS rows were rejected (one missing value in a four-row return
# is a bad row, not a broken feed). kpiwatch.yml `rejection` and a source's own `rejection`
# (max_share, min_rows) override these, key by key (the source's first).
MAX_REJECTED_SHARE = 0.25
MIN_REJECTED_ROWS = 3


def rejection_limits(source: dict, catalog: Catalog) -> tuple[float, int]:
    """(max_share, min_rows) of a source: its own `rejection`, else kpiwatch.yml's, else the defaults."""
    own, wide = source.get("rejection") or {}, catalog.rejection or {}
    share = own.get("max_share", wide.get("max_share", MAX_REJECTED_SHARE))
    rows = own.get("min_rows", wide.get("min_rows", MIN_REJECTED_ROWS))
    return float(share), int(rows)


def rejection_outcome(rejected: int, rows_in: int, limits: tuple[float, int], department: str | None = None):
    """The rejection_rate check: failed when more than max_share of the rows were rejected AND
    at least min_rows of them."""
    max_share, min_rows = limits
    share = (rejected / rows_in) if rows_in else 0.0
    whose = f"{department}'s rows: " if department else ""
    o = _own("rejection_rate", not (share > max_share and rejected >= min_rows),
             f"{whose}{share:.1%} of {rows_in} rows rejected ({rejected} row{'' if rejected == 1 else 's'})",
             f"<= {max_share:.0%} of the rows, or fewer than {min_rows} rows rejected", rejected)
    o.department_id = department
    return o


def value_bounds(kpi: dict, defaults: dict) -> tuple[float | None, float | None, float | None]:
    """(sign_floor, min, max) of a KPI's values, as the landed_observations suite checks them
    (a min of 0 is left to the sign floor, so a negative value fails one check, negative_value):
    sign_floor 0 when the KPI refuses negatives (its range starts at 0 or above: the default,
    unless allow_negative or a negative min), and its inclusive range (catalog value_range: a
    percent unit, however spelled, is 0-100 unless min / max say otherwise)."""
    low, high = value_range(kpi, defaults)
    floor = 0.0 if low is not None and low >= 0 else None
    return floor, (None if low == floor else low), high  # a min of 0 is the sign floor's check

# Checks computed by kpiwatch itself rather than by a GX expectation. The first four run before
# the source's GX suite, rejection_rate after it.
OWN_CHECKS = {
    "not_empty": "warn",             # the batch has data rows (an empty file is a named outcome)
    "schema_contract": "critical",   # columns and types as in the contract / the previous batch
    "columns_present": "critical",   # the source's mapped columns exist in the batch
    "values_parseable": "warn",      # numbers and periods parse; measures present
    "rejection_rate": "critical",    # rejected rows: share <= max_share, or fewer than min_rows
}
PRE_SUITE_CHECKS = ("not_empty", "schema_contract", "columns_present", "values_parseable")
# File sources are read one file at a time while landing, so that one batch's records are in
# memory at once (a source of 36 monthly files of 35,000 rows held 1.3 million dicts).
FILE_KINDS = ("csv", "excel", "parquet")
PARSED_COLUMNS = ["kpi_id", "org_id", "period", "value", "numerator", "denominator", "target"]


# A quarantine row's detail is capped: a file of 16,384 columns would otherwise repeat a 447 KB
# list of its columns in every row (the row itself is kept whole in `record`).
MAX_DETAIL = 1000


def cap_detail(detail: str | None) -> str | None:
    if detail is None or len(detail) <= MAX_DETAIL:
        return detail
    return detail[:MAX_DETAIL] + f"… ({len(detail) - MAX_DETAIL:,} more characters)"


@dataclass
class SchemaVerdict:
    """A batch's columns and types against its source's contract or previous batch."""
    observed: list[tuple[str, str]]
    baseline: list[tuple[str, str]] | None   # None: nothing to compare with (the first batch)
    compared_with: str | None                # "contract <suite>" or "batch <batch id>"
    changes: list = field(default_factory=list)
    info: list = field(default_factory=list)  # changes to columns the mapping does not read

    @property
    def verdict(self) -> str:
        if self.baseline is None:
            return "baseline"
        return "changed" if self.changes else "matches"

    def describe(self) -> str:
        return "; ".join(c.describe() for c in self.changes)

    def note(self) -> str:
        """The changes that refuse nothing: columns the mapping does not read."""
        return "; ".join(f"{c.describe()} (not mapped)" for c in self.info)


def _touches(change, mapped: set[str]) -> bool:
    """Whether a schema change concerns a column the mapping reads. A mapped column that is new
    (a later layout) is information too: the mapping says what it reads."""
    if change.change == "added":
        return False
    if change.change == "renamed":  # refuses only when the mapping still reads the old name
        return change.previous in mapped
    return change.column in mapped


def check_schema(batch: RawBatch, source_id: str, previous: tuple[str, list] | None,
                 mapped: list[str] | None = None, markers=DEFAULT_MISSING_MARKERS) -> SchemaVerdict:
    """Compare a batch's schema (as read, before any mapping) with its source's contract, else
    with `previous` (batch id, schema) of the source's last accepted batch. With `mapped` (the
    columns the mapping reads) only changes to those refuse the batch; the rest are information.
    Cells holding one of the source's missing `markers` do not count towards a column's type."""
    observed = infer_schema(batch.columns, batch.records, markers)
    suite = source_suite_name(source_id)
    contract = contract_columns(suite)
    if contract is not None:
        verdict = SchemaVerdict(observed, contract, f"contract {suite}", compare_schema(contract, observed))
    elif previous is not None:
        verdict = SchemaVerdict(observed, previous[1], f"batch {previous[0]}", compare_schema(previous[1], observed))
    else:
        return SchemaVerdict(observed, None, None)
    if mapped is not None:
        keep = set(mapped)
        verdict.info = [c for c in verdict.changes if not _touches(c, keep)]
        verdict.changes = [c for c in verdict.changes if _touches(c, keep)]
    return verdict


@dataclass
class BatchReport:
    batch_id: str
    source_file: str | None
    sha256: str
    rows_in: int
    rows_accepted: int
    rows_quarantined: int
    reasons: dict[str, int]
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    schema: SchemaVerdict | None = None
    problem: str | None = None  # why the whole batch was refused (unreadable, empty, schema change)
    excluded: dict[str, int] = field(default_factory=dict)  # rows left out, per row rule
    reread: bool = False        # the file was read before, under another mapping of its source

    def message(self) -> str:
        """One line for the user: the file (or query) and what happened to its rows."""
        return one_line(self._message(), None)

    def _message(self) -> str:
        where = self.source_file or f"query {self.batch_id}"
        if self.reread:
            where += " (read again: its source's mapping changed)"
        left = ("; " + ", ".join(f"{n} excluded by rule {r}" for r, n in sorted(self.excluded.items()))) \
            if self.excluded else ""
        if self.problem and not self.rows_accepted:
            problem = self.problem.removeprefix(f"{self.source_file}: ") if self.source_file else self.problem
            return f"{where}: refused ({', '.join(self.reasons)}) — {problem}"
        if self.rows_quarantined:
            why = ", ".join(f"{r} × {n}" for r, n in sorted(self.reasons.items()))
            return (f"{where}: {self.rows_quarantined} of {self.rows_in} rows quarantined ({why}); "
                    f"{self.rows_accepted} landed{left}")
        return f"{where}: {self.rows_in} rows landed{left}"


@dataclass
class SourceReport:
    source_id: str
    batches: list[BatchReport] = field(default_factory=list)
    error: str | None = None  # the source could not be read at all
    failures: list[str] = field(default_factory=list)  # files that could not be read (nothing recorded)
    notes: list[str] = field(default_factory=list)  # named no-ops (a duplicate file in one drop)

    @property
    def rows_in(self) -> int:
        return sum(b.rows_in for b in self.batches)

    @property
    def rows_accepted(self) -> int:
        return sum(b.rows_accepted for b in self.batches)

    @property
    def rows_quarantined(self) -> int:
        return sum(b.rows_quarantined for b in self.batches)


def _own(check: str, success: bool, observed: str, expected: str, unexpected: int = 0, reason=None, rows=None):
    return ExpectationOutcome(check, "kpiwatch." + check, None, OWN_CHECKS[check], success, observed,
                              expected, unexpected, reason, rows or [])


def _json(record: dict) -> str:
    return json.dumps(record, default=str, ensure_ascii=False)


# A period this many years before both the KPI's baseline and the source's landed history is not
# plausible (a 1900-01 typo): quarantined as period_out_of_range rather than landed, where it
# would make every month since then a missing submission.
PLAUSIBLE_HISTORY_YEARS = 10


def period_floor(kpi: dict | None, history_start: dt.date | None) -> dt.date | None:
    """The earliest plausible period of a KPI's rows: PLAUSIBLE_HISTORY_YEARS before the earlier
    of its baseline date and the source's first landed period (None: nothing to judge by)."""
    known = [d for d in (history_start, _baseline_date(kpi)) if d is not None]
    if not known:
        return None
    first = min(known)
    return dt.date(first.year - PLAUSIBLE_HISTORY_YEARS, first.month, 1)


def _baseline_date(kpi: dict | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(kpi["baseline"]["date"]))
    except (TypeError, KeyError, ValueError):
        return None


def process_batch(batch: RawBatch, source: dict, catalog: Catalog, as_of: dt.date,
                  schema: SchemaVerdict | None = None, gx_results: list | None = None,
                  prepared: Prepared | Refused | None = None,
                  history_start: dt.date | Callable[[], dt.date | None] | None = None):
    """Pure step: a raw batch -> (accepted frame indexed by row number, quarantine rows, outcomes).

    `schema` (from check_schema) is the batch's schema verdict; GX validation results (JSON) are
    appended to `gx_results` when given. `prepared` is the batch through its source's layout,
    batch period and row rules (prepare_batch; computed here when not given): rows a rule
    leaves out are counted in `batch.excluded`, neither landed nor quarantined. `history_start`
    is the source's first landed period (or a function returning it)."""
    kpis = {k: catalog.kpis[k] for k in catalog.kpis_of_source(source["id"])}
    numbered = list(enumerate(batch.records, start=1))
    cells = dict(numbered)  # record (or cell) number -> record
    quarantine: list[tuple[int | None, str, str, str]] = []
    if not batch.error and numbered:
        if prepared is None:
            try:
                prepared = prepare_batch(batch, source)
            except Refused as exc:
                prepared = exc
        if isinstance(prepared, Refused):
            # The mapping cannot read this batch at all (no layout fits, a mapped name stands in
            # two columns, no period found): every row is kept in quarantine with the reason.
            where = f"{batch.source_file}" + (f", sheet {batch.sheet!r}" if batch.sheet else "")
            detail = f"{where}: {prepared.detail}"
            for n, rec in numbered:
                quarantine.append((n, prepared.reason, detail, _json(rec)))
            return pd.DataFrame(columns=PARSED_COLUMNS), quarantine, [
                _own("columns_present", False, detail, "a header the source's mapping can read", len(numbered),
                     prepared.reason)]
        source = prepared.source
        batch.excluded, batch.layout, batch.period_origin = prepared.excluded, prepared.layout, prepared.period_origin
        numbered = prepared.numbered
        cells = dict(numbered)

    if batch.error:
        quarantine.append((None, "unreadable_source", batch.error, "{}"))
        return pd.DataFrame(columns=PARSED_COLUMNS), quarantine, [
            _own("columns_present", False, batch.error, "a readable file")
        ]
    if not numbered and batch.source_file is None:
        # A query that returned no rows (e.g. no row matched its parameters): named, not an error.
        return pd.DataFrame(columns=PARSED_COLUMNS), quarantine, [
            _own("not_empty", False, "the query returned no rows", "at least one data row")
        ]
    if not numbered and batch.records:
        # Every row was left out by the source's row rules: counted, nothing to land.
        left = ", ".join(f"{r} × {len(ns)}" for r, ns in sorted(batch.excluded.items()))
        return pd.DataFrame(columns=PARSED_COLUMNS), quarantine, [
            _own("not_empty", False, f"every row excluded by rule ({left})", "at least one data row")
        ]
    if not numbered:
        # An empty file is a named outcome (never a silent success): like an unreadable file,
        # the file is the one input unit, quarantined with its reason.
        found = ", ".join(map(repr, batch.columns)) if batch.columns else "no header either"
        detail = f"no data rows (columns: {found})"
        quarantine.append((None, "empty_batch", detail, "{}"))
        return pd.DataFrame(columns=PARSED_COLUMNS), quarantine, [
            _own("not_empty", False, detail, "at least one data row", 1, "empty_batch")
        ]
    outcomes = [_own("not_empty", True, f"{len(numbered)} data rows", "at least one data row")]
    if schema is not None and schema.baseline is not None:
        expected = f"{schema.compared_with}: " + ", ".join(f"{n} ({t})" for n, t in schema.baseline)
        observed = schema.describe() or "columns and types as expected"
        if schema.info:
            observed += f"; information: {schema.note()}"
        outcomes.append(_own("schema_contract", not schema.changes, observed,
                             expected, len(numbered) if schema.changes else 0, "schema_change" if schema.changes else None))
    elif schema is not None:
        outcomes.append(_own("schema_contract", True, "first batch of a source without a contract: schema recorded",
                             "no contract; later batches are compared with this one"))
    # The mapped columns and those the row rules read: a rule on a column that is gone would
    # silently stop excluding (subtotals counted twice), so it is a missing column too.
    needed = [c for c in dict.fromkeys(required_columns(source) + rule_columns(source.get("row_rules")))
              if c != BATCH_PERIOD]
    missing = [c for c in needed if c not in batch.columns]
    if not missing and schema is not None and schema.changes:
        # Column added, unmapped column missing or renamed, type changed: the source no longer
        # sends what its contract says, so no row is trusted; all are kept, with the reason.
        outcomes.append(_own("columns_present", True, f"columns {batch.columns}", f"columns {needed}"))
        detail = f"schema change ({schema.compared_with}): {schema.describe()}"
        for n, rec in numbered:
            quarantine.append((n, "schema_change", detail, _json(rec)))
        return pd.DataFrame(columns=PARSED_COLUMNS), quarantine, outcomes
    if not missing and source.get("wide"):
        # One column per KPI: each cell is an observation (and the unit of accounting).
        kept_rows = [n for n, _ in numbered]
        numbered, cell_rows, source = expand_wide([rec for _, rec in numbered], source)
        batch.cell_rows = {cell: kept_rows[row - 1] for cell, row in cell_rows.items()}
        cells = dict(numbered)
    if missing:
        # A schema change: nothing in the batch can be trusted, so it is quarantined whole.
        detail = f"missing column(s) {', '.join(map(repr, missing))}; found {', '.join(map(repr, batch.columns))}"
        if schema is not None and schema.changes:
            detail = f"{schema.describe()}; {detail}"
        for n, rec in numbered:
            quarantine.append((n, "missing_column", detail, _json(rec)))
        return pd.DataFrame(columns=PARSED_COLUMNS), quarantine, outcomes + [
            _own("columns_present", False, detail, f"columns {needed}", len(numbered), "missing_column")
        ]
    outcomes.append(_own("columns_present", True, f"columns {batch.columns}", f"columns {needed}"))

    rows, parsed, rejects = parse_batch(numbered, source, kpis)  # parse_record's results, a column at a time
    for n, rej in rejects:
        quarantine.append((n, rej.reason, rej.detail, _json(cells[n])))
    parse_rejects = [n for n, _ in rejects]
    outcomes.append(_own(
        "values_parseable", not parse_rejects, f"{len(parse_rejects)} of {len(numbered)} rows unparseable",
        "numbers, periods and measures parse", len(parse_rejects), None, parse_rejects,
    ))

    frame = pd.DataFrame(parsed, index=rows, columns=PARSED_COLUMNS)
    for col in ("value", "numerator", "denominator", "target"):
        frame[col] = frame[col].astype("float64")
    early = []
    # The source's history is looked up only when a row is earlier than its baseline allows (a
    # KPI's floor can only move earlier with the history), so most batches never query it.
    history = history_start if callable(history_start) else (lambda: history_start)
    floors: dict[str, dt.date | None] = {}
    for n, kpi_id, period in zip(frame.index, frame["kpi_id"], frame["period"]):
        if period is None:
            continue
        floor = period_floor(kpis.get(kpi_id), None)
        if floor is not None and period >= floor:
            continue
        if kpi_id not in floors:
            floors[kpi_id] = period_floor(kpis.get(kpi_id), history())
        floor = floors[kpi_id]
        if floor is not None and period < floor:
            early.append(n)
            quarantine.append((n, "period_out_of_range", f"period {period.isoformat()} is more than "
                               f"{PLAUSIBLE_HISTORY_YEARS} years before the KPI's baseline and the source's "
                               f"history (earliest plausible {floor.isoformat()})", _json(cells[n])))
    if early:
        frame = frame.drop(index=early)
    # The KPI of each row where it is known: a shared source's rows count for their KPI's department.
    row_kpis = {n: rej.kpi_id for n, rej in rejects if rej.kpi_id}
    row_kpis.update((n, k) for n, k in zip(frame.index, frame["kpi_id"]) if k in kpis)
    batch.row_kpis = row_kpis
    if len(frame):
        # Each row's value rules come from its KPI (allow_negative, min, max, percent 0-100),
        # as columns the suite's pair expectations compare the measures with.
        bounds = {k: value_bounds(kpi, catalog.defaults) for k, kpi in kpis.items()}
        checked = frame.assign(**{col: frame["kpi_id"].map({k: b[i] for k, b in bounds.items()}).astype("float64")
                                  for i, col in enumerate(("sign_floor", "value_min", "value_max"))})
        gx_outcomes = validate_frame(checked, {"known_kpi_ids": sorted(kpis), "as_of": as_of},
                                     source_suite_name(source["id"]), gx_results)
        rejected: dict[int, list[ExpectationOutcome]] = {}
        for o in gx_outcomes:
            for n in o.unexpected_rows:
                if o.reason:
                    rejected.setdefault(n, []).append(o)
        for n, hits in sorted(rejected.items()):
            first = hits[0]  # the first failed expectation in suite order names the reason
            detail = "; ".join(f"{h.check_name}" for h in hits)
            if first.reason in ("negative_value", "out_of_range"):
                detail += _range_note(frame.loc[n], bounds.get(frame.at[n, "kpi_id"]))
            quarantine.append((n, first.reason, f"failed {detail}", _json(cells[n])))
        frame = frame.drop(index=list(rejected))
        outcomes += gx_outcomes

    rows_in = len(numbered)
    limits = rejection_limits(source, catalog)
    departments = [source["department"]] if source.get("department") else catalog.source_departments(source["id"])
    if len(departments) > 1:
        # A shared source: each department's rejection rate on its own KPIs' rows (rows whose
        # KPI cannot be told -- no or an unknown KPI id -- count for every department it feeds).
        dept_of = {n: kpis[k]["department"] for n, k in row_kpis.items()}
        for dept in departments:
            mine = sum(1 for n, _ in numbered if dept_of.get(n, dept) == dept)
            bad = sum(1 for n, *_ in quarantine if dept_of.get(n, dept) == dept)
            outcomes.append(rejection_outcome(bad, mine, limits, dept))
    else:
        outcomes.append(rejection_outcome(len(quarantine), rows_in, limits))
    return frame, quarantine, outcomes


def _range_note(row, bounds) -> str:
    """Why a row broke its KPI's value rules, for the quarantine detail."""
    if not bounds:
        return ""
    floor, low, high = bounds
    low = floor if low is None else low
    if low is not None and high is not None:
        rule = f"between {low:g} and {high:g}"
    elif low is not None:
        rule = "not negative" if low == 0 else f"at least {low:g}"
    elif high is not None:
        rule = f"at most {high:g}"
    else:
        return ""
    values = ", ".join(f"{c}={row[c]:g}" for c in ("value", "numerator", "denominator") if pd.notna(row[c]))
    return f" ({values}; the KPI's values must be {rule})"


# Reasons that refuse a batch whole (every row quarantined with one detail).
WHOLE_BATCH_REASONS = {"schema_change", "missing_column", "ambiguous_column", "unknown_layout", "period_not_found"}

OBSERVATION_COLUMNS = ("batch_id", "source_id", "department_id", "kpi_id", "org_id", "period", "value", "numerator",
                       "denominator", "source_file", "source_sha256", "source_query", "row_number", "loaded_at",
                       "target")


INGEST_DDL = """
alter table raw.batches add column if not exists mapping_sha256 varchar;
alter table raw.batches add column if not exists sheet varchar;
alter table raw.batches add column if not exists layout varchar;
alter table raw.batches add column if not exists period_origin varchar;
alter table raw.batches add column if not exists rows_excluded integer;
alter table raw.batches add column if not exists row_map varchar;
create table if not exists raw.excluded_rows (
    batch_id varchar not null,
    source_id varchar not null,
    department_id varchar not null,
    rule varchar not null,
    rows integer not null,
    row_numbers varchar,
    loaded_at timestamp not null
);
"""


def ensure_ingest(con) -> None:
    """What reading department returns adds to the landing tables: each batch's mapping
    identity, sheet, layout, period origin and excluded rows (counted per rule)."""
    ensure_landing(con)
    for statement in INGEST_DDL.split(";"):
        if statement.strip():
            con.execute(statement)
    allow_shared_sources(con)  # raw.excluded_rows is created above, after ensure_landing's pass


def _seen_sha256(con, source_id: str, mapping: str | None = None) -> set[str]:
    """The files (or results) read before under this mapping of the source. A batch landed
    before mappings were recorded counts as read under any mapping."""
    rows = con.execute("select source_sha256, mapping_sha256 from raw.batches where source_id = ?", [source_id]).fetchall()
    return {sha for sha, m in rows if mapping is None or m is None or m == mapping}


def _previous_schema(con, source_id: str) -> tuple[str, list] | None:
    """(batch id, schema) of the source's latest batch whose schema was accepted."""
    row = con.execute(
        """select batch_id, columns_json from quality.batch_schemas
           where source_id = ? and verdict in ('baseline', 'matches')
           order by recorded_at desc, batch_id desc limit 1""", [source_id]).fetchone()
    return (row[0], [tuple(c) for c in json.loads(row[1])]) if row else None


def _land(con, batch: RawBatch, source: dict, frame: pd.DataFrame, quarantine, outcomes, run_id: str, now: dt.datetime,
          schema: SchemaVerdict | None = None, gx_results: list | None = None,
          kpi_departments: dict[str, str] | None = None) -> BatchReport:
    """`kpi_departments` (KPI id -> department): a landed row's department is its KPI's; a
    quarantined row's too where its KPI is known, else the source's (none for a shared source)."""
    mapping = mapping_sha256(source)
    batch_id = f"{source['id']}:{batch.sha256[:16]}"
    if con.execute("select count(*) from raw.batches where batch_id = ?", [batch_id]).fetchone()[0]:
        batch_id += f":{mapping[:8]}"  # the same file read again under a changed mapping
    dept = source.get("department")  # None: a shared source (its rows carry their KPI's department)
    kpi_departments = kpi_departments or {}
    row_depts = {n: kpi_departments.get(k) for n, k in batch.row_kpis.items()}
    quarantine = [(n, *rest, row_depts.get(n) or dept) for n, *rest in quarantine]
    # An unreadable or empty file is one input unit, quarantined whole (its record has no row
    # number). A wide source's unit of accounting is the cell (one per KPI column and row).
    # Rows a row rule leaves out are counted apart (raw.excluded_rows), not as input rows.
    excluded = sum(len(ns) for ns in batch.excluded.values())
    rows_in = len(batch.cell_rows) if batch.cell_rows else \
        ((len(batch.records) - excluded) or (1 if quarantine else 0))
    obs = frame.reset_index(names="row_number")
    if batch.cell_rows:  # wide source: lineage points at the file row the cell came from
        obs["row_number"] = obs["row_number"].map(batch.cell_rows)
        quarantine = [(batch.cell_rows.get(n, n) if n is not None else None, *rest) for n, *rest in quarantine]
    obs["batch_id"], obs["source_id"] = batch_id, source["id"]
    obs["department_id"] = obs["kpi_id"].map(kpi_departments).fillna(dept) if len(obs) else dept
    obs["source_file"], obs["source_sha256"], obs["source_query"] = batch.source_file, batch.sha256, batch.query
    obs["loaded_at"] = now
    obs["row_number"] = obs["row_number"].astype("int64")
    obs["period"] = pd.to_datetime(obs["period"])
    con.execute("begin")
    try:
        con.execute(
            """insert into raw.batches (batch_id, source_id, department_id, source_file, source_sha256,
                   source_query, rows_in, rows_accepted, rows_quarantined, loaded_at, run_id, watermark,
                   mapping_sha256, sheet, layout, period_origin, rows_excluded, row_map)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [batch_id, source["id"], dept, batch.source_file, batch.sha256, batch.query, rows_in,
             len(frame), len(quarantine), now, run_id, batch.watermark, mapping, batch.sheet, batch.layout,
             batch.period_origin, excluded, row_map(batch.sheet_rows) if batch.sheet_rows else None],
        )
        if batch.excluded:
            con.executemany(
                "insert into raw.excluded_rows values (?, ?, ?, ?, ?, ?, ?)",
                [[batch_id, source["id"], dept, rule, len(ns), _row_list(ns), now] for rule, ns in sorted(batch.excluded.items())])
        if len(obs):
            insert_frame(con, "raw.observations", OBSERVATION_COLUMNS, obs, select=", ".join(
                "cast(period as date)" if c == "period" else c for c in OBSERVATION_COLUMNS))
        if quarantine:
            con.executemany(
                "insert into raw.quarantine values (?, ?, ?, ?, ?, ?, ?, ?)",
                [[batch_id, source["id"], row_dept, n, reason, cap_detail(detail), record, now]
                 for n, reason, detail, record, row_dept in quarantine],
            )
        con.executemany(
            "insert into quality.check_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [[run_id, batch_id, source["id"], o.department_id or dept, o.suite, o.check_name, o.expectation_type, o.column, o.severity,
              o.success, o.observed, o.expected, o.unexpected_count, now] for o in outcomes],
        )
        if schema is not None:
            reasons_seen = {r for _, r, *_ in quarantine}
            # A batch the mapping could not read at all is no reference for the next one.
            verdict = "changed" if "missing_column" in reasons_seen else \
                "refused" if reasons_seen & {"ambiguous_column", "unknown_layout", "period_not_found"} and not len(frame) \
                else schema.verdict
            con.execute(
                """insert into quality.batch_schemas (run_id, batch_id, source_id, columns_json, verdict,
                       compared_with, changes, recorded_at) values (?, ?, ?, ?, ?, ?, ?, ?)""",
                [run_id, batch_id, source["id"], json.dumps(schema.observed), verdict, schema.compared_with,
                 schema.describe() or (f"information: {schema.note()}" if schema.info else None), now])
        for doc in gx_results or []:
            con.execute(
                """insert into quality.gx_validation_results (run_id, batch_id, source_id, suite, success,
                       result_json, validated_at) values (?, ?, ?, ?, ?, ?, ?)""",
                [run_id, batch_id, source["id"], doc.get("suite_name") or "", bool(doc.get("success")),
                 json.dumps(doc, default=str), now])
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    reasons: dict[str, int] = {}
    for _, reason, *_ in quarantine:
        reasons[reason] = reasons.get(reason, 0) + 1
    whole = WHOLE_BATCH_REASONS & set(reasons) and not len(frame)
    problem = next((d for n, _, d, *_ in quarantine if n is None), None) or \
        (quarantine[0][2] if whole else None)
    return BatchReport(batch_id, batch.source_file, batch.sha256, rows_in, len(frame), len(quarantine), reasons, outcomes,
                       schema, problem, {r: len(ns) for r, ns in batch.excluded.items()})


def _row_list(numbers: list[int], limit: int = 50) -> str:
    """Record numbers as ranges ("3-5, 9"), the first `limit` ranges."""
    ranges: list[list[int]] = []
    for n in numbers:
        if ranges and n == ranges[-1][1] + 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    shown = [f"{a}-{b}" if a != b else str(a) for a, b in ranges[:limit]]
    return ", ".join(shown) + (", …" if len(ranges) > limit else "")


# batch_id of the check result recorded when a source cannot be read at all (no batch exists).
SOURCE_ERROR_BATCH = "source-error@"


def describe_failure(exc: BaseException) -> str:
    """What went wrong reading or landing one file or query, in the user's terms."""
    text = str(exc).strip()
    if isinstance(exc, SourceError):
        return text
    if isinstance(exc, csv.Error) and "field larger than field limit" in text:
        return (f"a field is longer than {csv.field_size_limit():,} characters "
                "(an unclosed quote runs to the end of the file?)")
    if isinstance(exc, ValueError) and "integer string conversion" in text:
        return "a number with more than 4,300 digits"
    if isinstance(exc, OverflowError):
        return f"a number too large to be stored ({text.splitlines()[0] if text else 'OverflowError'})"
    if isinstance(exc, FileNotFoundError):
        return "the file was removed before it could be read"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, MemoryError):
        return "not enough memory to read it"
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _record_source_failure(con, source: dict, run_id: str, now: dt.datetime, observed: str) -> None:
    """A failed critical check of this run: the department's publication is blocked with this
    reason (its previous figures stay, stale), and the audit report shows it."""
    con.execute(
        "insert into quality.check_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [run_id, f"{SOURCE_ERROR_BATCH}{run_id}", source["id"], source.get("department"), "kpiwatch", "source_readable",
         "source can be read", None, "critical", False, observed[:2000], "a readable source", 0, now])


def _relative(path, data_dir) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(data_dir).resolve()))
    except (OSError, ValueError):
        return str(path)


def ingest_source(con, catalog: Catalog, source_id: str, data_dir, as_of: dt.date, run_id: str,
                  now: dt.datetime | None = None, environ: dict[str, str] | None = None) -> SourceReport:
    """Land the source's new batches. A failure inside one file or query (unreadable, malformed,
    vanished, duplicated, or anything unforeseen) is contained: it becomes a named outcome for
    that file (a refused batch, or a failed `source_readable` check when nothing can be recorded
    for it), blocks the department's publication for this run, and the source's other files
    still land. Only a failure of the warehouse itself stops the step."""
    source = catalog.sources[source_id]
    if now is None:
        from pipelines.clock import system_now

        now = system_now()
    ensure_ingest(con)
    ensure_quality(con)
    report = SourceReport(source_id)
    mapping = mapping_sha256(source)
    seen = _seen_sha256(con, source_id, mapping)
    read_before = _seen_sha256(con, source_id)
    watermark = con.execute(
        "select max(watermark) from raw.batches where source_id = ? and watermark is not null", [source_id]
    ).fetchone()[0]
    previous = _previous_schema(con, source_id)
    kpi_departments = {k: catalog.kpis[k]["department"] for k in catalog.kpis_of_source(source_id)}
    known: list = []

    def history_start() -> dt.date | None:
        """The source's first landed period (queried once, when a row needs it)."""
        if not known:
            first = con.execute("select min(period) from raw.observations where source_id = ?", [source_id]).fetchone()[0]
            known.append(first.date() if isinstance(first, dt.datetime) else first)
        return known[0]

    # A committed contract is an explicit promise about every column; otherwise (and for a
    # source that declares its layouts) only the columns the mapping reads can refuse a batch.
    whole_contract = contract_columns(source_suite_name(source_id)) is not None and not source.get("layouts")
    seq = 0

    def land_one(batch: RawBatch) -> None:
        nonlocal previous, seq
        # Batches of one run are stamped in the order they arrive (files by name, pages in order),
        # a microsecond apart: when two files of one drop restate the same period, the later one
        # is the latest revision (docs/sources.md), not whichever batch id sorts last.
        loaded_at = now + dt.timedelta(microseconds=seq)
        seq += 1
        try:
            prepared: Prepared | Refused | None = None
            if not batch.error and batch.records:
                try:
                    prepared = prepare_batch(batch, source)
                except Refused as exc:
                    prepared = exc
            mapped = None if whole_contract or not isinstance(prepared, Prepared) else prepared.mapped
            markers = source.get("missing_markers", DEFAULT_MISSING_MARKERS)
            schema = check_schema(batch, source_id, previous, mapped, markers) \
                if not batch.error and batch.records else None
            gx_results: list = []
            frame, quarantine, outcomes = process_batch(batch, source, catalog, as_of, schema, gx_results, prepared,
                                                        history_start)
            landed = _land(con, batch, source, frame, quarantine, outcomes, run_id, loaded_at, schema, gx_results,
                           kpi_departments)
        except Exception as exc:  # contained: the batch is refused whole, with the cause named
            if is_warehouse_failure(exc):
                raise
            where = batch.source_file or "query"
            cause = one_line(f"{where}: could not be processed: {describe_failure(exc)}")
            _record_source_failure(con, source, run_id, loaded_at, cause)
            refused = RawBatch(batch.source_id, batch.source_file, batch.sha256, batch.query, [], error=cause)
            schema = None
            try:
                frame, quarantine, outcomes = process_batch(refused, source, catalog, as_of)
                landed = _land(con, refused, source, frame, quarantine, outcomes, run_id, loaded_at,
                               kpi_departments=kpi_departments)
            except Exception as exc2:
                if is_warehouse_failure(exc2):
                    raise
                report.failures.append(cause)  # named in the run's checks; read again next run
                return
        landed.reread = batch.sha256 in read_before
        report.batches.append(landed)
        seen.add(batch.sha256)
        refused_whole = {"missing_column", "ambiguous_column", "unknown_layout", "period_not_found"} & set(landed.reasons)
        if schema is not None and landed.schema.verdict in ("baseline", "matches") and not refused_whole:
            previous = (landed.batch_id, schema.observed)

    if source["kind"] not in FILE_KINDS:
        batches = read_batches(source, data_dir, os.environ if environ is None else environ, seen, watermark)
        if source["kind"] != "sql":
            # A page that fails is reported before anything lands.
            batches = _read_all(batches, source_id, report)
        # A sql result is read a batch at a time (batch_rows), each landed before the next is
        # read; a query failing half-way keeps the batches landed before it (the next run skips
        # them and lands the rest).
        while not report.error:
            try:
                batch = next(batches, None)
            except Exception as exc:
                if is_warehouse_failure(exc):
                    raise
                report.error = _source_error(exc, source_id)
                break
            if batch is None:
                break
            land_one(batch)
            del batch  # the next batch is read with only its own rows in memory
        if report.error:
            _record_source_failure(con, source, run_id, now, report.error)
        return report

    try:
        paths = files_in_order(source, data_dir)  # by the period in their names, else by name
    except Exception as exc:  # e.g. a drop folder that cannot be listed
        report.error = one_line(f"source {source_id}: drop folder could not be listed: {describe_failure(exc)}")
        _record_source_failure(con, source, run_id, now, report.error)
        return report
    for link, target in _symlinks(source, data_dir):
        if target is None:
            # Never followed out of the data directory (nor to nothing): refused by name, like
            # a file that cannot be read, and looked at again next run.
            cause = one_line(f"{link}: refused: a symbolic link {_link_problem(Path(data_dir) / link, data_dir)}; not followed")
            report.failures.append(cause)
            _record_source_failure(con, source, run_id, now, cause)
        else:
            report.notes.append(one_line(f"{link}: a symbolic link to {target}, followed (inside the data directory)"))
    landed_here: dict[str, tuple[str, int]] = {}  # sha256 -> (file, size) landed in this run
    for path in paths:
        rel = _relative(path, data_dir)
        try:
            if source["kind"] == "excel" and _sha256_file(path) in seen:
                batches = []  # landed before: the reader would skip it too
            else:
                if source["kind"] == "excel":
                    check_workbook(path, source)  # bounded before the reader holds any of it
                batches = list(read_file_batches(source, data_dir, seen, paths=[path]))
        except Exception as exc:  # the reader failed on this file: refuse it by name
            cause = one_line(f"{rel}: {describe_failure(exc)}")
            try:
                sha = _sha256_file(path)
            except OSError:
                sha = None
            if sha is None or isinstance(exc, OSError):
                # Nothing can be recorded for the file (it vanished, or cannot be opened): named
                # in this run's checks, and read again by the next run.
                report.failures.append(cause)
                _record_source_failure(con, source, run_id, now, cause)
                continue
            if sha in seen:
                continue
            batches = [RawBatch(source_id, rel, sha, None, [], error=cause)]
            _record_source_failure(con, source, run_id, now, cause)
        if not batches:
            _note_duplicate(path, rel, landed_here, report)
        for batch in batches:
            land_one(batch)
            try:
                landed_here[batch.sha256] = (batch.source_file or rel, path.stat().st_size)
            except OSError:
                pass
    return report


def _source_error(exc: Exception, source_id: str) -> str:
    if isinstance(exc, SourceError):
        return one_line(str(exc), 2000)
    # an unforeseen failure of the driver or the response
    return one_line(f"source {source_id}: {describe_failure(exc)}", 2000)


def _read_all(batches, source_id: str, report: SourceReport):
    """Every batch of the source read before any lands (an iterator over them); a failure is
    the source's error."""
    try:
        return iter(list(batches))
    except Exception as exc:
        if is_warehouse_failure(exc):
            raise
        report.error = _source_error(exc, source_id)
        return iter(())


def _symlinks(source: dict, data_dir) -> list[tuple[str, str | None]]:
    """The symbolic links among the source's files: (link, its target relative to the data
    directory, or None when it leads outside it or to nothing). Links inside are read like
    files (readers.source_files); these are named, so that none is skipped without a word."""
    base = Path(data_dir).resolve()
    out = []
    for p in sorted(base.glob(source["path"])):
        if not p.is_symlink():
            continue
        try:
            target = p.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling, or a loop
            target = None
        inside = target is not None and base in target.parents and target.is_file()
        out.append((str(p.relative_to(base)), str(target.relative_to(base)) if inside else None))
    return out


def _link_problem(link: Path, data_dir) -> str:
    try:
        target = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return "to nothing (its target does not exist)"
    if not target.is_file():
        return "to something that is not a file"
    return "leading outside the data directory"


def _note_duplicate(path, rel: str, landed_here: dict[str, tuple[str, int]], report: SourceReport) -> None:
    """A file skipped because its content was landed before. When it is identical to a file of
    this run's drop (two copies of one return), say so: it is a named no-op, not a silent one."""
    try:
        size = path.stat().st_size
        if not any(size == s for _, s in landed_here.values()):
            return
        sha = _sha256_file(path)
    except OSError:
        return
    if sha in landed_here:
        report.notes.append(one_line(f"{rel}: identical to {landed_here[sha][0]} (same sha256) landed in this run; "
                                     "nothing more landed", None))
