"""A reproducible synthetic estate of about N observations for the scale benchmark.

`generate(out, observations, seed)` writes, under `out/`:

- `catalog/`: departments, KPIs (ratio, mean and sum aggregations; higher and lower is better;
  one and two target points), a milestone per department, one file source per department
  (even departments send CSV, odd ones Parquet); its `kpiwatch.yml` points at `../data` and
  `../warehouse/kpiwatch.duckdb` and pins `as_of` so the stories read the same on any day;
- `data/<department>/<department>_<YYYY-MM>.<csv|parquet>`: one file per department and month,
  one row per KPI x organisation (the organisation count grows with N);
- `baseline/kpis.csv`, `baseline/anchors.csv`: the same catalog, flat, for the hand-written
  DuckDB yardstick (pipelines/bench/baseline.sql), which reads no YAML;
- `manifest.json`: parameters, row counts and every file's sha256.

The planted problems are the demo's kinds (pipelines/demo.py), at a fixed rate:
- bad rows, BAD_ROW_RATE of each file's rows (at least one per file), rotating through a
  negative value, an unknown KPI id, a duplicated key and an unparseable number (CSV) or an
  empty measure (Parquet);
- per department one KPI story: red (drifts far behind), amber (slips in the latest month),
  a missed milestone, or a sudden jump in the latest month; the other KPIs run a little ahead;
- the last department's latest two submissions are missing (overdue);
- the first department resubmits an earlier month with corrected figures (a revision).

`increment(out, fraction, day)` writes one day's new files: corrected figures for the latest
month of each department, `fraction` x N rows in all (the daily incremental run).

Same arguments, same bytes: every random draw comes from a seed derived from (seed, department,
month); files are written by pyarrow without timestamps.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import yaml

from pipelines.demo import expected_value, months, period_end

FIRST_PERIOD = dt.date(2023, 11, 1)
LAST_PERIOD = dt.date(2026, 10, 1)
AS_OF = "2026-11-15"
KPIS_PER_DEPARTMENT = 5
BAD_ROW_RATE = 1e-4  # one bad row in 10,000, at least one per file
BAD_KINDS = ("negative", "unknown_kpi", "duplicate", "unparseable")
STORIES = ("red", "amber", "missed_milestone", "jump")
# The KPI (index within its department) each story is told with: the milestone story needs the
# first KPI (its milestone's KPI), the jump a sum KPI.
STORY_KPI = {"red": 1, "amber": 3, "missed_milestone": 0, "jump": 4}
COLUMNS = ["kpi_code", "month", "org", "value", "numerator", "denominator"]


def _kpi_templates(n_orgs: int) -> list[dict]:
    """Five KPI shapes; sum KPIs scale with the organisation count."""
    return [
        dict(name="share seen on time", unit="percent", direction="higher_is_better", aggregation="ratio",
             scale=100, tolerance=1.0, baseline=70.0, targets=[(80.0, "2027-03-31")]),
        dict(name="share treated within standard", unit="percent", direction="higher_is_better",
             aggregation="ratio", scale=100, tolerance=2.0, baseline=60.0,
             targets=[(70.0, "2025-03-31"), (85.0, "2027-03-31")]),
        dict(name="mean response time", unit="minutes", direction="lower_is_better", aggregation="mean",
             tolerance=3.0, baseline=40.0, targets=[(30.0, "2027-03-31")]),
        dict(name="people waiting", unit="people", direction="lower_is_better", aggregation="sum",
             tolerance=5.0 * n_orgs, baseline=100.0 * n_orgs, targets=[(80.0 * n_orgs, "2027-03-31")]),
        dict(name="placements made", unit="placements", direction="higher_is_better", aggregation="sum",
             tolerance=2.5 * n_orgs, baseline=50.0 * n_orgs, targets=[(70.0 * n_orgs, "2027-03-31")]),
    ]


def dimensions(observations: int, departments: int, n_months: int) -> int:
    """Organisations per KPI so that the estate holds about `observations` rows."""
    return max(2, round(observations / (departments * KPIS_PER_DEPARTMENT * n_months)))


def build_catalog(departments: int, n_orgs: int) -> dict:
    depts, kpis, sources, milestones = [], [], [], []
    for d in range(departments):
        dept = f"dept{d:02d}"
        kind = "csv" if d % 2 == 0 else "parquet"
        depts.append({"id": dept, "name": f"Department {d:02d}", "channel": f"#{dept}-kpis",
                      "head": {"name": f"Head of {dept}", "email": f"head@{dept}.bench.example"}})
        source_id = f"{dept}_returns"
        sources.append({
            "id": source_id, "department": dept, "kind": kind,
            "description": f"Monthly returns of {dept} ({kind}), one file per submission",
            "path": f"{dept}/*.{kind}", "cadence": "monthly", "lag_days": 14,
            "columns": {"kpi_id": "kpi_code", "period": "month", "org_id": "org", "value": "value",
                        "numerator": "numerator", "denominator": "denominator"},
        })
        for k, t in enumerate(_kpi_templates(n_orgs)):
            kpi = {
                "id": f"{dept}_k{k}", "name": f"{dept}: {t['name']}", "department": dept, "source": source_id,
                "owner": {"name": f"Owner {dept} {k}", "slack": f"U{d:02d}K{k}OWNER"}, "unit": t["unit"],
                "direction": t["direction"], "frequency": "monthly", "aggregation": t["aggregation"],
                "tolerance": t["tolerance"], "methodology": f"Synthetic {t['aggregation']} KPI for the benchmark.",
                "baseline": {"value": t["baseline"], "date": "2023-09-30"},
                "targets": [{"value": v, "due": due} for v, due in t["targets"]],
            }
            if "scale" in t:
                kpi["scale"] = t["scale"]
            kpis.append(kpi)
        milestones.append({"id": f"{dept}_k0_76", "title": f"{dept}: share seen on time reaches 76%",
                           "kpi": f"{dept}_k0", "threshold": 76.0, "due": "2026-06-30"})
    return {"departments": depts, "kpis": kpis, "sources": sources, "milestones": milestones}


def story_of(d: int) -> str:
    return STORIES[d % len(STORIES)]


def _offset(story: str | None, i: int, n: int) -> float:
    """How far ahead (+) or behind (-) the trajectory a KPI runs, in tolerances (as the demo)."""
    last = n - 1
    if story == "amber":
        return {last - 3: 0.3, last - 2: 0.15, last - 1: 0.05, last: -0.3}.get(i, 0.5)
    if story == "red":
        return -3.0 * i / last
    return 0.4


def kpi_levels(kpi: dict, story: str | None, periods: list[dt.date], rng: np.random.Generator) -> list[float]:
    """The KPI's aggregate value per period (before organisations are drawn around it)."""
    sign = 1 if kpi["direction"] == "higher_is_better" else -1
    tol = float(kpi["tolerance"])
    n = len(periods)
    out = []
    for i, p in enumerate(periods):
        noise = rng.uniform(-0.15, 0.15) * tol if i < n - 2 else 0.0
        out.append(expected_value(kpi, period_end(p, "monthly")) + sign * (_offset(story, i, n) * tol + noise))
    if story == "missed_milestone":  # creeps up but never reaches 76% by June 2026
        out = [68.0 + 5.5 * i / (n - 1) for i in range(n)]
    if story == "jump":  # sudden jump in the latest month
        out[-1] = out[-2] * 2.6
    return out


