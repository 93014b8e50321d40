"""PostgreSQL for the Postgres-target tests: a fresh database per test on this machine's server
(127.0.0.1:5432, trust auth), the environment that points kpiwatch at it, and a copy of a
DuckDB warehouse's tables into it (to run one stage on Postgres from a state DuckDB built)."""
from __future__ import annotations

import contextlib
import os
import uuid

import pytest

ADMIN = dict(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")

DUCK_TO_PG = {"VARCHAR": "text", "DOUBLE": "double precision", "FLOAT": "real", "INTEGER": "integer",
              "BIGINT": "bigint", "HUGEINT": "numeric", "DATE": "date", "TIMESTAMP": "timestamp",
              "TIMESTAMP WITH TIME ZONE": "timestamptz", "BOOLEAN": "boolean", "JSON": "text",
              "SMALLINT": "smallint", "UBIGINT": "numeric", "DECIMAL": "numeric"}


def _admin():
    psycopg = pytest.importorskip("psycopg")
    try:
        return psycopg.connect(**ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if os.environ.get("KPIWATCH_REQUIRE_SERVICES"):
            raise
        pytest.skip(f"PostgreSQL not reachable at 127.0.0.1:5432: {exc}")


@contextlib.contextmanager
def fresh_database(prefix: str = "kpiwatch_t"):
    """A new, empty database (dropped afterwards); yields its name."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with _admin() as admin:
        admin.execute(f'create database "{name}"')
    try:
        yield name
    finally:
        with _admin() as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def pg_env(dbname: str) -> dict[str, str]:
    """Environment variables that make kpiwatch (and dbt) use `dbname` as the warehouse."""
    return {"KPIWATCH_TARGET": "postgres", "KPIWATCH_PG_HOST": ADMIN["host"], "KPIWATCH_PG_PORT": str(ADMIN["port"]),
            "KPIWATCH_PG_USER": ADMIN["user"], "KPIWATCH_PG_PASSWORD": "", "KPIWATCH_PG_DBNAME": dbname}


@pytest.fixture
def pg_warehouse(monkeypatch):
    """A fresh Postgres database set as this test's warehouse target (environment patched)."""
    with fresh_database() as name:
        for key, value in pg_env(name).items():
            monkeypatch.setenv(key, value)
        yield name


def copy_duckdb_to_pg(duckdb_path, dbname: str, schemas: tuple[str, ...] | None = None) -> dict[str, int]:
    """Copy every base table of a DuckDB warehouse (optionally only `schemas`) into `dbname`,
    same schema and table names; returns rows copied per table."""
    import duckdb
    import psycopg

    copied = {}
    src = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        with psycopg.connect(**{**ADMIN, "dbname": dbname}, autocommit=True) as dst:
            for schema, table in src.execute(
                    "select table_schema, table_name from information_schema.tables "
                    "where table_type = 'BASE TABLE' order by 1, 2").fetchall():
                if schemas and schema not in schemas:
                    continue
                cols = src.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = ? and table_name = ? order by ordinal_position", [schema, table]).fetchall()
                defs = ", ".join(f'"{c}" {DUCK_TO_PG.get(t.split("(")[0], "text")}' for c, t in cols)
                dst.execute(f'create schema if not exists "{schema}"')
                dst.execute(f'create table "{schema}"."{table}" ({defs})')
                data = src.execute(f'select * from "{schema}"."{table}"').fetchall()
                with dst.cursor().copy(f'copy "{schema}"."{table}" from stdin') as cp:
                    for r in data:
                        cp.write_row(r)
                copied[f"{schema}.{table}"] = len(data)
    finally:
        src.close()
    return copied
