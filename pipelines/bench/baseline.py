"""Run the hand-written yardstick (baseline.sql) on an estate, timing each of its sections.

Usage (a child process of pipelines/bench/run.py): python -m pipelines.bench.baseline ESTATE DB RESULT_JSON
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("baseline.sql")
# Section header -> the kpiwatch stage it stands for.
SECTION_STAGE = {"catalog": "ingest", "ingest": "ingest", "validation": "validation", "marts": "dbt",
                 "checks": "drift"}
_HEADER = re.compile(r"^-- ---- (\w+)", re.MULTILINE)


def sections(script: str) -> list[tuple[str, str]]:
    """(stage, sql) per `-- ---- <name>` section of the script, in order."""
    marks = list(_HEADER.finditer(script))
    out = []
    for m, nxt in zip(marks, marks[1:] + [None]):
        out.append((SECTION_STAGE[m[1]], script[m.start(): nxt.start() if nxt else len(script)]))
    head = script[: marks[0].start()] if marks else script
    return [("ingest", head)] + out


def run(estate: Path, db: Path) -> dict:
    import duckdb

    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    db.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(estate)  # the script's paths are relative to the estate
    try:
        with duckdb.connect(str(db)) as con:
            for stage, sql in sections(SCRIPT.read_text()):
                t = time.perf_counter()
                con.execute(sql)
                stages[stage] = stages.get(stage, 0.0) + time.perf_counter() - t
            rows = con.execute("select count(*), coalesce(sum(rows_in), 0) from raw.batches").fetchone()
    finally:
        os.chdir(cwd)
    return {"success": True, "wall_seconds": time.perf_counter() - t0, "stages": stages,
            "batches": rows[0], "rows_in": rows[1]}


def main(argv: list[str]) -> int:
    estate, db, out = Path(argv[0]).resolve(), Path(argv[1]).resolve(), Path(argv[2])
    out.write_text(json.dumps(run(estate, db), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
