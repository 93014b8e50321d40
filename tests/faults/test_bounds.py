"""Every input bounded (issue 19), at the ingest layer (real DuckDB in tmp_path, a local HTTP
server, real PostgreSQL and SQLite) and through `kpiwatch validate`: an endless or dripping HTTP
body, redirects to another host or scheme, a workbook that expands to gigabytes, a locked source
table, a runaway SQLite query, a YAML alias bomb, a 16,384-column file's quarantine detail.
Each ends in bounded time and memory as a named outcome for its source only."""
from __future__ import annotations

import datetime as dt
import shutil
import sqlite3
import sys
import time
import uuid

import psycopg
import pytest

from pipelines.catalog.loader import load_catalog
from pipelines.config import DEFAULT_CATALOG, PROJECT_ROOT
from pipelines.ingest.landing import MAX_DETAIL, ingest_source
from pipelines.warehouse import connect
from tests.faults.bombs import peak_rss_kb, workbook_bomb, yaml_alias_bomb
from tests.support.catalogs import kpi, write_catalog
from tests.support.http_server import HttpServer, drip_route, endless_route, json_route, redirect_route

AS_OF = dt.date(2026, 11, 15)
COLS = {"kpi_id": "kpi", "period": "month", "value": "value"}
RECORDS = {"data": [{"kpi": "homes", "month": f"2026-{m:02d}", "value": m} for m in range(1, 7)]}


def _land(tmp_path, source: dict, name: str = "wh", environ=None):
    source = {"id": "src", "department": "dept", "cadence": "monthly", "columns": COLS, **source}
    catalog = load_catalog(write_catalog(tmp_path / f"catalog-{name}", [source], [kpi("homes", "src")]))
    (tmp_path / "data").mkdir(exist_ok=True)
    with connect(tmp_path / f"{name}.duckdb") as con:
        report = ingest_source(con, catalog, "src", tmp_path / "data", AS_OF, "run-1", environ=environ or {})
        checks = con.execute("select observed from quality.check_results where check_name = 'source_readable' "
                             "and not success").fetchall()
    return report, [c[0] for c in checks]


def _http(url: str, **extra) -> dict:
    return {"kind": "http", "url": url, "format": "json", "records_path": "data", "retries": 0, **extra}


def test_an_endless_body_stops_at_max_response_mb(tmp_path):
    with HttpServer({"/endless": endless_route()}) as srv:
        t0 = time.monotonic()
        report, checks = _land(tmp_path, _http(srv.url("/endless"), max_response_mb=2))
    assert time.monotonic() - t0 < 10
    assert "response over the 2 MB limit (max_response_mb)" in report.error and checks == [report.error]


def test_a_dripping_body_stops_at_timeout_seconds(tmp_path):
    with HttpServer({"/drip": drip_route(0.2)}) as srv:
        t0 = time.monotonic()
        report, _ = _land(tmp_path, _http(srv.url("/drip"), timeout_seconds=1.5))
        took = time.monotonic() - t0
    # Each byte comes well within the socket timeout; the request as a whole is what is bounded.
    assert 1.4 < took < 5, took
    assert "not complete within the time limit" in report.error


def test_redirects_to_another_host_or_scheme_are_not_followed(tmp_path):
    with HttpServer({"/internal": json_route(RECORDS)}) as internal, \
            HttpServer({"/other-port": redirect_route(internal.url("/internal")),
                        "/ftp": redirect_route("ftp://127.0.0.1/kpis.json"),
                        "/file": redirect_route("file:///etc/passwd"),
                        "/moved": redirect_route("/data.json"), "/data.json": json_route(RECORDS)}) as srv:
        port = srv.url("/").split(":")[2].rstrip("/")
        other, _ = _land(tmp_path, _http(srv.url("/other-port")), "a")
        ftp, _ = _land(tmp_path, _http(srv.url("/ftp")), "b")
        file, _ = _land(tmp_path, _http(srv.url("/file")), "c")
        same, _ = _land(tmp_path, _http(srv.url("/moved")), "d")
        allowed, _ = _land(tmp_path, _http(srv.url("/other-port"), allow_redirect_hosts=[
            f"127.0.0.1:{internal.url('/').split(':')[2].rstrip('/')}"]), "e")
        internal_hits = list(internal.hits)
    assert "redirected to another host" in other.error and "allow_redirect_hosts" in other.error
    assert "redirected to a ftp: URL: not followed" in ftp.error and "redirected to a file: URL" in file.error
    assert not other.batches and not ftp.batches
    assert internal_hits == ["/internal"]  # only when allowed
    # Followed on the same host, and allowed: the final URL is in the batch's lineage.
    [b] = same.batches
    assert b.rows_accepted == 6
    [b] = allowed.batches
    assert b.rows_accepted == 6
    with connect(tmp_path / "d.duckdb", read_only=True) as con:
        [(shown,)] = con.execute("select source_query from raw.batches").fetchall()
    assert shown.endswith(f"→ http://127.0.0.1:{port}/data.json"), shown