def _rng(seed: int, *parts: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, *parts]))


def _org_ids(n_orgs: int) -> np.ndarray:
    return np.array([f"ORG{o:05d}" for o in range(n_orgs)], dtype=object)


def _draw_rows(kpi: dict, level: float, orgs: np.ndarray, rng: np.random.Generator):
    """Per-organisation value / numerator / denominator around the KPI's aggregate level."""
    n = len(orgs)
    nan = np.full(n, np.nan)
    if kpi["aggregation"] == "ratio":
        den = rng.integers(200, 2000, n).astype("float64")
        share = np.clip(level / 100.0 + rng.normal(0.0, 0.02, n), 0.0, 1.0)
        num = np.round(den * share)
        return nan, num, den
    if kpi["aggregation"] == "mean":
        return np.round(level + rng.normal(0.0, float(kpi["tolerance"]) * 0.5, n), 2), nan, nan
    per_org = level / n
    return np.round(per_org * (1.0 + rng.uniform(-0.1, 0.1, n)), 1), nan, nan


def _month_rows(dept_kpis: list[dict], levels: dict[str, list[float]], i: int, period: dt.date,
                orgs: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    parts = {c: [] for c in COLUMNS}
    for kpi in dept_kpis:
        value, num, den = _draw_rows(kpi, levels[kpi["id"]][i], orgs, rng)
        parts["kpi_code"].append(np.full(len(orgs), kpi["id"], dtype=object))
        parts["org"].append(orgs)
        parts["value"].append(value)
        parts["numerator"].append(num)
        parts["denominator"].append(den)
    cols = {c: np.concatenate(v) for c, v in parts.items() if v}
    cols["month"] = np.full(len(cols["org"]), period.strftime("%Y-%m"), dtype=object)
    return cols


def _plant_bad_rows(cols: dict[str, np.ndarray], kind: str, dept_kpis: list[dict], rng: np.random.Generator,
                    first_kind: int) -> tuple[dict[str, np.ndarray], list[str]]:
    """Replace (or, for a duplicate, add) BAD_ROW_RATE of the rows with a planted problem.
    Measures become text columns so that a CSV can carry an unparseable cell."""
    n = len(cols["org"])
    k = max(1, math.ceil(n * BAD_ROW_RATE))
    rows = np.sort(rng.choice(n, size=min(k, n), replace=False))
    ratio = {kp["id"] for kp in dept_kpis if kp["aggregation"] == "ratio"}
    planted = []
    text = {c: cols[c].astype(object) for c in ("value", "numerator", "denominator")}
    for c in text:  # NaN means an empty cell
        text[c] = np.where(np.isnan(cols[c]), None, cols[c]).astype(object)
    kpi_code = cols["kpi_code"].copy()
    extra = []
    for j, r in enumerate(rows):
        bad = BAD_KINDS[(first_kind + j) % len(BAD_KINDS)]
        measure = "numerator" if kpi_code[r] in ratio else "value"
        if bad == "negative":
            text[measure][r] = -abs(float(text[measure][r] or 1.0))
        elif bad == "unknown_kpi":
            kpi_code[r] = "zz_unknown_kpi"
        elif bad == "duplicate":
            extra.append(r)
        elif kind == "csv":
            text[measure][r] = "12,5x"
            bad = "unparseable"
        else:
            text[measure][r] = None
            bad = "missing_value"
        planted.append(bad)
    out = {"kpi_code": kpi_code, "month": cols["month"], "org": cols["org"], **text}
    if extra:  # the duplicate follows the rows it copies
        order = np.concatenate([np.arange(n), np.array(extra)])
        out = {c: v[order] for c, v in out.items()}
    return out, planted


def _table(cols: dict[str, np.ndarray], kind: str) -> pa.Table:
    arrays = {"kpi_code": pa.array(cols["kpi_code"], pa.string()), "month": pa.array(cols["month"], pa.string()),
              "org": pa.array(cols["org"], pa.string())}
    for c in ("value", "numerator", "denominator"):
        v = cols[c]
        if kind == "csv":
            # Numbers as the shortest repr Python gives them ("12.5", "1200.0"), text as is.
            arrays[c] = pa.array([None if x is None else (x if isinstance(x, str) else repr(float(x))) for x in v],
                                 pa.string())
        else:
            arrays[c] = pa.array([None if x is None else float(x) for x in v], pa.float64())
    return pa.table(arrays)


def _write(table: pa.Table, path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
    else:
        pq.write_table(table, path, compression="snappy")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_catalog(out: Path, catalog: dict) -> None:
    cdir = out / "catalog"
    cdir.mkdir(parents=True, exist_ok=True)
    settings = {"name": "kpiwatch scale benchmark (synthetic)", "as_of": AS_OF,
                "data_dir": "../data", "warehouse": "../warehouse/kpiwatch.duckdb"}
    files = {"kpiwatch.yml": settings, "departments.yml": {"departments": catalog["departments"]},
             "kpis.yml": {"kpis": catalog["kpis"]}, "sources.yml": {"sources": catalog["sources"]},
             "milestones.yml": {"milestones": catalog["milestones"]}}
    for name, doc in files.items():
        (cdir / name).write_text("# Written by `kpiwatch bench generate`; regenerate rather than edit.\n"
                                 + yaml.safe_dump(doc, sort_keys=False, width=120))
    bdir = out / "baseline"
    bdir.mkdir(parents=True, exist_ok=True)
    kpi_rows = [{"kpi_id": k["id"], "department_id": k["department"], "source_id": k["source"],
                 "aggregation": k["aggregation"], "scale": k.get("scale"), "direction": k["direction"],
                 "tolerance": float(k["tolerance"]), "frequency": k["frequency"]} for k in catalog["kpis"]]
    pacsv.write_csv(pa.Table.from_pylist(kpi_rows), bdir / "kpis.csv")
    anchors = []
    for k in catalog["kpis"]:
        anchors.append({"kpi_id": k["id"], "anchor_type": "baseline", "anchor_date": k["baseline"]["date"],
                        "anchor_value": float(k["baseline"]["value"])})
        anchors += [{"kpi_id": k["id"], "anchor_type": "target", "anchor_date": t["due"],
                     "anchor_value": float(t["value"])} for t in k["targets"]]
    pacsv.write_csv(pa.Table.from_pylist(anchors), bdir / "anchors.csv")


def generate(out: Path, observations: int, seed: int = 7, departments: int = 8, n_months: int = 36) -> dict:
    """Write the estate; returns the manifest (also written to out/manifest.json)."""
    out = Path(out)
    periods = months(FIRST_PERIOD, LAST_PERIOD)[-n_months:]
    n_orgs = dimensions(observations, departments, len(periods))
    catalog = build_catalog(departments, n_orgs)
    _write_catalog(out, catalog)
    orgs = _org_ids(n_orgs)
    files, rows_total, planted_total = [], 0, {}
    data = out / "data"
    for d, dept in enumerate(catalog["departments"]):
        folder = data / dept["id"]
        if folder.exists():
            for old in folder.iterdir():
                old.unlink()
        kind = catalog["sources"][d]["kind"]
        dept_kpis = [k for k in catalog["kpis"] if k["department"] == dept["id"]]
        story = story_of(d)
        last = len(periods) - (2 if d == departments - 1 and departments > 1 else 0)  # overdue department
        levels = {}  # the story ends at the department's latest submission
        for k, kpi in enumerate(dept_kpis):
            levels[kpi["id"]] = kpi_levels(kpi, story if STORY_KPI[story] == k else None, periods[:last],
                                           _rng(seed, d, k, 0))
        for i, period in enumerate(periods[:last]):
            variants = [0]
            if d == 0 and i == len(periods) - 4:
                variants.append(1)  # a corrected resubmission of this month
            for v in variants:
                rng = _rng(seed, d, i, 1 + v)
                cols = _month_rows(dept_kpis, levels, i, period, orgs, rng)
                if v:
                    for c in ("value", "numerator"):  # the correction moves figures by a few percent
                        cols[c] = np.round(cols[c] * (1.0 + rng.uniform(0.0, 0.03, len(cols[c]))), 1)
                    cols["numerator"] = np.minimum(cols["numerator"], cols["denominator"])
                cols, planted = _plant_bad_rows(cols, kind, dept_kpis, rng, first_kind=d + i)
                name = f"{dept['id']}_{period:%Y-%m}{'_v2' if v else ''}.{kind}"
                path = folder / name
                table = _table(cols, kind)
                _write(table, path, kind)
                files.append({"path": str(path.relative_to(out)), "rows": table.num_rows, "sha256": _sha256(path)})
                rows_total += table.num_rows
                for p in planted:
                    planted_total[p] = planted_total.get(p, 0) + 1
    manifest = {
        "observations_requested": observations, "observations": rows_total, "seed": seed,
        "departments": departments, "months": len(periods), "organisations": n_orgs,
        "kpis": len(catalog["kpis"]), "as_of": AS_OF, "bad_row_rate": BAD_ROW_RATE, "planted_rows": planted_total,
        "stories": {dept["id"]: story_of(d) for d, dept in enumerate(catalog["departments"])},
        "overdue_department": catalog["departments"][-1]["id"] if departments > 1 else None,
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def increment(out: Path, fraction: float = 0.001, day: int = 1, seed: int | None = None) -> list[dict]:
    """One day's new files: corrected figures for each department's latest month, about
    `fraction` of the estate's rows in all. Returns the files written (also added to the manifest)."""
    out = Path(out)
    manifest = json.loads((out / "manifest.json").read_text())
    seed = manifest["seed"] if seed is None else seed
    rows_wanted = max(1, round(manifest["observations"] * fraction))
    catalog = build_catalog(manifest["departments"], manifest["organisations"])
    per_dept = max(1, math.ceil(rows_wanted / (len(catalog["departments"]) * KPIS_PER_DEPARTMENT)))
    written = []
    for d, dept in enumerate(catalog["departments"]):
        kind = catalog["sources"][d]["kind"]
        folder = out / "data" / dept["id"]
        latest = sorted(p for p in folder.glob(f"{dept['id']}_????-??.{kind}"))[-1]
        table = pq.read_table(latest) if kind == "parquet" else pacsv.read_csv(
            latest, convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS}))
        orgs = sorted(set(table.column("org").to_pylist()))[:per_dept]
        mask = pc.is_in(table.column("org"), pa.array(orgs))
        rows = table.filter(mask)
        rng = _rng(seed, d, 10_000 + day)
        cols = {c: np.array(rows.column(c).to_pylist(), dtype=object) for c in COLUMNS}
        for c in ("value", "numerator"):
            nums = np.array([_num(x) for x in cols[c]], dtype="float64")
            cols[c] = np.round(nums * (1.0 + rng.uniform(0.0, 0.02, len(nums))), 1)
        for c in ("denominator",):
            cols[c] = np.array([_num(x) for x in cols[c]], dtype="float64")
        cols["numerator"] = np.fmin(cols["numerator"], cols["denominator"])
        stem = latest.stem
        path = folder / f"{stem}_day{day:03d}.{kind}"
        new = _table({**cols, **{c: np.where(np.isnan(cols[c]), None, cols[c]).astype(object)
                                 for c in ("value", "numerator", "denominator")}}, kind)
        _write(new, path, kind)
        written.append({"path": str(path.relative_to(out)), "rows": new.num_rows, "sha256": _sha256(path)})
    manifest.setdefault("increments", []).append({"day": day, "fraction": fraction, "files": written})
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return written


def _num(x) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return float("nan")
