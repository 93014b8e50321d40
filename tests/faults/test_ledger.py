"""The run ledger: records chain by hash; any edit or deletion is found and named by
`kpiwatch verify-ledger` (exit 1). The ledger of real runs is checked in test_secrets.py."""
from __future__ import annotations

import datetime as dt
import json

import duckdb
import pytest
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.ledger import append_record, build_record, canonical, ledger_path, record_hash, verify
from pipelines.warehouse import connect, ensure_landing

RUNS = ["run-1", "run-2", "run-3"]


@pytest.fixture
def ledgered(tmp_path):
    """A warehouse with three runs' batches and a ledger record for each."""
    wh = tmp_path / "wh" / "kpiwatch.duckdb"
    (tmp_path / "catalog").mkdir()
    (tmp_path / "catalog" / "kpis.yml").write_text("kpis: []\n")
    with connect(wh) as con:
        ensure_landing(con)
        for i, run in enumerate(RUNS, start=1):
            con.execute("insert into raw.batches (batch_id, source_id, department_id, source_file, source_sha256, rows_in,"
                        " rows_accepted, rows_quarantined, loaded_at, run_id) values (?, 's', 'd', ?, ?, ?, ?, 1, now(), ?)",
                        [f"s:{i}", f"f{i}.csv", f"{i:064d}", 10 * i, 10 * i - 1, run])
            append_record(con, wh, run, build_record(con, run, tmp_path / "catalog"), dt.datetime(2026, 11, i))
    return wh


def cli(*args):
    return CliRunner().invoke(app, list(args))


def test_untouched_ledger_verifies(ledgered):
    res = cli("verify-ledger", "--warehouse", str(ledgered))
    assert res.exit_code == 0, res.output
    assert "ledger OK: 3 record(s) verified" in res.output
    with connect(ledgered, read_only=True) as con:
        rows = con.execute("select seq, run_id, record, prev_hash, hash from ledger.runs order by seq").fetchall()
    assert [r[1] for r in rows] == RUNS
    rec = json.loads(rows[1][2])
    assert rec["inputs"]["batches"][0]["source_sha256"] == f"{2:064d}" and rec["inputs"]["batches"][0]["rows_in"] == 20
    assert set(rec["inputs"]["catalog"]) == {"kpis.yml"}
    assert rows[1][3] == rows[0][4] and rows[1][4] == record_hash(rows[0][4], rows[1][2])


def test_a_run_is_recorded_once(ledgered):
    with connect(ledgered) as con:
        append_record(con, ledgered, "run-2", {"run_id": "run-2", "other": 1}, dt.datetime(2026, 12, 1))
        assert con.execute("select count(*) from ledger.runs").fetchone()[0] == 3
    assert len(ledger_path(ledgered).read_text().splitlines()) == 3


def _sql(wh, *statements):
    con = duckdb.connect(str(wh))
    try:
        for s in statements:
            con.execute(s)
    finally:
        con.close()


def _rehash_from(wh, seq: int, edit) -> None:
    """What a careful forger does: edit record `seq`, then recompute every hash after it."""
    con = duckdb.connect(str(wh))
    try:
        rows = con.execute("select seq, record, prev_hash from ledger.runs order by seq").fetchall()
        prev = None
        for s, body, prev_hash in rows:
            if s < seq:
                prev = con.execute("select hash from ledger.runs where seq = ?", [s]).fetchone()[0]
                continue
            if s == seq:
                body = canonical(edit(json.loads(body)))
            h = record_hash(prev, body)
            con.execute("update ledger.runs set record = ?, prev_hash = ?, hash = ? where seq = ?", [body, prev, h, s])
            prev = h
    finally:
        con.close()


def _fewer_rows(rec):
    rec["inputs"]["batches"][0]["rows_in"] = 2
    return rec


TAMPERING = {
    "record edited in the warehouse": (
        lambda wh: _sql(wh, "update ledger.runs set record = replace(record, '\"rows_in\":20', '\"rows_in\":2') where seq = 2"),
        "ledger.runs: record 2 (run run-2) was changed after it was written"),
    "record edited and the chain recomputed": (
        lambda wh: _rehash_from(wh, 2, _fewer_rows),
        "ledger.runs: record 2 (run run-2) differs from its copy in ledger.jsonl"),
    "middle record deleted": (
        lambda wh: _sql(wh, "delete from ledger.runs where seq = 2"),
        "ledger.runs: record 2 is missing"),
    "latest record deleted": (
        lambda wh: _sql(wh, "delete from ledger.runs where seq = 3"),
        "record 3 (run run-3) is missing from the warehouse"),
    "run id swapped": (
        lambda wh: _sql(wh, "update ledger.runs set run_id = 'run-x' where seq = 1"),
        "record 1 (run run-x) has a run id that differs"),
    "file copy edited": (
        lambda wh: ledger_path(wh).write_text(ledger_path(wh).read_text().replace('\\"rows_accepted\\":29', '\\"rows_accepted\\":30')),
        "ledger.jsonl: record 3 (run run-3) was changed after it was written"),
}


@pytest.mark.parametrize("name", list(TAMPERING))
def test_tampering_is_detected_and_the_first_broken_record_named(ledgered, name):
    tamper, expected = TAMPERING[name]
    assert verify_ok(ledgered)
    tamper(ledgered)
    res = cli("verify-ledger", "--warehouse", str(ledgered))
    assert res.exit_code == 1, res.output
    assert expected in " ".join(res.output.split()), res.output
    js = cli("verify-ledger", "--warehouse", str(ledgered), "--format", "json")
    assert js.exit_code == 1 and json.loads(js.output)["ok"] is False


def verify_ok(wh) -> bool:
    with connect(wh, read_only=True) as con:
        return verify(con, wh).ok


def test_a_crash_before_the_file_copy_is_caught_up(ledgered):
    """Killed between the warehouse commit and the file append: verify notes it, the next
    record brings the file up to date."""
    path = ledger_path(ledgered)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:2]))
    res = cli("verify-ledger", "--warehouse", str(ledgered))
    assert res.exit_code == 0 and "1 record(s) not yet in ledger.jsonl" in res.output, res.output
    with connect(ledgered) as con:
        append_record(con, ledgered, "run-4", build_record(con, "run-4"), dt.datetime(2026, 12, 4))
    assert [json.loads(ln)["seq"] for ln in path.read_text().splitlines()] == [1, 2, 3, 4]
    assert verify_ok(ledgered)


def test_verify_ledger_without_a_warehouse_or_while_busy(tmp_path, ledgered):
    res = cli("verify-ledger", "--warehouse", str(tmp_path / "none.duckdb"))
    assert res.exit_code == 2 and "does not exist yet" in " ".join(res.output.split())
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                               "print('held', flush=True); time.sleep(60)", str(ledgered)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = cli("verify-ledger", "--warehouse", str(ledgered))
        assert res.exit_code == 3 and "warehouse busy" in " ".join(res.output.split()), res.output
    finally:
        holder.kill()
        holder.wait()
