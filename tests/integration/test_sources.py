"""Department sources as they really arrive: each quirk with its landed and quarantined counts
(accepted + quarantined = input), SQL sources on PostgreSQL, MariaDB and SQLite, HTTP paging."""
import datetime as dt
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from pipelines.catalog.loader import load_catalog
from pipelines.ingest.landing import ingest_source
from pipelines.warehouse import connect
from tests.support.catalogs import kpi, write_catalog

AS_OF = dt.date(2026, 11, 15)


def land(tmp_path, sources, kpis, data_dir, source_id, environ=None, wh=None):
    cat = load_catalog(write_catalog(tmp_path / "catalog", sources, kpis))
    wh = wh or tmp_path / "w.duckdb"
    with connect(wh) as con:
        report = ingest_source(con, cat, source_id, data_dir, AS_OF, "run", environ=environ or {})
    for b in report.batches:
        assert b.rows_accepted + b.rows_quarantined == b.rows_in
    return report


def observations(wh, source_id):
    with connect(wh, read_only=True) as con:
        return con.execute(
            "select kpi_id, org_id, period, value, numerator, denominator, target from raw.observations "
            "where source_id = ? order by kpi_id, org_id, period", [source_id]).fetchall()


# ---------------------------------------------------------------- CSV quirks

CSV_SOURCE = {
    "id": "csv_src", "department": "dept", "kind": "csv", "path": "in/*.csv", "cadence": "monthly",
    "columns": {"kpi_id": "KPI", "period": "Month", "org_id": "Area", "value": {"column": "Value", "unit": "percent"}},
}


@pytest.mark.parametrize("encoding,bom,delimiter", [
    ("utf-8", False, ","), ("utf-8", True, ","), ("cp1252", False, ";"), ("utf-8", False, "\t"),
])
def test_csv_encodings_and_delimiters(tmp_path, encoding, bom, delimiter):
    d = delimiter
    text = (f'KPI{d}Month{d}Area{d}Value\n'
            f'rate{d}2026-01{d}"  Bromley – North  "{d}"1,234.5"\n'
            f'rate{d}Feb 2026{d}Café Quarter{d}95%\n'
            f'rate{d}2026-03{d}"Comma, Town"{d} 12 \n')
    raw = text.encode(encoding)
    (tmp_path / "data" / "in").mkdir(parents=True)
    (tmp_path / "data" / "in" / "f.csv").write_bytes((b"\xef\xbb\xbf" if bom else b"") + raw)
    report = land(tmp_path, [CSV_SOURCE], [kpi("rate", "csv_src")], tmp_path / "data", "csv_src")
    [b] = report.batches
    assert (b.rows_in, b.rows_accepted, b.rows_quarantined) == (3, 3, 0)
    rows = observations(tmp_path / "w.duckdb", "csv_src")
    assert [(r[1], r[2].isoformat(), r[3]) for r in rows] == [
        ("Bromley – North", "2026-01-01", 1234.5), ("Café Quarter", "2026-02-01", 95.0), ("Comma, Town", "2026-03-01", 12.0)]


def test_missing_markers_and_bad_values_are_quarantined_by_name(tmp_path):
    body = "KPI,Month,Area,Value\n" + "".join(
        f"rate,2026-0{i + 1},A{i},{v}\n" for i, v in enumerate(["-", "N/A", "..", "*", "12O", "7", "", "1e309"]))
    (tmp_path / "data" / "in").mkdir(parents=True)
    (tmp_path / "data" / "in" / "f.csv").write_text(body)
    report = land(tmp_path, [CSV_SOURCE], [kpi("rate", "csv_src")], tmp_path / "data", "csv_src")
    [b] = report.batches
    assert (b.rows_in, b.rows_accepted, b.rows_quarantined) == (8, 1, 7)
    assert b.reasons == {"missing_value": 5, "unparseable_number": 2}
    assert [r[3] for r in observations(tmp_path / "w.duckdb", "csv_src")] == [7.0]  # never a zero


def test_binary_junk_and_oversized_file_are_named(tmp_path):
    (tmp_path / "data" / "in").mkdir(parents=True)
    (tmp_path / "data" / "in" / "junk.csv").write_bytes(bytes(range(256)) * 4)
    (tmp_path / "data" / "in" / "big.csv").write_text("KPI,Month,Area,Value\n" + "rate,2026-01,A,1\n" * 20000)
    src = dict(CSV_SOURCE, max_file_mb=0.1)
    report = land(tmp_path, [src], [kpi("rate", "csv_src")], tmp_path / "data", "csv_src")
    errors = {b.source_file: b.outcomes[0].observed for b in report.batches}
    assert "binary content" in errors["in/junk.csv"]
    assert "over the 0.1 MB limit" in errors["in/big.csv"]
    assert all(b.reasons == {"unreadable_source": 1} for b in report.batches)


