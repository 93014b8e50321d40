"""A resubmitted period with a different value is a revision: the marts use the latest, the
history stays, and fct_kpi_restatements (and `kpiwatch status`) show what changed."""
import json
import os

import dagster as dg
import pytest

from pipelines.config import Settings
from pipelines.warehouse import connect
from tests.support.catalogs import kpi, write_catalog

pytestmark = [pytest.mark.slow, pytest.mark.clock]  # clock: also run with the clock moved (make test-clock)


def _one_csv_source(tmp_path) -> Settings:
    """A catalog with one monthly CSV source (drop folder `in/`) and one KPI, `homes`."""
    source = {"id": "returns", "department": "dept", "kind": "csv", "path": "in/*.csv", "cadence": "monthly",
              "lag_days": 14, "columns": {"kpi_id": "kpi", "period": "month", "value": "value"}}
    catalog = write_catalog(tmp_path / "catalog", [source], [kpi("homes", "returns")], as_of="2026-04-20")
    data = tmp_path / "data"
    (data / "in").mkdir(parents=True)
    return Settings(catalog_dir=catalog, data_dir=data, warehouse=tmp_path / "w.duckdb",
                    alerts_file=tmp_path / "alerts.jsonl").resolved()


def test_revision_latest_wins_and_is_listed(tmp_path):
    from typer.testing import CliRunner

    from pipelines.cli import app
    from pipelines.definitions import build_definitions
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    settings = _one_csv_source(tmp_path)
    catalog, data = settings.catalog_dir, settings.data_dir
    (data / "in" / "a_2026-03.csv").write_text("kpi,month,value\nhomes,2026-01,10\nhomes,2026-02,20\nhomes,2026-03,30\n")
    saved = dict(os.environ)
    os.environ.update(settings.export())
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            for step in ("first", "resubmission"):
                if step == "resubmission":  # February restated, March unchanged
                    (data / "in" / "b_2026-03-corrected.csv").write_text("kpi,month,value\nhomes,2026-02,24.5\nhomes,2026-03,30\n")
                defs = build_definitions(settings)
                result = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance)
                assert result.success
        status = CliRunner().invoke(app, ["status", "--catalog", str(catalog), "--format", "json"])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with connect(settings.warehouse, read_only=True) as con:
        progress = con.execute("select period, actual from marts.fct_kpi_progress order by period").fetchall()
        history = con.execute("select count(*) from raw.observations").fetchone()[0]
        restated = con.execute(
            "select period, previous_value, revised_value, value_change, revising_source_file from marts.fct_kpi_restatements"
        ).fetchall()
    assert [(p.isoformat(), v) for p, v in progress] == [("2026-01-01", 10.0), ("2026-02-01", 24.5), ("2026-03-01", 30.0)]
    assert history == 5  # both submissions kept
    assert [(p.isoformat(), a, b, c, f) for p, a, b, c, f in restated] == [
        ("2026-02-01", 20.0, 24.5, 4.5, "in/b_2026-03-corrected.csv")]
    assert status.exit_code == 0, status.output
    doc = json.loads(status.output)
    assert [(r["kpi_id"], r["period"], r["value_change"]) for r in doc["restatements"]] == [("homes", "2026-02-01", 4.5)]


def test_within_one_drop_the_later_file_is_the_latest_revision(tmp_path):
    """Three files restating February arrive in one run: the last by name wins, whatever order
    their batch ids (content hashes) sort in."""
    import hashlib

    from pipelines.definitions import build_definitions
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    settings = _one_csv_source(tmp_path)
    data = settings.data_dir
    files = {"a_first.csv": "kpi,month,value\nhomes,2026-01,10\nhomes,2026-02,20\nhomes,2026-03,30\n",
             "b_second.csv": "kpi,month,value\nhomes,2026-02,24.5\n"}
    # the last file's content is chosen so that its batch id sorts first: ordering by batch id
    # would pick another file's February
    pad = 0
    while True:
        last = "kpi,month,value\nhomes,2026-02,22\n" + "\n" * pad
        shas = [hashlib.sha256(t.encode()).hexdigest()[:16] for t in (*files.values(), last)]
        if shas[2] < min(shas[:2]):
            break
        pad += 1
    files["c_third.csv"] = last
    for name, text in files.items():
        (data / "in" / name).write_text(text)
    saved = dict(os.environ)
    os.environ.update(settings.export())
    try:
        with dg.DagsterInstance.ephemeral() as instance:
            defs = build_definitions(settings)
            assert dg.materialize(list(defs.assets), resources=defs.resources, instance=instance).success
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with connect(settings.warehouse, read_only=True) as con:
        order = [f for (f,) in con.execute("select source_file from raw.batches order by loaded_at").fetchall()]
        february = con.execute("select actual from marts.fct_kpi_progress where period = '2026-02-01'").fetchone()[0]
        ids = dict(con.execute("select source_file, batch_id from raw.batches").fetchall())
    assert ids["in/c_third.csv"] < min(ids["in/a_first.csv"], ids["in/b_second.csv"])  # the premise
    assert order == ["in/a_first.csv", "in/b_second.csv", "in/c_third.csv"]
    assert february == 22.0
