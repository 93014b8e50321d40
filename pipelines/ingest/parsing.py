"""Turn raw records into typed observations through a source's column mapping, or a named
reason why not. Nothing is guessed silently: a marker like "-" is a missing value with a reason,
never a zero."""
from __future__ import annotations

import datetime as dt
import math
import re

from kpimodel import periods

_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")

DEFAULT_MISSING_MARKERS = ("-", "–", "—", "N/A", "n/a", "NA", "..", "...", "*", ":", "x", "X", "NULL", "null")
MEASURES = ("value", "numerator", "denominator", "target")


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        self.kpi_id: str | None = None  # the row's KPI, when it was known before the rejection
        super().__init__(f"{reason}: {detail}")


def kpi_of(raw: str | None, kpis: dict[str, dict]) -> str | None:
    """The KPI id a kpi_id cell names: the id itself, or a KPI's `code` as the organisation
    writes it (`CS01`, matched exactly); anything else is returned as is (unknown_kpi_id)."""
    if raw is None or raw in kpis:
        return raw
    for kpi_id, kpi in kpis.items():
        if kpi.get("code") == raw:
            return kpi_id
    return raw


def field_columns(spec) -> list[str]:
    """The source columns a mapped field reads."""
    if spec is None:
        return []
    if isinstance(spec, str):
        return [spec]
    if "column" in spec:
        return [spec["column"]]
    if "constant" in spec:
        return []
    if "subtract" in spec:
        return list(spec["subtract"])
    if "sum" in spec:
        return list(spec["sum"])
    if "join" in spec:
        return list(spec["join"])
    return [spec[k] for k in ("year", "month", "quarter") if k in spec]


WIDE_KPI, WIDE_VALUE = "__kpi_id__", "__value__"


def required_columns(source: dict) -> list[str]:
    cols: list[str] = []
    for name, spec in source["columns"].items():
        cols += [c for c in field_columns(spec) if c not in cols]
    for c in (source.get("wide") or {}).get("kpi_columns", {}):
        if c not in cols:
            cols.append(c)
    return cols


def expand_wide(records: list[dict], source: dict):
    """Wide-to-long: a row with one column per KPI becomes one record per KPI cell.
    Returns the numbered cells, each cell's file row number, and the mapping to apply."""
    wide = source["wide"]
    kpi_columns = wide["kpi_columns"]
    numbered, cell_rows = [], {}
    for row, rec in enumerate(records, start=1):
        base = {k: v for k, v in rec.items() if k not in kpi_columns}
        for col, kpi_id in kpi_columns.items():
            numbered.append((len(numbered) + 1, {**base, WIDE_KPI: kpi_id, WIDE_VALUE: rec.get(col), "__column__": col}))
            cell_rows[len(numbered)] = row
    value = {"column": WIDE_VALUE, **({"unit": wide["unit"]} if "unit" in wide else {})}
    effective = {**source, "columns": {**source["columns"], "kpi_id": WIDE_KPI, "value": value}}
    return numbered, cell_rows, effective


def _is_marker(value: object, markers) -> bool:
    return isinstance(value, str) and value.strip() in markers


def parse_number(value: object, field: str, unit: str | None = None, markers=DEFAULT_MISSING_MARKERS) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Rejected("unparseable_number", f"{field}={value!r}")
    if _is_marker(value, markers):
        raise Rejected("missing_value", f"{field}={str(value).strip()!r} marks a missing value")
    if isinstance(value, (int, float)):
        try:
            number = float(value)
        except (OverflowError, ValueError):  # an integer cell too large for a float (400 digits)
            big = abs(int(value))
            digits = f"{len(str(big)):,}" if big.bit_length() <= 14_000 else "over 4,000"
            raise Rejected("unparseable_number", f"{field}: an integer of {digits} digits, "
                           "too large for a number") from None
    else:
        text = str(value).strip().replace("\u00a0", "").replace(" ", "")
        if not text:
            return None
        percent = text.endswith("%")
        if percent:
            text = text[:-1]
        if _THOUSANDS.match(text):
            text = text.replace(",", "")
        if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
            raise Rejected("unparseable_number", f"{field}={str(value)[:60]!r}")
        number = float(text)
        if percent and unit == "fraction_to_percent":
            unit = "percent"  # "95%" is already a percentage
    if math.isnan(number) or math.isinf(number):
        raise Rejected("unparseable_number", f"{field}={str(value)[:60]!r} is not a finite number")
    if unit == "fraction_to_percent":
        number *= 100.0
    return number


# Before this no KPI period is plausible: a year like 0001 or 1066 is a typo or a broken date
# cell (Excel's day 0 is 1899-12-30), not history to plot.
MIN_PERIOD_YEAR = 1900


def _first_of(d: dt.date, frequency: str | None, fiscal_start_month: int = periods.DEFAULT_FISCAL_START_MONTH) -> dt.date:
    if d.year < MIN_PERIOD_YEAR:
        raise Rejected("period_out_of_range", f"period {d.isoformat()} is before {MIN_PERIOD_YEAR}")
    try:
        return periods.aligned(d, frequency, fiscal_start_month)
    except periods.PeriodError as exc:
        raise Rejected(exc.reason, exc.detail) from None