# ---------------------------------------------------------------- Excel

def test_excel_return_with_title_rows_notes_and_header_label(tmp_path):
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.title = "Cover"
    wb.active.append(["This workbook is the monthly return"])
    ws = wb.create_sheet("Data")
    ws.append(["Housing Service - KPI return"])
    ws.append(["Figures are provisional"])
    ws.append([])
    ws.append(["Indicator", "Period", "Homes delivered", "Notes"])
    ws.append(["Homes delivered", dt.datetime(2026, 1, 1), 120, None])
    ws.append(["Homes delivered", "2026-02", "1,045", "revised"])
    ws.append(["Homes delivered", "2026-03", "-", "not yet known"])
    ws.append(["Voids", "2026-03", 3, None])
    ws.append([])
    ws.append(["Notes: '-' means not yet known"])
    (tmp_path / "data" / "xl").mkdir(parents=True)
    wb.save(tmp_path / "data" / "xl" / "return.xlsx")
    src = {"id": "xl", "department": "dept", "kind": "excel", "path": "xl/*.xlsx", "sheet": 2,
           "header_label": "Indicator", "cadence": "monthly",
           "columns": {"kpi_id": {"column": "Indicator", "map": {"Homes delivered": "homes"}},
                       "period": "Period", "value": "Homes delivered"}}
    report = land(tmp_path, [src], [kpi("homes", "xl")], tmp_path / "data", "xl")
    [b] = report.batches
    # the notes line is a row too: not a mapped indicator -> quarantined, never dropped silently
    assert (b.rows_in, b.rows_accepted, b.rows_quarantined) == (5, 2, 3)
    assert b.reasons == {"missing_value": 1, "unknown_kpi_id": 2}


def test_legacy_xls(tmp_path):
    import xlwt

    wb = xlwt.Workbook()
    ws = wb.add_sheet("KPIs")
    for r, row in enumerate([["KPI", "Period", "Value"], ["homes", "2019/20 Q1", 10], ["homes", "2019/20 Q2", "N/A"]]):
        for c, v in enumerate(row):
            ws.write(r, c, v)
    (tmp_path / "data" / "xl").mkdir(parents=True)
    wb.save(str(tmp_path / "data" / "xl" / "old.xls"))
    src = {"id": "xl", "department": "dept", "kind": "excel", "path": "xl/*.xls", "sheet": "KPIs",
           "cadence": "quarterly", "columns": {"kpi_id": "KPI", "period": "Period", "value": "Value"}}
    report = land(tmp_path, [src], [kpi("homes", "xl", frequency="quarterly")], tmp_path / "data", "xl")
    [b] = report.batches
    assert (b.rows_in, b.rows_accepted, b.rows_quarantined) == (2, 1, 1)
    [(k, _, period, value, *_)] = observations(tmp_path / "w.duckdb", "xl")
    assert (k, period, value) == ("homes", dt.date(2019, 4, 1), 10.0)


def test_missing_sheet_is_named(tmp_path):
    from openpyxl import Workbook

    (tmp_path / "data" / "xl").mkdir(parents=True)
    Workbook().save(tmp_path / "data" / "xl" / "r.xlsx")
    src = {"id": "xl", "department": "dept", "kind": "excel", "path": "xl/*.xlsx", "sheet": "Data",
           "cadence": "monthly", "columns": {"kpi_id": "KPI", "period": "Period", "value": "Value"}}
    [b] = land(tmp_path, [src], [kpi("homes", "xl")], tmp_path / "data", "xl").batches
    assert "sheet 'Data' not found (sheets: 'Sheet')" in b.outcomes[0].observed


# ---------------------------------------------------------------- SQL

def _pg_url():
    return "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _maria_url():
    return "mysql+pymysql://root@127.0.0.1:3306/test"


def _engine_or_skip(url):
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        if os.environ.get("KPIWATCH_REQUIRE_SERVICES"):
            raise
        pytest.skip(f"database not reachable ({url.split('@')[-1]}): {str(exc.orig).splitlines()[0]}")
    return engine


