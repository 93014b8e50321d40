"""Write the validated catalog into the warehouse's `catalog` schema (replaced whole each run)."""
from __future__ import annotations

import datetime as dt

import duckdb

from pipelines.catalog.loader import Catalog

DDL = """
create schema if not exists catalog;
create or replace table catalog.settings (as_of date not null, catalog_name varchar);
create or replace table catalog.departments (
    department_id varchar primary key, name varchar not null, channel varchar not null,
    head_name varchar, head_slack varchar);
create or replace table catalog.sources (
    source_id varchar primary key, department_id varchar not null, kind varchar not null,
    location varchar, cadence varchar not null, lag_days integer not null);
create or replace table catalog.kpis (
    kpi_id varchar primary key, name varchar not null, department_id varchar not null,
    source_id varchar not null, owner_name varchar, owner_slack varchar, unit varchar,
    direction varchar not null, frequency varchar not null, aggregation varchar not null,
    scale double not null, tolerance double not null, trajectory varchar not null,
    methodology varchar, tags varchar, targets_from varchar not null);
create or replace table catalog.targets (
    kpi_id varchar not null, point_type varchar not null, value double not null,
    point_date date not null, effective_from date);
create or replace table catalog.milestones (
    milestone_id varchar primary key, title varchar not null, department_id varchar not null,
    kpi_id varchar not null, threshold double not null, due_date date not null,
    owner_name varchar, owner_slack varchar, completed_on date);
"""

DEFAULT_LAG_DAYS = 14


def source_location(src: dict) -> str:
    if src["kind"] == "sql":
        where = src.get("sqlite_path") or f"${src['url_env']}"
        return f"{where} table {src['table']}"
    return src["path"]


def write_catalog(con: duckdb.DuckDBPyConnection, catalog: Catalog, as_of: dt.date) -> dict[str, int]:
    d = dt.date.fromisoformat
    con.execute("begin")
    con.execute(DDL)
    con.execute("insert into catalog.settings values (?, ?)", [as_of, catalog.name])
    con.executemany(
        "insert into catalog.departments values (?, ?, ?, ?, ?)",
        [
            [i, x["name"], x["channel"], x.get("head", {}).get("name"), x.get("head", {}).get("slack")]
            for i, x in catalog.departments.items()
        ],
    )
    con.executemany(
        "insert into catalog.sources values (?, ?, ?, ?, ?, ?)",
        [
            [i, s["department"], s["kind"], source_location(s), s["cadence"], s.get("lag_days", DEFAULT_LAG_DAYS)]
            for i, s in catalog.sources.items()
        ],
    )
    kpi_rows, target_rows = [], []
    for i, k in catalog.kpis.items():
        kpi_rows.append([
            i, k["name"], k["department"], k["source"], k["owner"]["name"], k["owner"].get("slack"),
            k["unit"], k["direction"], k["frequency"], k["aggregation"], float(k.get("scale", 1)),
            float(k["tolerance"]), k.get("trajectory", "linear"), k.get("methodology"),
            ",".join(k.get("tags", [])), k.get("targets_from", "catalog"),
        ])
        if k.get("targets_from", "catalog") == "source":
            continue  # each period's target comes with the data
        target_rows.append([i, "baseline", float(k["baseline"]["value"]), d(k["baseline"]["date"]), None])
        for t in k["targets"]:
            eff = d(t["effective_from"]) if t.get("effective_from") else None
            target_rows.append([i, "target", float(t["value"]), d(t["due"]), eff])
    con.executemany("insert into catalog.kpis values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", kpi_rows)
    if target_rows:
        con.executemany("insert into catalog.targets values (?, ?, ?, ?, ?)", target_rows)
    ms_rows = []
    for i, m in catalog.milestones.items():
        kpi = catalog.kpis[m["kpi"]]
        owner = m.get("owner") or kpi["owner"]  # a milestone without its own owner is the KPI owner's
        ms_rows.append([
            i, m["title"], kpi["department"], m["kpi"], float(m["threshold"]), d(m["due"]),
            owner["name"], owner.get("slack"), d(m["completed_on"]) if m.get("completed_on") else None,
        ])
    if ms_rows:
        con.executemany("insert into catalog.milestones values (?, ?, ?, ?, ?, ?, ?, ?, ?)", ms_rows)
    con.execute("commit")
    return {
        "departments": len(catalog.departments),
        "sources": len(catalog.sources),
        "kpis": len(catalog.kpis),
        "targets": len(target_rows),
        "milestones": len(ms_rows),
    }
