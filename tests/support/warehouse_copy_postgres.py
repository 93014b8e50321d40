"""A whole kpiwatch warehouse copied from DuckDB into a fresh Postgres database, for comparing
the two targets on the same data. The alerting and ledger tables are created by kpiwatch's own
DDL first, so they carry their keys (the outbox's ``on conflict`` needs them) and then filled;
every other base table is copied as it is (tests/support/pg.py)."""
from __future__ import annotations

import contextlib
import os

import duckdb

from tests.support.pg import ADMIN, copy_duckdb_to_pg, pg_env

OWN_SCHEMAS = ("alerting", "ledger")


@contextlib.contextmanager
def environment(values: dict[str, str]):
    """os.environ patched with `values`, restored afterwards."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def copy_warehouse(duckdb_path, dbname: str) -> dict[str, int]:
    """Copy every base table of the DuckDB warehouse into `dbname`; returns rows per table."""
    import psycopg

    from alerts.store import ensure_schema
    from pipelines.ledger import ensure_ledger
    from pipelines.warehouse import connect

    src = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        tables = src.execute("select table_schema, table_name from information_schema.tables "
                             "where table_type = 'BASE TABLE' order by 1, 2").fetchall()
        own = {}
        for schema, table in tables:
            if schema in OWN_SCHEMAS:
                cur = src.execute(f'select * from "{schema}"."{table}"')
                own[(schema, table)] = ([d[0] for d in cur.description], cur.fetchall())
    finally:
        src.close()
    with environment(pg_env(dbname)), connect("unused") as con:
        ensure_schema(con)
        ensure_ledger(con)
    copied = copy_duckdb_to_pg(duckdb_path, dbname, tuple(sorted({s for s, _ in tables} - set(OWN_SCHEMAS))))
    with psycopg.connect(**{**ADMIN, "dbname": dbname}, autocommit=True) as dst:
        for (schema, table), (cols, data) in own.items():
            with dst.cursor().copy(f'copy "{schema}"."{table}" ({", ".join(cols)}) from stdin') as cp:
                for row in data:
                    cp.write_row(row)
            copied[f"{schema}.{table}"] = len(data)
    return copied
