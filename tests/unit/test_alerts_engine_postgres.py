"""The alert engine's tests (tests/unit/test_alerts_engine.py) on the Postgres target: the same
scenario (tests/unit/test_alerts_warehouse.py) built in a fresh PostgreSQL database, and every
test there that reaches the warehouse through its `wh` fixture run again against it, through
`pipelines.warehouse.connect` with KPIWATCH_TARGET=postgres. Plus what only matters there:
the alerting DDL, the outbox's keys and claims, and silences/acks on Postgres."""
from __future__ import annotations

from datetime import timedelta

import pytest

from alerts.delivery import _Outbox, deliver
from alerts.digest import build_digests, queue_digests
from alerts.engine import dispatch, evaluate
from alerts.sinks import Transport
from alerts.store import AlertingError, ack, add_silence, ensure_schema, expire_silence, list_silences
from pipelines.warehouse import connect, dialect
from tests.support.pg import pg_warehouse  # noqa: F401  (fixture)
from tests.unit.test_alerts_engine import *  # noqa: F401,F403  (the tests, run again here with `wh` below)
from tests.unit.test_alerts_engine import AS_OF, EXPECTED_DRIFT_ALERTS, T0, Clock, MemorySink, cycle, query
from tests.unit.test_alerts_warehouse import DRIFT_ROWS, ROWS, TABLES, documented_columns

# Builds its DuckDB file itself (the Postgres version is below).
del test_drift_findings_of_the_latest_evaluation_alert_and_clear  # noqa: F821

PG_TYPES = {"double": "double precision"}


def build_pg_warehouse(con, drift: bool = False) -> None:
    """tests/unit/test_alerts_warehouse.build_warehouse, in DDL both engines accept."""
    for schema in sorted({table.split(".")[0] for table in TABLES}):
        con.execute(f"create schema if not exists {schema}")
    for table, columns in TABLES.items():
        con.execute(f"drop table if exists {table}")
        con.execute(f"create table {table} ({', '.join(f'{c} {PG_TYPES.get(t, t)}' for c, t in columns)})")
        names = [c for c, _ in columns]
        rows = (DRIFT_ROWS if drift else ROWS).get(table, []) if table in DRIFT_ROWS else ROWS.get(table, [])
        if rows:
            con.executemany(f"insert into {table} values ({', '.join('?' for _ in names)})",
                            [[row.get(name) for name in names] for row in rows])


@pytest.fixture
def pg_opener(pg_warehouse, tmp_path):  # noqa: F811
    opener = lambda: connect(tmp_path / "local" / "kpiwatch.duckdb")  # noqa: E731  (the path only places files)
    with opener() as con:
        assert dialect(con) == "postgres"
    return opener


@pytest.fixture
def wh(pg_opener):
    with pg_opener() as con:
        build_pg_warehouse(con)
    return pg_opener


def test_the_tests_run_on_postgres(wh):
    with wh() as con:
        assert dialect(con) == "postgres"
        assert con.execute("select count(*) from marts.fct_kpi_progress where is_latest").fetchone()[0] == 4


def test_alerting_tables_have_the_documented_columns_and_keys(wh):
    documented = documented_columns()
    with wh() as con:
        ensure_schema(con)
        ensure_schema(con)  # idempotent, including the added columns
        for table in ("alerting.alert_state", "alerting.alert_log", "alerting.outbox", "alerting.silences",
                      "alerting.acks"):
            schema, name = table.split(".")
            actual = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
                "order by ordinal_position", [schema, name]).fetchall()]
            assert actual == documented[table], table
        keys = dict(con.execute(
            "select tc.table_name, kcu.column_name from information_schema.table_constraints tc "
            "join information_schema.key_column_usage kcu using (constraint_schema, constraint_name) "
            "where tc.table_schema = 'alerting' and tc.constraint_type = 'PRIMARY KEY'").fetchall())
    assert keys == {"alert_state": "fingerprint", "outbox": "outbox_id", "silences": "silence_id"}


def test_drift_findings_of_the_latest_evaluation_alert_and_clear_on_postgres(pg_opener, rules, sink, clock):
    with pg_opener() as con:
        build_pg_warehouse(con, drift=True)
        alerts = [a for a in evaluate(con, rules, as_of=AS_OF) if a.kind == "drift"]
    assert [(a.rule, a.subject, a.channel) for a in alerts] == EXPECTED_DRIFT_ALERTS
    outlier, volume = alerts
    assert outlier.fields["Observed"] == "18.5 days" and "expected range 14.9 days to 16.7 days" in outlier.text
    assert volume.fields["Observed"] == "130" and volume.kpi_id is None
    cycle(pg_opener, rules, sink, clock, "run-1")
    with pg_opener() as con:
        con.execute("insert into quality.drift_runs values ('r-next', ?, ?, 0)", [clock.advance(days=1), AS_OF])
    second = cycle(pg_opener, rules, sink, clock, "run-2")
    assert not [a for a in second.alerts if a.kind == "drift"] and second.dispatch.resolved == 2


