"""Turn raw records into typed observations, or a named reason why not."""
from __future__ import annotations

import datetime as dt
import math
import re

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+(\.\d+)?$")


class Rejected(ValueError):
    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def parse_number(value: object, field: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise Rejected("unparseable_number", f"{field}={value!r}")
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        text = str(value).strip()
        if not text:
            return None
        if _THOUSANDS.match(text):
            text = text.replace(",", "")
        try:
            number = float(text)
        except ValueError:
            raise Rejected("unparseable_number", f"{field}={str(value)[:60]!r}") from None
    if math.isnan(number) or math.isinf(number):
        raise Rejected("unparseable_number", f"{field}={str(value)[:60]!r} is not a finite number")
    return number


def parse_period(value: object, frequency: str | None) -> dt.date | None:
    """A period's first day: '2026-10', '2026-10-01', '2026-Q3', or a date cell."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        d = value.date()
    elif isinstance(value, dt.date):
        d = value
    else:
        text = str(value).strip()
        if not text:
            return None
        try:
            if m := _MONTH.match(text):
                d = dt.date(int(m[1]), int(m[2]), 1)
            elif m := _DAY.match(text):
                d = dt.date(int(m[1]), int(m[2]), int(m[3]))
            elif m := _QUARTER.match(text):
                d = dt.date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
            else:
                raise ValueError
        except ValueError:
            raise Rejected("unparseable_period", f"period={text[:40]!r}") from None
    if d.day != 1:
        raise Rejected("period_not_aligned", f"period {d.isoformat()} is not the first day of a month")
    if frequency == "quarterly" and d.month not in (1, 4, 7, 10):
        raise Rejected("period_not_aligned", f"period {d.isoformat()} does not start a quarter")
    return d


def parse_record(record: dict, columns: dict[str, str], kpis: dict[str, dict]) -> dict:
    """Map a raw record through the source's column mapping; raise Rejected on a bad value."""
    kpi_raw = record.get(columns["kpi_id"])
    kpi_id = str(kpi_raw).strip() if kpi_raw is not None and str(kpi_raw).strip() else None
    kpi = kpis.get(kpi_id) if kpi_id else None
    org_raw = record.get(columns["org_id"]) if "org_id" in columns else None
    org_id = str(org_raw).strip() if org_raw is not None and str(org_raw).strip() else "ALL"
    out = {
        "kpi_id": kpi_id,
        "org_id": org_id,
        "period": parse_period(record.get(columns["period"]), kpi["frequency"] if kpi else None),
        "value": None,
        "numerator": None,
        "denominator": None,
    }
    for part in ("value", "numerator", "denominator"):
        if part in columns:
            out[part] = parse_number(record.get(columns[part]), part)
    if kpi is not None:
        if kpi["aggregation"] == "ratio":
            if out["numerator"] is None or out["denominator"] is None:
                raise Rejected("missing_value", "a ratio KPI needs numerator and denominator")
        elif out["value"] is None:
            raise Rejected("missing_value", "value is empty")
    return out