@pytest.mark.parametrize("url_fn", [_pg_url, _maria_url, None], ids=["postgresql", "mariadb", "sqlite"])
def test_sql_source_incremental_by_watermark(tmp_path, url_fn):
    import sqlalchemy as sa

    table = f"kpiwatch_test_{os.getpid()}"
    if url_fn is None:
        (tmp_path / "data").mkdir()
        url = f"sqlite:///{tmp_path / 'data' / 'src.sqlite'}"
    else:
        url = url_fn()
    engine = _engine_or_skip(url)
    meta = sa.MetaData()
    t = sa.Table(table, meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("indicator", sa.String(40)),
                 sa.Column("month", sa.String(10)), sa.Column("amount", sa.Numeric(12, 2)),
                 sa.Column("updated_at", sa.DateTime))
    meta.drop_all(engine)
    meta.create_all(engine)
    try:
        with engine.begin() as c:
            c.execute(t.insert(), [
                {"id": i, "indicator": "homes", "month": f"2026-0{i}", "amount": 10 * i,
                 "updated_at": dt.datetime(2026, 6, i)} for i in range(1, 4)])
        src = {"id": "db", "department": "dept", "kind": "sql", "url_env": "KPIWATCH_TEST_DB_URL", "table": table,
               "watermark_column": "updated_at", "cadence": "monthly",
               "columns": {"kpi_id": "indicator", "period": "month", "value": "amount"}}
        env = {"KPIWATCH_TEST_DB_URL": url}
        first = land(tmp_path, [src], [kpi("homes", "db")], tmp_path / "data", "db", environ=env)
        assert [b.rows_in for b in first.batches] == [3]
        assert first.batches[0].rows_accepted == 3
        with engine.begin() as c:
            c.execute(t.insert(), [{"id": 4, "indicator": "homes", "month": "2026-04", "amount": 44.5,
                                    "updated_at": dt.datetime(2026, 6, 10)}])
        second = land(tmp_path, [src], [kpi("homes", "db")], tmp_path / "data", "db", environ=env)
        assert [b.rows_in for b in second.batches] == [1]  # only the new row
        assert land(tmp_path, [src], [kpi("homes", "db")], tmp_path / "data", "db", environ=env).batches == []
        values = [r[3] for r in observations(tmp_path / "w.duckdb", "db")]
        assert values == [10.0, 20.0, 30.0, 44.5]
    finally:
        meta.drop_all(engine)
        engine.dispose()


def test_sql_query_with_bound_parameter_and_secret_free_errors(tmp_path):
    import sqlalchemy as sa

    (tmp_path / "data").mkdir()
    url = f"sqlite:///{tmp_path / 'data' / 'src.sqlite'}"
    with sa.create_engine(url).begin() as c:
        c.execute(sa.text("create table r (k text, p text, v real, region text)"))
        c.execute(sa.text("insert into r values ('homes','2026-01',1,'north'), ('homes','2026-01',2,'south')"))
    src = {"id": "db", "department": "dept", "kind": "sql", "url_env": "DB_URL", "cadence": "monthly",
           "query": "select k, p, v from r where region = :region", "params": {"region": "south'; drop table r; --"},
           "columns": {"kpi_id": "k", "period": "p", "value": "v"}}
    [b] = land(tmp_path, [src], [kpi("homes", "db")], tmp_path / "data", "db", environ={"DB_URL": url}).batches
    assert b.rows_in == 0  # the parameter is a value, never SQL
    with sa.create_engine(url).connect() as c:
        assert c.execute(sa.text("select count(*) from r")).scalar() == 2
    src["params"] = {"region": "south"}
    [b] = land(tmp_path, [src], [kpi("homes", "db")], tmp_path / "data", "db", environ={"DB_URL": url}).batches
    assert b.rows_in == 1
    secret = "postgresql+psycopg://kpi:s3cr3t-pw@127.0.0.1:1/none"
    report = land(tmp_path, [src], [kpi("homes", "db")], tmp_path / "data", "db", environ={"DB_URL": secret})
    assert report.error and "s3cr3t-pw" not in report.error and "query failed" in report.error


# ---------------------------------------------------------------- HTTP

class _OpenData:
    """A local open-data server: Socrata-style and CKAN-style paging, failures on demand."""

    def __init__(self, rows):
        self.rows, self.fail_next, self.delay_next, self.requests = rows, 0, 0.0, []

    def __enter__(self):
        server = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                server.requests.append((parts.path, q))
                if server.delay_next:
                    delay, server.delay_next = server.delay_next, 0
                    time.sleep(delay)
                if server.fail_next:
                    server.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                if parts.path == "/resource/kpis.json":
                    off, lim = int(q.get("$offset", 0)), int(q.get("$limit", 1000))
                    body = json.dumps(server.rows[off:off + lim])
                elif parts.path == "/api/3/action/datastore_search":
                    off, lim = int(q.get("offset", 0)), int(q.get("limit", 100))
                    body = json.dumps({"success": True, "result": {"records": server.rows[off:off + lim],
                                                                     "total": len(server.rows)}})
                elif parts.path == "/kpis.csv":
                    body = "kpi,month,value\n" + "".join(f"{r['kpi']},{r['month']},{r['value']}\n" for r in server.rows)
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


