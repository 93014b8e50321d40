"""The Postgres adapter's SQL translation and target selection (no database needed)."""
import pytest

from pipelines.warehouse import WarehouseConfigError, _pg_placeholders, current_target, pg_describe, pg_sqlalchemy_url


def test_placeholders_become_psycopg_ones_outside_quoted_text():
    sql = "select '?', \"a?b\", x from t where a = ? and b like 'x%' -- why? 100%\nand c = ? and d % 2 = 0"
    assert _pg_placeholders(sql) == (
        "select '?', \"a?b\", x from t where a = %s and b like 'x%%' -- why? 100%%\nand c = %s and d %% 2 = 0")


def test_doubled_quotes_inside_a_literal_do_not_end_it():
    assert _pg_placeholders("select 'it''s ?' , ?") == "select 'it''s ?' , %s"


def test_target_from_the_environment():
    assert current_target({}) == "duckdb"
    assert current_target({"KPIWATCH_TARGET": " Postgres "}) == "postgres"
    with pytest.raises(WarehouseConfigError, match="unknown warehouse target 'sqlite'"):
        current_target({"KPIWATCH_TARGET": "sqlite"})


def test_the_password_stays_a_placeholder_in_urls_and_messages():
    env = {"KPIWATCH_PG_HOST": "db.example", "KPIWATCH_PG_USER": "kpi watch", "KPIWATCH_PG_PASSWORD": "s3cret",
           "KPIWATCH_PG_DBNAME": "kpis"}
    assert pg_sqlalchemy_url(env) == "postgresql+psycopg://kpi%20watch:${KPIWATCH_PG_PASSWORD}@db.example:5432/kpis"
    assert pg_describe(env) == "postgresql://kpi watch@db.example:5432/kpis"
    assert "s3cret" not in pg_sqlalchemy_url(env) + pg_describe(env)
    assert pg_sqlalchemy_url({**env, "KPIWATCH_PG_PASSWORD": ""}).startswith("postgresql+psycopg://kpi%20watch@")


def test_a_port_that_is_not_a_number_names_the_variable():
    with pytest.raises(WarehouseConfigError, match="KPIWATCH_PG_PORT: 'fivefourthreetwo' is not a port number"):
        pg_describe({"KPIWATCH_PG_PORT": "fivefourthreetwo"})
