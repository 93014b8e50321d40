"""Warehouse tables of the quality and publication stages (docs/warehouse.md).

Append-only history, each row with the run id that produced it, so a later run (and the audit
report) can show what was known then:
- quality.batch_schemas        one row per landed batch: its columns and types, and the schema verdict
- quality.gx_validation_results one row per GX validation (batch or mart): the GX result as JSON
- quality.drift_findings       one row per finding per run
- quality.drift_runs           one row per drift evaluation (also when it found nothing)
- publish.decisions            one row per department per run: published or blocked, and why
- publish.kpi_figures          one row per published KPI figure per run, with its evidence
and, replaced on every run:
- publish.kpi_status           per catalog KPI: the figure as currently published and its data trust
- quality.quarantine_decisions a view: raw.quarantine with the run that landed each batch
"""
from __future__ import annotations

from pipelines.warehouse import table_exists as exists  # the quality stage's name for it

QUALITY_DDL = """
create schema if not exists quality;
create table if not exists quality.batch_schemas (
    run_id varchar,
    batch_id varchar not null,
    source_id varchar not null,
    columns_json varchar not null,
    verdict varchar not null,
    compared_with varchar,
    changes varchar,
    recorded_at timestamp not null
);
create table if not exists quality.gx_validation_results (
    run_id varchar,
    batch_id varchar not null,
    source_id varchar not null,
    suite varchar not null,
    success boolean not null,
    result_json varchar not null,
    validated_at timestamp not null
);
create table if not exists quality.drift_runs (
    run_id varchar not null,
    detected_at timestamp not null,
    as_of date not null,
    findings integer not null
);
create table if not exists quality.drift_findings (
    run_id varchar not null,
    detected_at timestamp not null,
    as_of date not null,
    finding_key varchar not null,
    kind varchar not null,
    severity varchar not null,
    department_id varchar,
    source_id varchar,
    kpi_id varchar,
    period date not null,
    observed double precision,
    expected double precision,
    lower_bound double precision,
    upper_bound double precision,
    score double precision,
    threshold double precision,
    method varchar,
    detail varchar not null,
    is_latest boolean not null
);
"""

PUBLISH_DDL = """
create schema if not exists publish;
create table if not exists publish.decisions (
    run_id varchar not null,
    decided_at timestamp not null,
    as_of date not null,
    department_id varchar not null,
    published boolean not null,
    reason varchar not null,
    blocking_checks varchar,
    kpis integer not null
);
create table if not exists publish.kpi_figures (
    run_id varchar not null,
    published_at timestamp not null,
    department_id varchar not null,
    kpi_id varchar not null,
    kpi_name varchar,
    unit varchar,
    direction varchar,
    owner_name varchar,
    period date,
    actual double precision,
    numerator double precision,
    denominator double precision,
    expected_value double precision,
    target_value double precision,
    target_date date,
    status varchar not null,
    previous_status varchar,
    forecast_value double precision,
    forecast_status varchar,
    data_trust varchar not null,
    data_trust_reason varchar not null,
    latest_batch_id varchar,
    evidence_json varchar
);
"""

# Rebuilt by the publish step; the columns of publish.kpi_figures plus the decision's.
KPI_STATUS_COLUMNS = """
    department_id varchar, kpi_id varchar, kpi_name varchar, unit varchar, direction varchar,
    owner_name varchar, period date, actual double precision, numerator double precision, denominator double precision,
    expected_value double precision, target_value double precision, target_date date, status varchar,
    previous_status varchar, forecast_value double precision, forecast_status varchar, data_trust varchar,
    data_trust_reason varchar, latest_batch_id varchar, evidence_json varchar,
    published boolean, publication_run_id varchar, published_at timestamp, decision_run_id varchar
"""

QUARANTINE_VIEW = """
create or replace view quality.quarantine_decisions as
select b.run_id, q.*
from raw.quarantine q
join raw.batches b using (batch_id)
"""


def ensure_quality(con) -> None:
    con.execute(QUALITY_DDL)


def ensure_publish(con) -> None:
    con.execute(QUALITY_DDL)
    con.execute(PUBLISH_DDL)
    if exists(con, "raw", "quarantine") and exists(con, "raw", "batches"):
        con.execute(QUARANTINE_VIEW)


def columns(con, schema: str, table: str) -> set[str]:
    return {r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
        [schema, table]).fetchall()}
