"""Deterministic demo data for the demo catalog (`catalog/`).

Three departments, three source kinds: the health service sends monthly CSV files, the
employment service an Excel workbook, the transport authority a table in a SQLite database.
The series follow each KPI's trajectory (from the catalog) plus a planted story:

- ae_four_hour stays ahead of trajectory (green); claimant_count slips to amber in the latest
  month; rtt_18_weeks falls far behind (red);
- cancer_62_day misses its June 2026 milestone; bus_punctuality is forecast to miss its
  March 2027 milestone;
- the transport authority's latest submissions (Sep and Oct 2026) are missing: overdue;
- the health service's October file has bad rows: a negative count, an unknown KPI id, a
  duplicated key and an unparseable number;
- job_placements jumps suddenly in the latest month.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import random
import re
import sqlite3
import zipfile
from pathlib import Path

from pipelines.catalog.loader import Catalog, load_catalog
from pipelines.config import DEFAULT_CATALOG

FIRST_PERIOD = dt.date(2023, 10, 1)
LAST_PERIOD = dt.date(2026, 10, 1)
TRANSPORT_LAST_PERIOD = dt.date(2026, 8, 1)  # overdue department: Sep and Oct never arrive
PROVIDERS = ["RH1", "RH2", "RH3", "RH4"]
FIXED_TIME = (2026, 11, 1, 0, 0, 0)


def months(first: dt.date, last: dt.date) -> list[dt.date]:
    out, d = [], first
    while d <= last:
        out.append(d)
        d = dt.date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return out


def period_end(period: dt.date, frequency: str) -> dt.date:
    step = 3 if frequency == "quarterly" else 1
    m = period.month - 1 + step
    return dt.date(period.year + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)


def expected_value(kpi: dict, on: dt.date) -> float:
    """The catalog trajectory at a date (linear or step between anchors); see docs/kpi-model.md."""
    d = dt.date.fromisoformat
    anchors = [(d(kpi["baseline"]["date"]), float(kpi["baseline"]["value"]))]
    anchors += sorted((d(t["due"]), float(t["value"])) for t in kpi["targets"])
    if on >= anchors[-1][0]:
        return anchors[-1][1]
    for (a_date, a_val), (b_date, b_val) in zip(anchors, anchors[1:]):
        if a_date <= on <= b_date:
            if kpi.get("trajectory") == "step":
                return b_val if on == b_date else a_val
            return a_val + (b_val - a_val) * (on - a_date).days / (b_date - a_date).days
    return anchors[0][1]


# How far ahead of (+) or behind (-) the trajectory each KPI runs, in units of its tolerance,
# as a function of the month index i (0 = first month) and n (number of months).
def _story_offset(kpi_id: str, i: int, n: int) -> float:
    last = n - 1
    if kpi_id == "claimant_count":  # on track, then slips gradually: amber in the latest month
        return {last - 3: 0.3, last - 2: 0.15, last - 1: 0.05, last: -0.3}.get(i, 0.5)
    if kpi_id == "rtt_18_weeks":  # drifts far behind: red
        return -3.0 * i / last
    return 0.4  # everyone else a little ahead: green


def _series(kpi: dict, periods: list[dt.date], rng: random.Random) -> list[float]:
    sign = 1 if kpi["direction"] == "higher_is_better" else -1
    tol = float(kpi["tolerance"])
    out = []
    for i, p in enumerate(periods):
        exp = expected_value(kpi, period_end(p, kpi["frequency"]))
        noise = rng.uniform(-0.15, 0.15) * tol if i < len(periods) - 2 else 0.0
        out.append(exp + sign * (_story_offset(kpi["id"], i, len(periods)) * tol + noise))
    # Explicit paths for the milestone stories.
    if kpi["id"] == "cancer_62_day":  # creeps up but never reaches 75% by June 2026: missed
        out = [68.0 + 5.5 * i / (len(periods) - 1) + rng.uniform(-0.2, 0.2) for i in range(len(periods))]
    if kpi["id"] == "bus_punctuality":  # rising too slowly to reach 88% by March 2027: at risk
        out = [82.0 + 2.5 * i / (len(periods) - 1) + rng.uniform(-0.3, 0.3) for i in range(len(periods))]
    if kpi["id"] == "job_placements":  # sudden jump in the latest month
        out[-1] = out[-2] * 2.6
    if kpi["id"] == "step_free_stations":  # stations open one at a time, ahead of the step target
        out = [float(round(40 + 9.4 * i / (len(periods) - 1))) for i in range(len(periods))]
    return out


def _periods(kpi: dict, last: dt.date) -> list[dt.date]:
    ps = months(FIRST_PERIOD, last)
    if kpi["frequency"] == "quarterly":
        # A quarter is reported once its last month is in the range.
        ps = [p for p in ps if p.month in (1, 4, 7, 10) and period_end(p, "quarterly") <= period_end(last, "monthly")]
    return ps


def _seed(name: str) -> int:
    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def _health(catalog: Catalog, out: Path) -> list[Path]:
    folder = out / "health"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.csv"):
        old.unlink()
    header = ["kpi_code", "month", "provider", "value", "numerator", "denominator"]
    rows: dict[dt.date, list[list[str]]] = {}
    for kpi_id in catalog.kpis_of_source("health_returns"):
        kpi = catalog.kpis[kpi_id]
        rng = random.Random(_seed(kpi_id))
        ps = _periods(kpi, LAST_PERIOD)
        for p, v in zip(ps, _series(kpi, ps, rng)):
            for j, prov in enumerate(PROVIDERS):
                rec = [kpi_id, p.strftime("%Y-%m"), prov, "", "", ""]
                if kpi["aggregation"] == "ratio":
                    den = 2000 + 500 * j + rng.randint(0, 200)
                    rec[4] = str(round(v / 100.0 * den))
                    rec[5] = str(den)
                elif kpi["aggregation"] == "sum":
                    rec[3] = str(round(v / len(PROVIDERS)))
                else:
                    rec[3] = f"{v + (j - 1.5) * 0.2:.1f}"
                rows.setdefault(p, []).append(rec)
    history = [r for p in sorted(rows) if p < LAST_PERIOD for r in rows[p]]
    latest = rows[LAST_PERIOD]
    # The October submission carries the planted bad rows.
    dup = next(r for r in latest if r[0] == "ambulance_cat2_minutes" and r[2] == "RH3")
    bad_number = next(r for r in latest if r[0] == "ambulance_cat2_minutes" and r[2] == "RH4")
    bad_number[3] = "3O.5"  # letter O typed for a zero: unparseable number
    latest = latest + [
        list(dup),  # duplicate key: the same KPI, month and provider twice
        ["delayed_discharges", "2026-10", "RH5", "-35", "", ""],  # negative count
        ["ae_twelve_hour_waits", "2026-10", "RH1", "112", "", ""],  # KPI id not in the catalog
    ]
    paths = []
    for name, body in (("returns_2023-10_to_2026-09.csv", history), ("returns_2026-10.csv", latest)):
        path = folder / name
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(header)
            w.writerows(body)
        paths.append(path)
    return paths


def _deterministic_zip(path: Path) -> None:
    """Rewrite an .xlsx with fixed member timestamps so the same data gives the same bytes
    (openpyxl also stamps docProps/core.xml with the time of saving: fixed here too)."""
    with zipfile.ZipFile(path) as zin:
        members = [(i.filename, zin.read(i.filename)) for i in zin.infolist()]
    stamp = dt.datetime(*FIXED_TIME).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    members = [(name, re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)", rb"\g<1>" + stamp + rb"\g<2>", data))
               if name == "docProps/core.xml" else (name, data) for name, data in members]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zout:
        for name, data in members:
            zout.writestr(zipfile.ZipInfo(name, date_time=FIXED_TIME), data, zipfile.ZIP_DEFLATED)
    path.write_bytes(buf.getvalue())


def _employment(catalog: Catalog, out: Path) -> list[Path]:
    from openpyxl import Workbook

    folder = out / "employment"
    folder.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    ws = wb.active
    ws.title = "KPI return"
    ws.append(["Riverside Employment Service - monthly KPI return"])
    ws.append(["Submitted to the county data office. Quarterly KPIs use the quarter's first month."])
    ws.append(["KPI", "Period", "Value", "Notes"])
    for kpi_id in catalog.kpis_of_source("employment_return"):
        kpi = catalog.kpis[kpi_id]
        rng = random.Random(_seed(kpi_id))
        ps = _periods(kpi, LAST_PERIOD)
        for p, v in zip(ps, _series(kpi, ps, rng)):
            label = f"{p.year}-Q{(p.month - 1) // 3 + 1}" if kpi["frequency"] == "quarterly" else p.strftime("%Y-%m")
            ws.append([kpi_id, label, round(v, 2) if kpi["unit"] == "percent" else round(v), None])
    fixed = dt.datetime(*FIXED_TIME)
    wb.properties.created = fixed
    wb.properties.modified = fixed
    path = folder / "employment_return_2026-10.xlsx"
    wb.save(path)
    _deterministic_zip(path)
    return [path]


def _transport(catalog: Catalog, out: Path) -> list[Path]:
    folder = out / "transport"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "transport.sqlite"
    if path.exists():
        path.unlink()
    con = sqlite3.connect(path)
    con.execute("create table kpi_returns (indicator text not null, period text not null, value real)")
    for kpi_id in catalog.kpis_of_source("transport_db"):
        kpi = catalog.kpis[kpi_id]
        rng = random.Random(_seed(kpi_id))
        ps = _periods(kpi, TRANSPORT_LAST_PERIOD)
        con.executemany(
            "insert into kpi_returns values (?, ?, ?)",
            [(kpi_id, p.isoformat(), round(v, 2)) for p, v in zip(ps, _series(kpi, ps, rng))],
        )
    con.commit()
    con.close()
    return [path]


def write_demo(data_dir: str | Path, catalog_dir: str | Path = DEFAULT_CATALOG) -> list[Path]:
    """Write the demo sources under data_dir; the same catalog always gives the same files."""
    catalog = load_catalog(catalog_dir)
    out = Path(data_dir)
    out.mkdir(parents=True, exist_ok=True)
    return _health(catalog, out) + _employment(catalog, out) + _transport(catalog, out)