ROWS = [{"kpi": "homes", "month": f"2025-{m:02d}", "value": str(m)} for m in range(1, 13)] + \
       [{"kpi": "homes", "month": "2026-01", "value": "n/a"}]


def http_source(url, **extra):
    return {"id": "api", "department": "dept", "kind": "http", "url": url, "cadence": "monthly",
            "columns": {"kpi_id": "kpi", "period": "month", "value": "value"}, **extra}


@pytest.mark.parametrize("style,path", [("socrata", "/resource/kpis.json"), ("ckan", "/api/3/action/datastore_search")])
def test_http_paging(tmp_path, style, path):
    paging = {"style": style, "page_size": 5} | ({"resource_id": "abc"} if style == "ckan" else {})
    with _OpenData(ROWS) as srv:
        [b] = land(tmp_path, [http_source(srv.base + path, paging=paging)], [kpi("homes", "api")], tmp_path, "api").batches
        assert len(srv.requests) == 3  # 5 + 5 + 3 rows
    assert (b.rows_in, b.rows_accepted, b.rows_quarantined) == (13, 12, 1)
    assert b.reasons == {"missing_value": 1}


def test_http_csv_500_then_success_and_timeout(tmp_path, monkeypatch):
    from pipelines.ingest import http

    monkeypatch.setattr(http, "BACKOFF_SECONDS", 0.01)
    with _OpenData(ROWS) as srv:
        srv.fail_next = 2
        src = http_source(srv.base + "/kpis.csv", format="csv", retries=3)
        [b] = land(tmp_path, [src], [kpi("homes", "api")], tmp_path, "api").batches
        assert b.rows_in == 13 and len(srv.requests) == 3
        srv.fail_next = 5
        report = land(tmp_path, [dict(src, retries=1)], [kpi("homes", "api")], tmp_path, "api", wh=tmp_path / "w2.duckdb")
        assert report.error.endswith("failed after 2 attempt(s): HTTP 500")
        srv.fail_next, srv.delay_next = 0, 1.5
        report = land(tmp_path, [dict(src, retries=0, timeout_seconds=0.3)], [kpi("homes", "api")], tmp_path, "api",
                      wh=tmp_path / "w3.duckdb")
        assert "timed out" in report.error


def test_wide_to_long_one_column_per_kpi(tmp_path):
    (tmp_path / "data" / "in").mkdir(parents=True)
    (tmp_path / "data" / "in" / "wide.csv").write_text(
        "Month,Homes delivered,Voids %,Notes\n"
        "2026-01,120,2.5%,\n"
        "2026-02,-,3.1%,late\n"
        "2026-03,131,oops,\n")
    src = {"id": "wide_src", "department": "dept", "kind": "csv", "path": "in/*.csv", "cadence": "monthly",
           "columns": {"period": "Month"},
           "wide": {"kpi_columns": {"Homes delivered": "homes", "Voids %": "voids"}, "unit": "percent"}}
    report = land(tmp_path, [src], [kpi("homes", "wide_src"), kpi("voids", "wide_src")], tmp_path / "data", "wide_src")
    [b] = report.batches
    assert (b.rows_in, b.rows_accepted, b.rows_quarantined) == (6, 4, 2)  # cells
    assert b.reasons == {"missing_value": 1, "unparseable_number": 1}
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        got = con.execute("select kpi_id, period, value, row_number from raw.observations order by kpi_id, period").fetchall()
        q = con.execute("select row_number, reason from raw.quarantine order by row_number").fetchall()
    assert [(k, p.isoformat()[:7], v, r) for k, p, v, r in got] == [
        ("homes", "2026-01", 120.0, 1), ("homes", "2026-03", 131.0, 3), ("voids", "2026-01", 2.5, 1), ("voids", "2026-02", 3.1, 2)]
    assert q == [(2, "missing_value"), (3, "unparseable_number")]  # file rows, not cell numbers


def test_duplicate_header_refuses_the_file(tmp_path):
    (tmp_path / "data" / "in").mkdir(parents=True)
    (tmp_path / "data" / "in" / "dup.csv").write_text("KPI,Month,Area,Value,Value\nrate,2026-01,A,1,2\n")
    [b] = land(tmp_path, [CSV_SOURCE], [kpi("rate", "csv_src")], tmp_path / "data", "csv_src").batches
    assert b.reasons == {"unreadable_source": 1}
    assert "in/dup.csv: duplicate column name(s) 'Value' in the header" == b.outcomes[0].observed
