"""Reporting, alerting and the run ledger on the Postgres target give what they give on DuckDB.

The two real runs of tests/support/quality_runs.py (run 2: health blocked by a schema change,
a quarantined file, a planted outlier) are built once on DuckDB; each test copies that
warehouse into a fresh PostgreSQL database and into a DuckDB file of its own, makes the same
calls on both, and compares — and checks the planted facts, so that two equally wrong answers
fail too."""
from __future__ import annotations

import datetime as dt
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.warehouse import connect, dialect
from tests.support.pg import fresh_database, pg_env
from tests.support.quality_runs import AFTER_RUNS, quality_runs
from tests.support.warehouse_copy_postgres import copy_warehouse, environment

pytestmark = [pytest.mark.slow, pytest.mark.clock]  # clock: also run with the clock moved (make test-clock)
NOW = AFTER_RUNS  # after the fixture's runs, on the clock they were run with
KPIWATCH = str(Path(sys.executable).parent / "kpiwatch")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return quality_runs(tmp_path_factory)


class Pair:
    """The same warehouse twice: a DuckDB file and a Postgres database (local files beside
    `pg_wh`). `both(fn)` calls fn(con, warehouse_path) on each and returns (duckdb, postgres)."""

    def __init__(self, duck_wh: Path, pg_wh: Path, dbname: str):
        self.duck_wh, self.pg_wh, self.dbname = duck_wh, pg_wh, dbname
        self.env = pg_env(dbname)

    def duck(self, fn, read_only=False):
        with connect(self.duck_wh, read_only=read_only) as con:
            assert dialect(con) == "duckdb"
            return fn(con, self.duck_wh)

    def pg(self, fn, read_only=False):
        with environment(self.env), connect(self.pg_wh, read_only=read_only) as con:
            assert dialect(con) == "postgres"
            return fn(con, self.pg_wh)

    def both(self, fn, read_only=False):
        return self.duck(fn, read_only), self.pg(fn, read_only)

    def cli(self, target: str, *args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_"))}
        # Both targets' commands run on one pinned clock: read from the wall clock, a silence
        # expired on one target at 17:39 and on the other at 17:40 made their outputs differ.
        env["KPIWATCH_NOW"] = (NOW + dt.timedelta(hours=2)).isoformat()
        wh = self.duck_wh if target == "duckdb" else self.pg_wh
        if target == "postgres":
            env.update(self.env)
        return subprocess.run([KPIWATCH, *args, "--warehouse", str(wh)], env=env, capture_output=True, text=True,
                              timeout=300)


@pytest.fixture
def pair(runs, tmp_path):
    src = Path(runs["wh"])
    duck_dir, pg_dir = tmp_path / "duckdb", tmp_path / "postgres"
    for d in (duck_dir, pg_dir):
        d.mkdir()
        if (src.parent / "ledger.jsonl").exists():
            shutil.copy(src.parent / "ledger.jsonl", d / "ledger.jsonl")
    shutil.copy(src, duck_dir / "kpiwatch.duckdb")
    with fresh_database("kpiwatch_rep") as dbname:
        copied = copy_warehouse(src, dbname)
        assert copied["raw.observations"] > 900 and copied["alerting.alert_state"] > 0
        yield Pair(duck_dir / "kpiwatch.duckdb", pg_dir / "kpiwatch.duckdb", dbname)


def same(pair: Pair, a, b) -> bool:
    """Equal, or equal once serialised with the two copies' directories made alike."""
    def norm(x):
        text = json.dumps(x, default=str, sort_keys=True)
        return text.replace(str(pair.duck_wh.parent), "<wh>").replace(str(pair.pg_wh.parent), "<wh>")
    return a == b or norm(a) == norm(b)


# ----------------------------------------------------------------------------- reporting


def test_scorecard_is_the_same_and_shows_the_planted_facts(pair):
    from pipelines.reporting.scorecard import render, scorecard_data

    duck, pg = pair.both(lambda con, wh: scorecard_data(con), read_only=True)
    assert duck == pg
    published = {p["kpi_id"]: p for p in pg["published"]}
    assert len(pg["kpis"]) == 13 and len(published) == 13
    assert {k for k, p in published.items() if p["status"] == "red"} >= {"rtt_18_weeks"}
    assert {k for k, p in published.items() if not p["published"]} == {
        k["kpi_id"] for k in pg["kpis"] if k["department_id"] == "health"}  # health blocked in run 2
    assert render(duck, NOW) == render(pg, NOW)
    page = render(pg, NOW)
    assert "Publication blocked this run" in page and "Off track" in page


def test_scorecard_snapshots_round_trip_on_both(pair):
    from pipelines.reporting.scorecard import save_snapshot, snapshot_as_of

    def keep_and_read(con, wh):
        data = save_snapshot(con, "run-snap", NOW)
        return data, snapshot_as_of(con, dt.date(2100, 1, 1))

    (d_data, (d_snap, d_kept)), (p_data, (p_snap, p_kept)) = pair.both(keep_and_read)
    assert d_snap == p_snap and d_kept == p_kept and p_kept["run_id"] == "run-snap"
    assert d_data == p_data and p_snap == p_data  # kept as it was shown, dates and times included


def test_audit_report_is_the_same_and_has_the_planted_findings(pair, runs):
    from pipelines.reporting.audit import audit_data, render_html

    def audit(con, wh):
        d = audit_data(con)
        d["generated_at"] = NOW
        return d

    duck, pg = pair.both(audit, read_only=True)
    assert same(pair, duck, pg)
    assert render_html(duck, None) == render_html(pg, None)
    assert pg["run_id"] == runs["second"].run_id
    assert {d["department_id"]: d["published"] for d in pg["decisions"]} == {
        "employment": True, "health": False, "transport": True}
    kept = [f for f in pg["figures"] if not f["published_in_run"]]  # the blocked department keeps run 1's
    assert kept and {f["department_id"] for f in kept} == {"health"}
    assert {f["run_id"] for f in kept} == {runs["first"].run_id} and all(f["data_trust"] == "stale" for f in kept)
    assert ("health_returns", "schema_change") in {(q["source_id"], q["reason"]) for q in pg["quarantine_counts"]}
    assert any(s["source_file"].endswith("returns_2026-11.csv") for s in pg["quarantine_samples"])
    assert ("kpi_outlier", "claimant_count") in {(f["kind"], f["kpi_id"]) for f in pg["drift"]}
    assert any(c["check_name"] == "schema_contract" and not c["success"] for c in pg["checks"])


def test_audit_report_of_the_first_run(pair, runs):
    from pipelines.reporting.audit import audit_data

    def audit(con, wh):
        d = audit_data(con, runs["first"].run_id)
        d["generated_at"] = NOW
        return d

    duck, pg = pair.both(audit, read_only=True)
    assert same(pair, duck, pg)
    assert all(d["published"] for d in pg["decisions"]) and pg["alerts"]["log"]
    assert {r["outcome"] for r in pg["alerts"]["log"]} == {"sent"}


def test_run_summary_status_and_restatements_are_the_same(pair, runs):
    from pipelines.reporting.restatements import restatements
    from pipelines.reporting.summary import kpi_status, run_summary

    second = runs["second"].run_id
    duck, pg = pair.both(lambda con, wh: (run_summary(con, second), kpi_status(con), restatements(con),
                                           restatements(con, second)), read_only=True)
    assert same(pair, duck, pg)
    summary, status, _, _ = pg
    assert {p["department_id"]: p["published"] for p in summary["publication"]}["health"] is False
    assert ("health_returns", "schema_change") in {(q["source_id"], q["reason"]) for q in summary["quarantine"]}
    assert {k["kpi_id"]: k["status"] for k in status}["rtt_18_weeks"] == "red"
    assert [c for c in summary["checks"] if c["check_name"] == "schema_contract" and not c["success"]]


def test_explain_trail_is_the_same_for_every_latest_figure(pair):
    from pipelines.reporting.trail import kpi_trail, render_text, to_json

    def trails(con, wh):
        figures = con.execute("select kpi_id, period from marts.fct_kpi_progress where is_latest and actual is not null "
                              "order by kpi_id").fetchall()
        return {f"{k} {p}": (render_text(kpi_trail(con, k, p)), to_json(kpi_trail(con, k, p))) for k, p in figures}

    duck, pg = pair.both(trails, read_only=True)  # as `kpiwatch explain` reads
    assert duck == pg and len(pg) == 13
    text = next(v[0] for k, v in pg.items() if k.startswith("rtt_18_weeks "))
    assert "status red" in text and "sha256" in text


# ----------------------------------------------------------------------------- ledger


def test_ledger_verifies_and_hashes_the_same_on_both(pair, runs):
    from pipelines.ledger import append_record, build_record, canonical, read_chain, verify

    def ledger(con, wh):
        before = verify(con, wh)
        record = build_record(con, "run-3", runs["settings"].catalog_dir)
        row = append_record(con, wh, "run-3", record, NOW)
        again = append_record(con, wh, "run-3", record, NOW)  # a run is recorded once
        return before, canonical(record), row, again, verify(con, wh), read_chain(con)

    duck, pg = pair.both(ledger)
    (d_before, d_rec, d_row, _, d_after, d_chain), (p_before, p_rec, p_row, p_again, p_after, p_chain) = duck, pg
    assert p_before.ok and p_before.records == 2 and p_before.head == d_before.head
    assert d_rec == p_rec and d_row["hash"] == p_row["hash"] and p_again == p_row
    assert p_after.ok and p_after.records == 3 and p_after.notes == () and d_chain == p_chain
    assert (pair.duck_wh.parent / "ledger.jsonl").read_text() == (pair.pg_wh.parent / "ledger.jsonl").read_text()
    record = json.loads(p_rec)
    assert record["outputs"]["publication"] == {} and record["outputs"]["landing"]["batches"] >= 5
    assert record["outputs"]["landing"]["rows_quarantined"] == int(record["outputs"]["landing"]["rows_quarantined"])


def test_an_edited_ledger_record_is_found_on_postgres(pair):
    from pipelines.ledger import verify

    def tamper(con, wh):
        con.execute("update ledger.runs set record = replace(record, '\"rows_in\":', '\"rows_in\": ') where seq = 1")
        return verify(con, wh)

    verdict = pair.pg(tamper)
    assert not verdict.ok and "record 1" in verdict.problem and "hash mismatch" in verdict.problem
    res = pair.cli("postgres", "verify-ledger")
    assert res.returncode == 1 and "ledger broken" in res.stderr


# ----------------------------------------------------------------------------- alerts


def alert_cycle(con, wh, run_id, now, stream=None):
    from alerts.engine import run_alerts
    from alerts.rules import load_rules
    from alerts.sinks import transport_from_env

    opener = lambda: connect(wh)  # noqa: E731  (a second connection, as the asset opens)
    run = run_alerts(opener, load_rules(), transport_from_env(Path(wh).parent / "alerts.jsonl",
                                                               stream=stream or io.StringIO()),
                     run_id=run_id, clock=lambda: now)
    return run


def test_alert_evaluation_is_the_same_and_finds_the_planted_alerts(pair):
    from alerts.conditions import evaluate
    from alerts.rules import load_rules

    def found(con, wh):
        return [(a.rule, a.subject, a.fingerprint, a.severity, a.title, a.text, a.fields, a.labels, a.channel)
                for a in evaluate(con, load_rules())]

    duck, pg = pair.both(found, read_only=True)
    assert duck == pg
    subjects = {(r, s) for r, s, *_ in pg}
    assert {("kpi_off_trajectory", "rtt_18_weeks"), ("source_overdue", "transport_db"),
            ("milestone_off_track", "cancer_75_by_jun_2026"), ("sudden_jump", "job_placements")} <= subjects
    assert any(r == "drift_finding" and "claimant_count" in s for r, s, *_ in pg)
    assert any(r == "critical_check_failed" and s == "health_returns" for r, s, *_ in pg)


def test_alert_delivery_silences_acks_and_digests_are_the_same(pair):
    from alerts.delivery import deliver, outbox_counts
    from alerts.digest import build_digests, queue_digests
    from alerts.rules import load_rules
    from alerts.store import ack, add_silence, expire_silence, list_silences, rows

    def story(con, wh):
        out = {}
        for table in ("alert_state", "alert_log", "outbox", "silences", "acks"):  # as if alerting began now
            con.execute(f"delete from alerting.{table}")
        stream = io.StringIO()
        out["first"] = alert_cycle(con, wh, "a-1", NOW, stream).dispatch.to_dict()
        out["console"] = stream.getvalue()
        out["rerun"] = alert_cycle(con, wh, "a-2", NOW + dt.timedelta(hours=1)).dispatch.to_dict()
        fp = rows(con, "select fingerprint from alerting.alert_state where subject = 'rtt_18_weeks'")[0]["fingerprint"]
        out["silence"] = add_silence(con, "department", "transport", NOW + dt.timedelta(days=30), "works", NOW,
                                     created_by="me").__dict__
        out["silence2"] = add_silence(con, "kpi", "claimant_count", NOW + dt.timedelta(days=30), "known", NOW).__dict__
        expire_silence(con, 2, NOW + dt.timedelta(hours=2))
        out["ack"] = ack(con, fp[:10], "ann", "on it", NOW + dt.timedelta(hours=2)).__dict__
        out["listed"] = [s.__dict__ for s in list_silences(con, NOW + dt.timedelta(hours=3), include_expired=True)]
        later = NOW + dt.timedelta(days=8)  # reminders due, except the acknowledged one
        out["week_later"] = alert_cycle(con, wh, "a-3", later).dispatch.to_dict()
        digests = build_digests(con, load_rules(), now=later)
        out["digests"] = [json.dumps(d.__dict__, default=str, sort_keys=True) for d in digests]
        out["queued"] = (len(queue_digests(con, digests, run_id="d-1", now=later)),
                         len(queue_digests(con, digests, run_id="d-2", now=later)))
        from alerts.sinks import transport_from_env
        out["digest_delivery"] = deliver(lambda: connect(wh), transport_from_env(Path(wh).parent / "alerts.jsonl",
                                                                                  stream=io.StringIO()),
                                         run_id="d-1", fallback_channel="#kpiwatch-alerts", clock=lambda: later).to_dict()
        out["counts"] = outbox_counts(lambda: connect(wh))
        out["state"] = rows(con, "select * from alerting.alert_state order by fingerprint")
        out["log"] = rows(con, "select * from alerting.alert_log order by logged_at, run_id, fingerprint, channel, "
                               "event, outcome")
        out["outbox"] = rows(con, "select * from alerting.outbox order by outbox_id")
        out["jsonl"] = (Path(wh).parent / "alerts.jsonl").read_text()
        return out

    duck, pg = pair.both(story)
    for key in duck:
        if key == "outbox":  # claimed_by names this process on both; attempted_at etc. come from the clocks
            for d, p in zip(duck[key], pg[key]):
                assert {k: v for k, v in d.items() if k != "claimed_by"} == \
                    {k: v for k, v in p.items() if k != "claimed_by"}, key
            assert len(duck[key]) == len(pg[key])
            continue
        assert same(pair, duck[key], pg[key]), key
    first, rerun, later = pg["first"], pg["rerun"], pg["week_later"]
    assert first["fired"] >= 8 and first["new"] == first["fired"] and rerun["notifications"] == 0
    assert later["silenced"] >= 2 and later["acknowledged"] == 1 and later["repeated"] >= 1
    assert pg["queued"][0] == len(pg["digests"]) and pg["queued"][1] == 0
    assert pg["counts"] == {"sent": len(pg["outbox"])}
    assert "Patients waiting under 18 weeks for treatment is red" in pg["console"]


def test_alert_and_ledger_commands_on_postgres(pair):
    """The CLI of the alerting stage and the ledger, on both targets, say the same."""
    steps = [("verify-ledger",), ("alerts", "--format", "json"),
             ("silence", "add", "--kpi", "rtt_18_weeks", "--until", "2099-01-01", "--reason", "planned", "--by", "me"),
             ("silence", "add", "--department", "nowhere", "--until", "2099-01-01", "--reason", "x"),
             ("silence", "list", "--format", "json"), ("silence", "expire", "1"), ("silence", "expire", "1"),
             ("silence", "list", "--all"), ("digest", "--dry-run", "--as-of", "2026-11-20")]
    outputs = {}
    for target in ("duckdb", "postgres"):
        got = []
        for step in steps:
            res = pair.cli(target, *step)
            text = res.stdout
            if step[-1] == "json" and step[0] == "silence":
                text = json.dumps([{k: v for k, v in s.items() if k not in ("created_at", "ends_at", "expired_at")}
                                   for s in json.loads(text)])
            got.append((res.returncode, text.replace(str(pair.duck_wh.parent), "<wh>")
                        .replace(str(pair.pg_wh.parent), "<wh>"), res.stderr.strip()[:200]))
        firing = json.loads(got[1][1])
        fp = next(a["fingerprint"] for a in firing if a["subject"] == "transport_db")
        res = pair.cli(target, "ack", fp[:8], "--by", "ann", "--note", "on it")
        got.append((res.returncode, res.stdout, res.stderr))
        res = pair.cli(target, "alerts", "--format", "json")
        got.append((res.returncode, json.dumps([(a["fingerprint"], a["acknowledged"]) for a in json.loads(res.stdout)]),
                    res.stderr))
        outputs[target] = got
    assert outputs["duckdb"] == outputs["postgres"]
    codes = [c for c, _, _ in outputs["postgres"]]
    assert codes == [0, 0, 0, 2, 0, 0, 2, 0, 0, 0, 0], outputs["postgres"]
    assert "ledger OK: 2 record(s) verified" in outputs["postgres"][0][1]
    assert "unknown department 'nowhere'" in outputs["postgres"][3][2]
    assert "9 digest(s): 6 owner(s), 3 department(s)" in outputs["postgres"][8][1]
    assert [ack for _, ack in json.loads(outputs["postgres"][-1][1]) if ack] == [True]


def test_report_commands_on_postgres(pair, tmp_path):
    outs, cards = {}, {}
    for target in ("duckdb", "postgres"):
        out = tmp_path / f"audit-{target}.html"
        res = pair.cli(target, "report", "--audit", "--no-data-docs", "--out", str(out))
        assert res.returncode == 0, res.stdout + res.stderr
        outs[target] = out.read_text()
        card = tmp_path / f"scorecard-{target}.html"
        res = pair.cli(target, "report", "--out", str(card))
        assert res.returncode == 0, res.stdout + res.stderr
        cards[target] = re.sub(r"generated [0-9: -]+ UTC", "generated", card.read_text())
    assert cards["duckdb"] == cards["postgres"] and "Publication blocked this run" in cards["postgres"]
    strip = lambda page: "\n".join(l for l in page.splitlines() if "generated" not in l)  # noqa: E731
    assert strip(outs["duckdb"]) == strip(outs["postgres"])
    text = html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", outs["postgres"])))
    assert "health blocked" in text and "employment published" in text
    assert "kpi_outlier claimant_count 2026-11" in text and "column added 'notes'" in text


def test_explain_cli_on_postgres(pair):
    res = pair.cli("postgres", "explain", "rtt_18_weeks", "2026-10")
    assert res.returncode == 0, res.stderr[-800:]
    assert res.stdout == pair.cli("duckdb", "explain", "rtt_18_weeks", "2026-10").stdout
    assert "rtt_18_weeks" in res.stdout and "returns_2026-10.csv" in res.stdout
    missing = pair.cli("postgres", "explain", "rtt_18_weeks", "1999-01")
    assert missing.returncode == 2 and "has no figure for 1999-01" in missing.stderr