def parse_period(value: object, frequency: str | None, fmt: str | None = None,
                 fiscal_start_month: int = periods.DEFAULT_FISCAL_START_MONTH) -> dt.date | None:
    """A period's first day: '2026-10', '2026-10-01', 'May 2019', '2026-Q3', '2019/20 Q1',
    '2026-W14', '2026', '2019/20' (the period model, kpimodel/periods.py), a date
    cell, or text in a configured strptime format."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return _first_of(value.date(), frequency, fiscal_start_month)
    if isinstance(value, dt.date):
        return _first_of(value, frequency, fiscal_start_month)
    text = str(value).strip()
    if not text:
        return None
    if fmt:
        try:
            d = dt.datetime.strptime(text, fmt).date()
        except ValueError:
            raise Rejected("unparseable_period", f"period={text[:40]!r}") from None
        return _first_of(d, frequency, fiscal_start_month)
    try:
        d = periods.parse(text, frequency, fiscal_start_month)
    except periods.PeriodError as exc:
        raise Rejected(exc.reason, exc.detail) from None
    return _first_of(d, frequency, fiscal_start_month)


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def year_start(kpi: dict | None) -> int:
    """The month a KPI's fiscal periods (`2019/20 Q1`, `2019/20`) start: its own
    fiscal_year_start_month, else April (as the period model reads them)."""
    return int((kpi or {}).get("fiscal_year_start_month", periods.DEFAULT_FISCAL_START_MONTH))


def _evaluate(name: str, spec, record: dict, markers, frequency: str | None,
              start: int = periods.DEFAULT_FISCAL_START_MONTH):
    """One mapped field of a record (a period in the KPI's frequency and fiscal year start)."""
    if spec is None:
        return None
    if isinstance(spec, str):
        spec = {"column": spec}
    if "constant" in spec:
        raw = spec["constant"]
        return parse_period(raw, frequency, None, start) if name == "period" else raw
    if name == "period":
        if "year" in spec:
            y = parse_number(record.get(spec["year"]), "period year", markers=markers)
            if y is None:
                return None
            if "month" in spec:
                mo = parse_number(record.get(spec["month"]), "period month", markers=markers)
                text = f"{int(y):04d}-{int(mo or 0):02d}" if mo is not None and mo.is_integer() and y.is_integer() else None
            else:
                q = parse_number(record.get(spec["quarter"]), "period quarter", markers=markers)
                text = f"{int(y):04d}-Q{int(q)}" if q is not None and q.is_integer() and y.is_integer() else None
            if text is None:
                raise Rejected("unparseable_period", f"year/month/quarter of {spec}")
            return parse_period(text, frequency, None, start)
        return parse_period(record.get(spec["column"]), frequency, spec.get("format"), start)
    if "join" in spec:
        parts = [_text(record.get(c)) for c in spec["join"]]
        return None if any(p is None for p in parts) else "|".join(parts)
    if name in ("kpi_id", "org_id"):
        raw = _text(record.get(spec["column"]))
        if raw is not None and "map" in spec:
            mapped = spec["map"].get(raw)
            if mapped is None and name == "kpi_id":
                raise Rejected("unknown_kpi_id", f"{spec['column']}={raw[:60]!r} is not in the source's KPI map")
            raw = str(mapped) if mapped is not None else raw
        return raw
    # A measure.
    if "subtract" in spec or "sum" in spec:
        cols = spec.get("subtract") or spec["sum"]
        parts = [parse_number(record.get(c), c, markers=markers) for c in cols]
        if any(p is None for p in parts):
            return None
        return parts[0] - parts[1] if "subtract" in spec else sum(parts)
    try:
        return parse_number(record.get(spec["column"]), name, spec.get("unit"), markers)
    except Rejected as rej:
        if name == "target" and rej.reason == "missing_value":
            return None  # a marked gap in the target column: no target this period; the value stands
        raise


def no_target_values(source: dict) -> frozenset[float]:
    """Target values that mean "no target was set this period" (a source's `no_target_values`,
    e.g. MTA's 0); none by default: a target of 0 is a target (0 days behind schedule)."""
    return frozenset(float(v) for v in source.get("no_target_values", ()))


def parse_record(record: dict, source: dict, kpis: dict[str, dict]) -> dict:
    """Map a raw record through the source's column mapping; raise Rejected on a bad value."""
    columns = source["columns"]
    markers = tuple(source.get("missing_markers", DEFAULT_MISSING_MARKERS))
    kpi_id = kpi_of(_evaluate("kpi_id", columns.get("kpi_id"), record, markers, None), kpis)
    kpi = kpis.get(kpi_id) if kpi_id else None
    try:
        org = _evaluate("org_id", columns.get("org_id"), record, markers, None)
        out = {
            "kpi_id": kpi_id,
            "org_id": str(org) if org is not None else "ALL",
            "period": _evaluate("period", columns["period"], record, markers, kpi["frequency"] if kpi else None,
                                year_start(kpi)),
        }
        for part in MEASURES:
            out[part] = _evaluate(part, columns.get(part), record, markers, None)
        if out["target"] is not None and out["target"] in no_target_values(source):
            out["target"] = None  # the publisher's "no target set" (MTA: 0)
        if kpi is not None:
            if kpi["aggregation"] == "ratio":
                if out["numerator"] is None or out["denominator"] is None:
                    raise Rejected("missing_value", "a ratio KPI needs numerator and denominator")
            elif out["value"] is None:
                raise Rejected("missing_value", "value is empty")
    except Rejected as rej:
        rej.kpi_id = kpi_id if kpi is not None else None
        raise
    return out
