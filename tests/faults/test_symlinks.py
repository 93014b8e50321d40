"""Symbolic links in a drop folder are never skipped without a word (ingest layer, real DuckDB):
a link to a file inside the data directory is followed and named; a link leading outside it, or
to nothing, is refused by name (and blocks the department's publication for the run, like a file
that cannot be read), and what it points to is never read."""
from __future__ import annotations

import datetime as dt
import os

from pipelines.catalog.loader import load_catalog
from pipelines.ingest.landing import ingest_source
from pipelines.warehouse import connect
from tests.support.catalogs import kpi, write_catalog

ROWS = "kpi,month,value\nhomes,2026-09,5\nhomes,2026-10,6\n"


def test_links_inside_are_followed_and_named_links_outside_are_refused_by_name(tmp_path):
    data = tmp_path / "data"
    (data / "archive").mkdir(parents=True)
    (data / "returns.csv").write_text(ROWS)
    (data / "archive" / "2026-08.csv").write_text("kpi,month,value\nhomes,2026-08,4\n")
    (tmp_path / "secret.csv").write_text("kpi,month,value\nhomes,2026-07,999\n")
    os.symlink(data / "archive" / "2026-08.csv", data / "latest.csv")      # inside: followed
    os.symlink(tmp_path / "secret.csv", data / "outside.csv")              # outside: refused
    os.symlink(data / "gone.csv", data / "dangling.csv")                   # to nothing: refused
    src = {"id": "drop", "department": "dept", "kind": "csv", "path": "*.csv", "cadence": "monthly",
           "columns": {"kpi_id": "kpi", "period": "month", "value": "value"}}
    catalog = load_catalog(write_catalog(tmp_path / "catalog", [src], [kpi("homes", "drop")]))
    with connect(tmp_path / "wh.duckdb") as con:
        report = ingest_source(con, catalog, "drop", data, dt.date(2026, 11, 15), "run-1")
        values = sorted(r[0] for r in con.execute("select value from raw.observations").fetchall())
        checks = [r[0] for r in con.execute("select observed from quality.check_results "
                                            "where check_name = 'source_readable' and not success").fetchall()]
    assert values == [4, 5, 6]  # the secret's 999 was never read
    assert report.notes == ["latest.csv: a symbolic link to archive/2026-08.csv, followed (inside the data directory)"]
    assert report.failures == [
        "dangling.csv: refused: a symbolic link to nothing (its target does not exist); not followed",
        "outside.csv: refused: a symbolic link leading outside the data directory; not followed",
    ]
    assert checks == report.failures  # named in the run's checks: the department is blocked for the run
    assert str(tmp_path / "secret.csv") not in " ".join(report.failures)  # where it leads is not shown
