"""Parse a batch a column at a time, with exactly `parse_record`'s results.

`parse_record` maps one record at a time (about 40 µs a row: 7 fields, each through the
mapping rules). A batch whose mapping is plain columns (no value maps, derived fields or
period formats) is parsed here instead: identifiers and periods repeat, so each distinct
value is parsed once (by the same functions); measures take a short path for the forms that
need no interpretation (a number, or a plain decimal text). Any row this path is not sure
about (a marker, a bad or unusual cell, a missing measure) is handed to `parse_record`, so
its result, or its quarantine reason and detail, is the row-at-a-time one.
"""
from __future__ import annotations

import math
import re

from pipelines.ingest.parsing import (MEASURES, Rejected, _text, kpi_of, no_target_values, parse_period, parse_record,
                                      year_start)

_SIMPLE_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
_FIELDS = ("kpi_id", "org_id", "period", *MEASURES)
PARSED = ["kpi_id", "org_id", "period", "value", "numerator", "denominator", "target"]  # parse_record's keys


def _plain_column(spec) -> tuple[str, str | None] | None:
    """(column, unit) for a field mapped to a column as is; None for any other rule."""
    if isinstance(spec, str):
        return spec, None
    if isinstance(spec, dict) and set(spec) <= {"column", "unit"} and "column" in spec:
        return spec["column"], spec.get("unit")
    return None


def _numbers(values: list, unit: str | None) -> tuple[list, set[int]]:
    """Floats (or None for an empty cell) and the positions left to `parse_number`."""
    out, unsure = [None] * len(values), set()
    scale = 100.0 if unit == "fraction_to_percent" else 1.0
    match = _SIMPLE_NUMBER.fullmatch
    for i, v in enumerate(values):
        t = type(v)
        if v is None or (t is str and v == ""):
            continue
        if t is str:
            if not match(v):
                unsure.add(i)
                continue
        elif t is not float and t is not int:  # bool, Decimal, date, ...: the careful path
            unsure.add(i)
            continue
        try:
            x = float(v)
        except OverflowError:  # an integer too large for a float: parse_number names it
            unsure.add(i)
            continue
        if math.isnan(x) or math.isinf(x):
            unsure.add(i)
            continue
        out[i] = x * scale
    return out, unsure


def parse_batch(numbered: list[tuple[int, dict]], source: dict, kpis: dict[str, dict]):
    """(row numbers, {field: values} of the parsed rows, [(row number, Rejected)]), in row order:
    columns, ready for a DataFrame, rather than a dict per row."""
    columns = source["columns"]
    plain = {f: _plain_column(columns[f]) if columns.get(f) is not None else (None, None) for f in _FIELDS}
    if any(p is None for p in plain.values()) or "missing_markers" in source:
        return _row_at_a_time(numbered, source, kpis)
    records = [rec for _, rec in numbered]
    n = len(records)
    unsure: set[int] = set()

    def column(field):
        col = plain[field][0]
        return [None] * n if col is None else [rec.get(col) for rec in records]

    def cached(values, fn):
        memo, out = {}, []
        for v in values:
            key = (type(v), v)
            if key not in memo:
                memo[key] = fn(v)
            out.append(memo[key])
        return out

    kpi_ids = cached(column("kpi_id"), lambda v: kpi_of(_text(v), kpis))  # an id, or a KPI's code
    orgs = cached(column("org_id"), _text)
    freqs = [(kpis[k]["frequency"], year_start(kpis[k])) if k in kpis else (None, year_start(None)) for k in kpi_ids]
    memo: dict = {}
    periods = []
    for i, (v, (f, start)) in enumerate(zip(column("period"), freqs)):
        key = (type(v), v, f, start)
        if key not in memo:
            try:
                memo[key] = parse_period(v, f, None, start)
            except Rejected:
                memo[key] = Rejected
        p = memo[key]
        if p is Rejected:
            unsure.add(i)
            p = None
        periods.append(p)
    measures = {}
    for m in MEASURES:
        measures[m], bad = _numbers(column(m), plain[m][1])
        unsure |= bad
    ratio = {k for k, kpi in kpis.items() if kpi["aggregation"] == "ratio"}
    value, num, den = measures["value"], measures["numerator"], measures["denominator"]
    for i, k in enumerate(kpi_ids):
        if k in kpis and ((k in ratio and (num[i] is None or den[i] is None)) or (k not in ratio and value[i] is None)):
            unsure.add(i)  # parse_record names the missing value
    rows, rejected = [], []
    out = {c: [] for c in PARSED}
    none_values = no_target_values(source)
    target = [None if t is not None and t in none_values else t for t in measures["target"]]
    for i, (row, rec) in enumerate(numbered):
        if i in unsure:
            _parse_one(row, rec, source, kpis, rows, out, rejected)
            continue
        rows.append(row)
        out["kpi_id"].append(kpi_ids[i])
        out["org_id"].append(str(orgs[i]) if orgs[i] is not None else "ALL")
        out["period"].append(periods[i])
        out["value"].append(value[i])
        out["numerator"].append(num[i])
        out["denominator"].append(den[i])
        out["target"].append(target[i])
    return rows, out, rejected


def _parse_one(row, rec, source, kpis, rows, out, rejected) -> None:
    """The general path for one record: parse_record's result appended to the columns, or its
    rejection to `rejected`."""
    try:
        parsed = parse_record(rec, source, kpis)
    except Rejected as rej:
        rejected.append((row, rej))
        return
    rows.append(row)
    for c in PARSED:
        out[c].append(parsed[c])


def _row_at_a_time(numbered, source, kpis):
    rows, out, rejected = [], {c: [] for c in PARSED}, []
    for row, rec in numbered:
        _parse_one(row, rec, source, kpis, rows, out, rejected)
    return rows, out, rejected