def test_a_4xx_is_one_attempt(tmp_path):
    with HttpServer({}) as srv:
        report, _ = _land(tmp_path, _http(srv.url("/missing"), retries=3))
    assert report.error.endswith("failed after 1 attempt(s): HTTP 404"), report.error


def test_a_workbook_bomb_is_refused_before_it_is_read(tmp_path, demo_data):
    data = tmp_path / "data" / "employment"
    data.mkdir(parents=True)
    size = workbook_bomb(demo_data / "employment" / "employment_return_2026-10.xlsx", data / "a-bomb.xlsx", 400_000)
    shutil.copy(demo_data / "employment" / "employment_return_2026-10.xlsx", data / "b-real.xlsx")
    assert size > 25 * 1048576 and (data / "a-bomb.xlsx").stat().st_size < 1048576
    catalog = load_catalog(DEFAULT_CATALOG)
    source = catalog.sources["employment_return"]
    for limits, expected in [({"max_uncompressed_mb": 20}, "over the 20 MB limit (max_uncompressed_mb)"),
                             ({"max_cells": 100_000}, "more than 100,000 cells (max_cells)")]:
        catalog.sources["employment_return"] = {**source, **limits}
        t0 = time.monotonic()
        with connect(tmp_path / f"{len(expected)}.duckdb") as con:
            report = ingest_source(con, catalog, "employment_return", tmp_path / "data", AS_OF, "run-1")
        assert time.monotonic() - t0 < 30
        bomb, real = report.batches
        assert bomb.source_file == "employment/a-bomb.xlsx" and bomb.reasons == {"unreadable_source": 1}
        assert expected in bomb.message() and real.rows_accepted > 0


@pytest.fixture
def pg_table():
    db = f"kpiwatch_b_{uuid.uuid4().hex[:10]}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'create database "{db}"')
    dsn = f"host=127.0.0.1 port=5432 user=postgres dbname={db}"
    with psycopg.connect(dsn, autocommit=True) as con:
        con.execute("create table kpi_rows (kpi text, month text, value numeric)")
        con.execute("insert into kpi_rows values ('homes', '2026-01', 1), ('homes', '2026-02', 2)")
    yield dsn, f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"
    with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", autocommit=True) as admin:
        admin.execute(f'drop database if exists "{db}" with (force)')


def test_a_locked_source_table_ends_at_the_statement_timeout(tmp_path, pg_table):
    dsn, url = pg_table
    locker = psycopg.connect(dsn)
    locker.execute("lock table kpi_rows in access exclusive mode")  # held until rollback
    try:
        t0 = time.monotonic()
        report, checks = _land(tmp_path, {"kind": "sql", "url_env": "PGURL", "table": "kpi_rows",
                                          "statement_timeout_seconds": 1.5}, environ={"PGURL": url})
        took = time.monotonic() - t0
    finally:
        locker.rollback()
        locker.close()
    assert 1.4 < took < 10, took
    assert "query failed" in report.error and "statement timeout" in report.error, report.error
    again, _ = _land(tmp_path, {"kind": "sql", "url_env": "PGURL", "table": "kpi_rows"}, "again", {"PGURL": url})
    assert again.batches[0].rows_accepted == 2  # not locked: read (streamed through a server-side cursor)