def test_only_the_latest_batch_and_latest_result_of_a_check_alert(wh, rules):
    """The check_failed condition (a latest-batch and latest-result pick, `qualify` on DuckDB
    before): a re-check that passes clears the failure; an older batch's failure never fires."""
    with wh() as con:
        found = [a for a in evaluate(con, rules, as_of=AS_OF) if a.kind == "check_failed"]
        assert [(a.subject, a.labels["batch_id"]) for a in found] == [("health_csv", "b-health-2")]
        assert found[0].labels["checks"] == ["health_csv.not_null.value"]  # the critical one only
        con.execute("insert into quality.check_results (run_id, batch_id, source_id, department_id, suite, check_name, "
                    "column_name, severity, success, checked_at) values ('r3', 'b-health-2', 'health_csv', 'health', "
                    "'health_csv', 'not_null', 'value', 'critical', true, ?)", [T0])
        assert not [a for a in evaluate(con, rules, as_of=AS_OF) if a.kind == "check_failed"]


def test_a_claim_is_taken_once(wh, rules, clock):
    """Two processes reading the same pending row: only one claim succeeds (the rows changed are
    read through `returning`, which both engines answer)."""
    with wh() as con:
        dispatch(con, evaluate(con, rules, as_of=AS_OF), rules, run_id="run-1", now=T0)
    row = query(wh, "select * from alerting.outbox order by outbox_id limit 1")[0]
    outbox = _Outbox(wh, "run-1", "memory", clock)
    assert outbox.claim(row) is True
    assert outbox.claim(row) is False  # status and attempts moved on: the second reader loses
    assert query(wh, "select status, attempts from alerting.outbox where outbox_id = ?", [row["outbox_id"]]) == [
        {"status": "sending", "attempts": 1}]


def test_a_failed_transaction_leaves_nothing(wh, rules):
    with wh() as con:
        alerts = evaluate(con, rules, as_of=AS_OF)
        with pytest.raises(ValueError):
            dispatch(con, alerts + alerts[:1], rules, run_id="r", now=T0)
        assert con.execute("select count(*) from alerting.outbox").fetchone()[0] == 0
        # A statement failing inside dispatch's transaction rolls back the state written before it.
        con.execute("alter table alerting.alert_log add column must_be_set integer not null default 1")
        con.execute("alter table alerting.alert_log alter column must_be_set drop default")
        con.execute("insert into alerting.silences values (1, 'rule', 'kpi_off_trajectory', 'r', 'me', ?, ?, ?, null)",
                    [T0, T0, T0 + timedelta(days=1)])
        with pytest.raises(Exception, match="must_be_set"):
            dispatch(con, alerts, rules, run_id="r", now=T0)  # the silenced log rows violate not null
        assert con.execute("select count(*) from alerting.outbox").fetchone()[0] == 0
        assert con.execute("select count(*) from alerting.alert_state").fetchone()[0] == 0


def test_silences_and_acks_on_postgres(wh, rules, sink, clock):
    with wh() as con:
        s1 = add_silence(con, "kpi", "wait_time", T0 + timedelta(days=2), "known issue", T0, created_by="me",
                         known=["wait_time", "bus_punctuality"])
        s2 = add_silence(con, "department", "transport", T0 + timedelta(days=2), "migration", T0)
        assert (s1.silence_id, s2.silence_id) == (1, 2)
        with pytest.raises(AlertingError, match="unknown kpi"):
            add_silence(con, "kpi", "nope", T0 + timedelta(days=1), "x", T0, known=["wait_time"])
    run = cycle(wh, rules, sink, clock, "run-1")
    assert run.dispatch.silenced == 5 and run.dispatch.silenced_by  # wait_time x3, transport x2
    assert {n[2] for n in sink.notes()} == {"finance_xlsx", "health_csv"}
    with wh() as con:
        expire_silence(con, s2.silence_id, clock.advance(hours=1))
        assert [s.silence_id for s in list_silences(con, clock.now)] == [1]
        with pytest.raises(AlertingError, match="not active"):
            expire_silence(con, s2.silence_id, clock.now)
        fp = con.execute("select fingerprint from alerting.alert_state where subject = 'finance_xlsx'").fetchone()[0]
        done = ack(con, fp[:7], "ann", "on it", clock.now)
        assert done.fingerprint == fp
        with pytest.raises(AlertingError, match="no alert"):
            ack(con, "ffffffffff", "ann", "x", clock.now)
    before = len(sink.got)
    cycle(wh, rules, sink, clock, "run-2")
    # released when the department's silence ended; the KPI's silence still holds
    assert {n[2] for n in sink.notes(before)} == {"bus_punctuality", "transport_sql"}


def test_digests_are_queued_once_a_week_on_postgres(wh, rules, clock):
    with wh() as con:
        digests = build_digests(con, rules, now=T0, as_of=AS_OF)
        assert {d.channel for d in digests} >= {"U0ANN", "#health-kpis", "C0TRANSPORT"}
        first = queue_digests(con, digests, run_id="d1", now=T0)
        again = queue_digests(con, digests, run_id="d2", now=T0 + timedelta(days=1))
    assert len(first) == len(digests) and again == []
    sink = MemorySink()
    summary = deliver(wh, Transport(sink), run_id="d1", fallback_channel="#ops", clock=Clock())
    assert summary.sent == len(digests) == len(sink.got)
