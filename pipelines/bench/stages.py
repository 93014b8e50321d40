"""One timed kpiwatch run, split by stage (run in a child process by pipelines/bench/run.py, so
that its peak RSS is its own).

The run is the same in-process Dagster job as `kpiwatch run`. Stage times come from the run's
step start/success events; batch validation (GX on each batch, and the schema check) runs
inside the ingest steps, so its time is measured around those calls and moved from ingest to
validation. Usage: python -m pipelines.bench.stages CATALOG_DIR RESULT_JSON
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# Step key -> stage; first match wins.
STAGES = [
    ("kpi_catalog", "catalog"),
    ("catalog", "catalog"),
    ("ingest__", "ingest"),
    ("landed_observations", "ingest"),
    ("kpiwatch_dbt_models", "dbt"),
    ("quality__drift_findings", "drift"),
    ("publish__", "validation"),  # the marts' GX contract before publication
    ("kpi_alerts", "alerts"),
    ("scorecard", "report"),
    ("audit_report", "report"),
    ("report", "report"),
]


def stage_of(step_key: str) -> str:
    for prefix, stage in STAGES:
        if step_key.startswith(prefix):
            return stage
    return "other"


class _Timer:
    """Wraps a function and adds the seconds spent in it to `total`."""

    def __init__(self, fn):
        self.fn, self.total, self.calls = fn, 0.0, 0

    def __call__(self, *args, **kwargs):
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.total += time.perf_counter() - t
            self.calls += 1


def run(catalog_dir: Path) -> dict:
    t0 = time.perf_counter()
    from pipelines.cli import _init_dagster_home
    from pipelines.config import Settings
    from pipelines.transform.project import prepare_manifest

    settings = Settings.from_env(catalog_dir=catalog_dir).resolved()
    prepare_manifest()
    os.environ.update(settings.export())
    os.environ["DAGSTER_HOME"] = str(settings.warehouse.parent / "dagster_home")
    _init_dagster_home(Path(os.environ["DAGSTER_HOME"]))
    import dagster as dg

    import pipelines.ingest.landing as landing
    from pipelines.definitions import ALL_ASSETS_JOB, build_definitions

    validate, schema = _Timer(landing.validate_frame), _Timer(landing.check_schema)
    landing.validate_frame, landing.check_schema = validate, schema
    job = build_definitions(settings).resolve_job_def(ALL_ASSETS_JOB)
    setup = time.perf_counter() - t0
    with dg.DagsterInstance.get() as instance:
        t1 = time.perf_counter()
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        wall = time.perf_counter() - t1
        starts, steps = {}, {}
        for entry in instance.all_logs(result.run_id):
            ev = entry.dagster_event
            if ev is None or not ev.step_key:
                continue
            if ev.event_type_value == "STEP_START":
                starts[ev.step_key] = entry.timestamp
            elif ev.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE") and ev.step_key in starts:
                steps[ev.step_key] = entry.timestamp - starts[ev.step_key]
        failed = [e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    stages = {"setup": setup}
    for key, secs in steps.items():
        stages[stage_of(key)] = stages.get(stage_of(key), 0.0) + secs
    batch_validation = validate.total + schema.total
    stages["ingest"] = stages.get("ingest", 0.0) - batch_validation
    stages["validation"] = stages.get("validation", 0.0) + batch_validation
    # Dagster's own work between steps (event log writes, resource set-up).
    stages["orchestration"] = max(0.0, wall - sum(steps.values()))
    return {"success": result.success, "failed_steps": failed, "run_id": result.run_id,
            "wall_seconds": time.perf_counter() - t0, "stages": stages, "steps": steps,
            "gx_validations": validate.calls}


def main(argv: list[str]) -> int:
    catalog_dir, out = Path(argv[0]), Path(argv[1])
    res = run(catalog_dir)
    out.write_text(json.dumps(res, indent=1))
    return 0 if res["success"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