def test_a_runaway_sqlite_query_ends_at_the_statement_timeout(tmp_path):
    (tmp_path / "data").mkdir()
    sqlite3.connect(tmp_path / "data" / "db.sqlite").close()
    runaway = ("with recursive n(i) as (select 1 union all select i + 1 from n) "
               "select 'homes' as kpi, '2026-01' as month, count(*) as value from n")
    t0 = time.monotonic()
    report, _ = _land(tmp_path, {"kind": "sql", "sqlite_path": "db.sqlite", "query": runaway,
                                 "statement_timeout_seconds": 1})
    assert time.monotonic() - t0 < 10
    assert "query failed" in report.error and "interrupted" in report.error, report.error


def test_a_yaml_alias_bomb_is_a_one_line_error_fast_and_small(tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(DEFAULT_CATALOG, catalog)
    (catalog / "sources.yml").write_text(yaml_alias_bomb(9, 9))
    assert (catalog / "sources.yml").stat().st_size < 1024
    t0 = time.monotonic()
    r, peak_kb = peak_rss_kb([sys.executable, "-m", "pipelines.cli", "validate", "--catalog", str(catalog)],
                             cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    took = time.monotonic() - t0
    assert r.returncode == 2 and took < 15 and peak_kb < 300 * 1024, (took, peak_kb)
    problem = [ln for ln in (r.stdout + r.stderr).splitlines() if "sources.yml" in ln]
    assert len(problem) == 1 and "aliases expand to more than 200,000 nodes" in problem[0], r.stdout + r.stderr
    assert len(r.stdout + r.stderr) < 500


def test_a_catalog_file_over_the_size_limit_is_refused(tmp_path):
    catalog = tmp_path / "catalog"
    shutil.copytree(DEFAULT_CATALOG, catalog)
    with (catalog / "milestones.yml").open("a") as fh:
        fh.write("#" + "x" * (6 * 1024 * 1024) + "\n")
    from pipelines.catalog.loader import CatalogError

    with pytest.raises(CatalogError) as info:
        load_catalog(catalog)
    assert str(info.value).startswith("milestones.yml: (top): file is 6,") and "over the catalog limit" in str(info.value)


def test_a_wide_file_quarantine_detail_is_capped(tmp_path):
    (tmp_path / "data").mkdir()
    header = ",".join(f"column_{i:05d}" for i in range(16_384))
    (tmp_path / "data" / "wide.csv").write_text(header + "\n" + ",".join("1" * 16_384) + "\n")
    report, _ = _land(tmp_path, {"kind": "csv", "path": "*.csv"})
    [b] = report.batches
    assert b.reasons == {"missing_column": 1}
    with connect(tmp_path / "wh.duckdb", read_only=True) as con:
        [(detail, record)] = con.execute("select detail, record from raw.quarantine").fetchall()
    assert len(detail) < MAX_DETAIL + 40 and detail.endswith("more characters)")
    assert record.count("column_") == 16_384  # the row itself is kept whole


def test_a_sql_result_is_hashed_as_it_streams_with_the_same_batch_identity():
    # Regression guard: the streamed hash must equal the hash of the whole result's JSON text
    # that earlier releases stored, or every unchanged SQL source would land again once.
    import decimal
    import hashlib
    import json

    from pipelines.ingest.readers import _jsonable
    from pipelines.ingest.sql import _chunk_digest

    cols = ["a", "b", "a", "ü"]
    data = [(1, dt.date(2020, 1, 1), "x", decimal.Decimal("1.50")), (None, dt.datetime(2021, 2, 3, 4, 5), 'é"\n', b"\x01")]
    for given in (data, []):
        whole = [dict(zip(cols, r)) for r in given]
        text = json.dumps([cols, [[_jsonable(r[c]) for c in cols] for r in whole]], sort_keys=False)
        assert _chunk_digest(cols, whole, 1) == hashlib.sha256(text.encode()).hexdigest()
        # A later batch of the same rows is another batch (its place in the result is part of it).
        assert _chunk_digest(cols, whole, 200_001) != _chunk_digest(cols, whole, 1)
