"""Landing on a real DuckDB file: accounting, quarantine reasons, idempotence, schema changes."""
import datetime as dt
import hashlib
import shutil

import pytest

from pipelines.catalog.loader import load_catalog
from pipelines.config import DEFAULT_CATALOG
from pipelines.ingest.landing import ingest_source
from pipelines.warehouse import connect

CATALOG = load_catalog(DEFAULT_CATALOG)
AS_OF = dt.date(2026, 11, 15)


def land(wh, data_dir, source_id, run_id="r1"):
    with connect(wh) as con:
        return ingest_source(con, CATALOG, source_id, data_dir, AS_OF, run_id)


def counts(wh):
    with connect(wh, read_only=True) as con:
        return {
            t: con.execute(f"select count(*) from raw.{t}").fetchone()[0]  # fixed table names
            for t in ("batches", "observations", "quarantine")
        }


def test_demo_is_deterministic(tmp_path):
    from pipelines.demo import write_demo

    def digest(paths):
        return {p.relative_to(p.parents[1]).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    assert digest(write_demo(tmp_path / "a")) == digest(write_demo(tmp_path / "b"))


def test_bad_batch_rows_are_quarantined_with_reasons(tmp_path, demo_data):
    wh = tmp_path / "w.duckdb"
    report = land(wh, demo_data, "health_returns")
    assert report.error is None
    latest = next(b for b in report.batches if b.source_file.endswith("returns_2026-10.csv"))
    assert latest.reasons == {"unparseable_number": 1, "duplicate_key": 2, "negative_value": 1, "unknown_kpi_id": 1}
    assert latest.rows_accepted + latest.rows_quarantined == latest.rows_in == 23
    failed = {o.check_name for o in latest.outcomes if not o.success}
    assert failed == {"values_parseable", "key_unique", "kpi_id_known", "value_non_negative"}
    with connect(wh, read_only=True) as con:
        rows = con.execute("select reason, row_number, record from raw.quarantine order by row_number").fetchall()
        lineage = con.execute(
            "select count(*) from raw.observations where source_file is null or source_sha256 is null or row_number is null"
        ).fetchone()[0]
        stored = con.execute("select count(*) from quality.check_results where batch_id = ?", [latest.batch_id]).fetchone()[0]
    assert [r[0] for r in rows] == ["duplicate_key", "unparseable_number", "duplicate_key", "negative_value", "unknown_kpi_id"]
    assert '"3O.5"' in rows[1][2]  # the raw record is kept, so nothing is lost
    assert lineage == 0
    assert stored == len(latest.outcomes)


def test_reingesting_the_same_files_adds_nothing(tmp_path, demo_data):
    wh = tmp_path / "w.duckdb"
    for sid in CATALOG.sources:
        land(wh, demo_data, sid)
    first = counts(wh)
    for sid in CATALOG.sources:
        report = land(wh, demo_data, sid, run_id="r2")
        assert report.batches == []
    assert counts(wh) == first
    assert first["observations"] + first["quarantine"] == 720 + 23 + 98 + 116


def test_schema_change_quarantines_the_whole_batch(tmp_path, demo_data):
    data = tmp_path / "data"
    (data / "health").mkdir(parents=True)
    src = (demo_data / "health" / "returns_2026-10.csv").read_text()
    (data / "health" / "renamed.csv").write_text(src.replace("kpi_code,", "indicator,", 1))
    wh = tmp_path / "w.duckdb"
    [batch] = land(wh, data, "health_returns").batches
    assert batch.rows_accepted == 0 and batch.rows_quarantined == batch.rows_in == 23
    assert batch.reasons == {"missing_column": 23}
    [check] = [o for o in batch.outcomes if o.check_name == "columns_present"]
    assert not check.success and check.severity == "critical" and "'kpi_code'" in check.observed


def test_unreadable_workbook_is_a_named_batch_error(tmp_path):
    data = tmp_path / "data"
    (data / "employment").mkdir(parents=True)
    (data / "employment" / "broken.xlsx").write_bytes(b"this is not a zip file")
    wh = tmp_path / "w.duckdb"
    [batch] = land(wh, data, "employment_return").batches
    assert batch.reasons == {"unreadable_source": 1}
    assert "broken.xlsx: not a readable .xlsx workbook" in batch.outcomes[0].observed


def test_missing_sqlite_database_is_a_source_error(tmp_path):
    report = land(tmp_path / "w.duckdb", tmp_path, "transport_db")
    assert report.error == f"source transport_db: database file transport/transport.sqlite not found in {tmp_path}"


def test_sql_source_reads_the_table_once(tmp_path, demo_data):
    wh = tmp_path / "w.duckdb"
    [batch] = land(wh, demo_data, "transport_db").batches
    assert batch.rows_in == batch.rows_accepted == 116
    assert land(wh, demo_data, "transport_db").batches == []
    with connect(wh, read_only=True) as con:
        q = con.execute("select distinct source_query from raw.observations").fetchone()[0]
    assert q == 'SELECT * \nFROM kpi_returns ORDER BY 1, 2, 3'  # every column, in order: the same batches each run


def test_a_file_outside_the_data_dir_is_not_followed(tmp_path, demo_data):
    data = tmp_path / "data"
    (data / "health").mkdir(parents=True)
    outside = tmp_path / "secret.csv"
    shutil.copy(demo_data / "health" / "returns_2026-10.csv", outside)
    (data / "health" / "link.csv").symlink_to(outside)
    report = land(tmp_path / "w.duckdb", data, "health_returns")
    assert report.batches == []
    assert report.failures == ["health/link.csv: refused: a symbolic link leading outside the data directory; not followed"]
