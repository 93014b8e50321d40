"""Two runs of the real asset graph shared by the quality integration tests (built once per
test session, whichever module asks first; the materializations are the expensive part).

Run 1: the demo as shipped. Run 2, on the same warehouse, after two new submissions:
- health: `returns_2026-11.csv` with an extra column `notes` — a schema change, so the batch is
  quarantined whole and a critical check fails: health's publication is blocked;
- employment: `employment_return_2026-11.xlsx` with November values, claimant_count far off its
  history (a planted outlier, a warning-level matter: employment still publishes).
"""
from __future__ import annotations

import csv
import datetime as dt
import os
from dataclasses import replace
from pathlib import Path

import dagster as dg

from pipelines.config import Settings
from pipelines.demo import write_demo

_CACHE: dict = {}
# The runs' clocks, pinned (pipelines/clock.py): what the runs store (landing, checks, alert
# state, snapshots, ledger) is dated by these, whatever day the tests run. A test that acts
# "after the runs" takes its time from AFTER_RUNS, never from the wall clock.
RUN1_NOW = dt.datetime(2026, 11, 27, 7, 0)
RUN2_NOW = dt.datetime(2026, 11, 27, 7, 10)
AFTER_RUNS = dt.datetime(2026, 11, 27, 8, 0)
NOVEMBER_CLAIMANTS = 52000.0  # October was about 36,900: far outside the KPI's own history
# Data values reach the HTML report: this one must come out as text, never as markup.
HOSTILE_NOTE = '<script>alert("kpiwatch")</script> & <b>checked</b>'



def materialize_all(settings: Settings, instance, now: dt.datetime | None = None) -> dg.ExecuteInProcessResult:
    from pipelines.definitions import build_definitions

    defs = build_definitions(replace(settings, now=now) if now else settings)
    return dg.materialize(list(defs.assets), resources=defs.resources, instance=instance, raise_on_error=False)


def plant_run2_files(data: Path) -> None:
    src = data / "health" / "returns_2026-10.csv"
    with src.open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r and r[1] == "2026-10"][:20]
    with (data / "health" / "returns_2026-11.csv").open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header + ["notes"])
        for r in body:
            w.writerow([r[0], "2026-11", *r[2:], HOSTILE_NOTE])

    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    ws.title = "KPI return"
    ws.append(["Riverside Employment Service - monthly KPI return"])
    ws.append(["November submission"])
    ws.append(["KPI", "Period", "Value", "Notes"])
    ws.append(["claimant_count", "2026-11", NOVEMBER_CLAIMANTS, None])
    ws.append(["job_placements", "2026-11", 2080, None])
    wb.save(data / "employment" / "employment_return_2026-11.xlsx")


def quality_runs(tmp_path_factory) -> dict:
    """{settings, wh, data, first, second} — the two runs (materialized once per session)."""
    if "runs" in _CACHE:
        return _CACHE["runs"]
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    base = tmp_path_factory.mktemp("quality-runs")
    data = base / "data"
    write_demo(data)
    settings = Settings(data_dir=data, warehouse=base / "wh" / "kpiwatch.duckdb").resolved()
    saved = dict(os.environ)
    try:
        for k in [k for k in os.environ if k.startswith(("SLACK_", "KPIWATCH_"))]:
            del os.environ[k]
        os.environ.update(settings.export())
        with dg.DagsterInstance.ephemeral() as instance:
            first = materialize_all(settings, instance, RUN1_NOW)
            plant_run2_files(data)
            second = materialize_all(settings, instance, RUN2_NOW)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    _CACHE["runs"] = {"settings": settings, "wh": settings.warehouse, "data": data, "first": first, "second": second}
    return _CACHE["runs"]
