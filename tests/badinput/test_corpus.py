"""A generated corpus of hostile and broken inputs, each landed through the real ingest layer
(reader → parsing → GX validation → DuckDB landing, on a warehouse file in tmp_path).

For every input: ingest finishes, every input row is landed or quarantined with a named reason
(landed + quarantined = rows in, in the report and in the tables), and the user gets one line
naming the file and the problem. Nothing binary is committed: each file is written here.
The whole graph (dbt, alerts) runs on one of these files in tests/faults/test_secrets.py.
"""
from __future__ import annotations

import csv
import datetime as dt
import io
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from pipelines.catalog.loader import CatalogError, load_catalog
from pipelines.ingest.landing import ingest_source
from pipelines.warehouse import connect
from tests.support.catalogs import kpi, write_catalog

AS_OF = dt.date(2026, 11, 15)
HEADER = ["kpi", "month", "org", "value"]
GOOD = [["homes", "2026-09", "A", "10"], ["jobs", "2026-09", "A", "20"], ["homes", "2026-10", "A", "11"]]
SQL_TEXT = "x'); drop table raw.observations; --"


def csv_text(rows: list[list[str]], header=HEADER) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


@dataclass
class Case:
    """One hostile input: the file(s) to drop and what must come out of it."""
    name: str
    files: dict[str, bytes | list]          # file name -> bytes, or rows for an .xlsx (list of sheets)
    rows_in: int                            # input units: data rows (a refused file is one unit)
    landed: int
    reasons: dict[str, int]                 # quarantine reason -> rows
    says: tuple[str, ...]                   # the one-line message names these (file, problem)
    source: dict = field(default_factory=dict)  # overrides of the source definition


def xlsx(path: Path, sheets: list[tuple[str, list[list]]]) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    for title, rows in sheets:
        ws = wb.create_sheet(title)
        for r in rows:
            ws.append(r)
    wb.save(path)


def _cases() -> list[Case]:
    good = csv_text(GOOD)
    return [
        Case("truncated mid-row", {"trunc.csv": good.encode()[:-9]}, 3, 2, {"unparseable_period": 1},
             ("trunc.csv", "unparseable_period")),
        Case("truncated inside a quoted field", {"quote.csv": (good + 'jobs,2026-10,"A, unfinished').encode()},
             4, 3, {"missing_value": 1}, ("quote.csv", "missing_value")),
        Case("cp1252 bytes, encoding set to utf-8", {"enc.csv": csv_text([["homes", "2026-09", "Zürich", "5"]]).encode("cp1252")},
             1, 0, {"unreadable_source": 1}, ("enc.csv", "not valid utf-8"), {"encoding": "utf-8"}),
        Case("cp1252 bytes, detected", {"enc_auto.csv": csv_text([["homes", "2026-09", "Zürich", "5"]]).encode("cp1252")},
             1, 1, {}, ("enc_auto.csv", "1 rows landed")),
        Case("UTF-16 text", {"utf16.csv": good.encode("utf-16")}, 1, 0, {"unreadable_source": 1},
             ("utf16.csv", "binary content")),
        Case("binary junk named .csv", {"junk.csv": bytes(range(256)) * 8 + os.urandom(512)}, 1, 0,
             {"unreadable_source": 1}, ("junk.csv", "binary content, not a text file")),
        Case("over the size limit", {"big.csv": csv_text(GOOD * 200).encode()}, 1, 0, {"unreadable_source": 1},
             ("big.csv", "over the 0.01 MB limit"), {"max_file_mb": 0.01}),
        Case("empty file", {"empty.csv": b""}, 1, 0, {"empty_batch": 1}, ("empty.csv", "no data rows")),
        Case("header only", {"header.csv": csv_text([]).encode()}, 1, 0, {"empty_batch": 1},
             ("header.csv", "no data rows")),
        Case("future and far-past periods",
             {"dates.csv": csv_text([["homes", "2999-01", "A", "1"], ["homes", "2026-12", "A", "1"],
                                     ["homes", "1066-10", "A", "1"], ["homes", "0001-01", "A", "1"],
                                     ["homes", "1999-12", "A", "1"], ["homes", "2026-10-17", "A", "1"],
                                     ["homes", "2009-01", "A", "1"]]).encode()},
             # 1999-12 is more than ten years before the KPI's baseline (2018-12): implausible;
             # 2009-01 is within them and lands.
             7, 1, {"period_in_future": 2, "period_out_of_range": 3, "period_not_aligned": 1},
             ("dates.csv", "period_in_future", "period_out_of_range")),
        Case("1e309, NaN, --5, inf, 1e-400",
             {"numbers.csv": csv_text([["homes", "2026-01", "A", "1e309"], ["homes", "2026-02", "A", "NaN"],
                                       ["homes", "2026-03", "A", "--5"], ["homes", "2026-04", "A", "-inf"],
                                       ["homes", "2026-05", "A", "1e-400"], ["homes", "2026-06", "A", "0x10"]]).encode()},
             6, 1, {"unparseable_number": 5}, ("numbers.csv", "unparseable_number")),
        Case("SQL-looking text",
             {"sql.csv": csv_text([["homes", "2026-09", SQL_TEXT, "3"],
                                   ["homes'; delete from raw.batches; --", "2026-09", "A", "3"],
                                   ["jobs", "2026-09", "Robert'); DROP TABLE Students;--", "4"]]).encode()},
             3, 2, {"unknown_kpi_id": 1}, ("sql.csv", "unknown_kpi_id")),
        Case("KPI ids with quotes and path separators",
             {"ids.csv": csv_text([['ho"mes', "2026-09", "A", "1"], ["../../etc/passwd", "2026-09", "A", "1"],
                                   ["homes/../jobs", "2026-09", "A", "1"], ["C:\\kpi\\homes", "2026-09", "A", "1"],
                                   ["homes", "2026-09", "A", "1"]]).encode()},
             5, 1, {"unknown_kpi_id": 4}, ("ids.csv", "unknown_kpi_id")),
        Case("NUL byte in a text file", {"nul.csv": csv_text([["homes\x00", "2026-09", "A", "1"], *GOOD]).encode()},
             1, 0, {"unreadable_source": 1}, ("nul.csv", "binary content")),
        Case("Excel formula cells", {"formulas.xlsx": [("KPI return", [
            HEADER, ["homes", "2026-09", "A", "=1/0"], ["jobs", "2026-09", "A", "=SUM(1,2)"],
            ["=HYPERLINK(\"http://evil.example\",\"homes\")", "2026-09", "A", 4],
            ["homes", "2026-10", "A", "=cmd|' /C calc'!A0"], ["jobs", "2026-10", "A", 7]])]},
             5, 1, {"missing_value": 3, "missing_kpi_id": 1}, ("formulas.xlsx", "missing_value"), {"kind": "excel"}),
        Case("empty sheet", {"blank.xlsx": [("KPI return", [])]}, 1, 0, {"empty_batch": 1},
             ("blank.xlsx", "no data rows"), {"kind": "excel"}),
        Case("sheet missing", {"other.xlsx": [("Notes", [HEADER, *GOOD])]}, 1, 0, {"unreadable_source": 1},
             ("other.xlsx", "sheet 'KPI return' not found"), {"kind": "excel"}),
        Case("not a workbook", {"fake.xlsx": b"PK\x03\x04 this is not a zip archive"}, 1, 0, {"unreadable_source": 1},
             ("fake.xlsx", "not a readable .xlsx workbook"), {"kind": "excel"}),
    ]


CASES = _cases()


def _source(over: dict) -> dict:
    kind = over.get("kind", "csv")
    src = {"id": "returns", "department": "dept", "kind": kind, "path": f"*.{'xlsx' if kind == 'excel' else 'csv'}",
           "cadence": "monthly", "columns": {"kpi_id": "kpi", "period": "month", "org_id": "org", "value": "value"}}
    if kind == "excel":
        src["sheet"] = "KPI return"
    src.update({k: v for k, v in over.items() if k != "kind"})
    return src


def ingest_case(tmp_path: Path, case: Case):
    cat_dir = write_catalog(tmp_path / "catalog", [_source(case.source)], [kpi("homes", "returns"), kpi("jobs", "returns")])
    catalog = load_catalog(cat_dir)
    data = tmp_path / "data"
    data.mkdir()
    for name, content in case.files.items():
        if isinstance(content, bytes):
            (data / name).write_bytes(content)
        else:
            xlsx(data / name, content)
    wh = tmp_path / "wh.duckdb"
    with connect(wh) as con:
        report = ingest_source(con, catalog, "returns", data, AS_OF, "run-badinput")
        tables = {
            "batches": con.execute("select sum(rows_in), sum(rows_accepted), sum(rows_quarantined) from raw.batches").fetchone(),
            "observations": con.execute("select count(*) from raw.observations").fetchone()[0],
            "quarantine": dict(con.execute("select reason, count(*) from raw.quarantine group by 1").fetchall()),
            "unnamed": con.execute("select count(*) from raw.quarantine where coalesce(reason, '') = ''").fetchone()[0],
        }
    return report, tables, wh


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_input_is_landed_or_quarantined_and_named(tmp_path, case):
    report, tables, wh = ingest_case(tmp_path, case)
    assert report.error is None
    assert len(report.batches) == 1
    b = report.batches[0]
    # Counts add up, in the report and in the warehouse.
    assert (b.rows_in, b.rows_accepted, b.rows_quarantined) == (case.rows_in, case.landed, case.rows_in - case.landed)
    assert b.rows_accepted + b.rows_quarantined == b.rows_in
    assert tables["batches"] == (case.rows_in, case.landed, case.rows_in - case.landed)
    assert tables["observations"] == case.landed
    assert tables["quarantine"] == case.reasons and tables["unnamed"] == 0
    # One line for the user, naming the file and the problem.
    line = b.message()
    assert "\n" not in line
    for word in case.says:
        assert word in line, line
    print(f"\n[badinput] {case.name}: in {b.rows_in}, landed {b.rows_accepted}, quarantined {b.rows_quarantined} — {line}")
    # Re-ingesting the same file is a no-op: nothing doubled.
    from pipelines.catalog.loader import load_catalog as _lc

    with connect(wh) as con:
        again = ingest_source(con, _lc(tmp_path / "catalog"), "returns", tmp_path / "data", AS_OF, "run-again")
        assert again.batches == [] and con.execute("select count(*) from raw.observations").fetchone()[0] == case.landed


def test_sql_looking_text_is_stored_as_text(tmp_path):
    """A value that looks like SQL is a bound parameter: stored verbatim, nothing executed."""
    case = next(c for c in CASES if c.name == "SQL-looking text")
    _, _, wh = ingest_case(tmp_path, case)
    with connect(wh, read_only=True) as con:
        orgs = {r[0] for r in con.execute("select org_id from raw.observations").fetchall()}
        assert SQL_TEXT in orgs and "Robert'); DROP TABLE Students;--" in orgs
        assert con.execute("select count(*) from raw.batches").fetchone()[0] == 1


# ---------------------------------------------------------------------------- catalog YAML

def _catalog_yaml(tmp_path: Path) -> Path:
    src = _source({})
    return write_catalog(tmp_path / "catalog", [src], [kpi("homes", "returns"), kpi("jobs", "returns")])


def _edit(path: Path, fn) -> None:
    doc = yaml.safe_load(path.read_text())
    fn(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


CATALOG_CASES = {
    "unknown key": (lambda d: d / "kpis.yml", lambda doc: doc["kpis"][0].update(colour="red"),
                    ["kpis.yml", "kpis[0]", "unknown key(s) 'colour'"]),
    "wrong type": (lambda d: d / "kpis.yml", lambda doc: doc["kpis"][1].update(tolerance="lots"),
                   ["kpis.yml", "kpis[1].tolerance", "'lots' is not an amount (0.5) or a share of the target ('10%')"]),
    "duplicate ids": (lambda d: d / "kpis.yml", lambda doc: doc["kpis"].append(dict(doc["kpis"][0])),
                      ["kpis.yml", "kpis[2].id", "duplicate id 'homes'"]),
    "id with a quote": (lambda d: d / "kpis.yml", lambda doc: doc["kpis"][0].update(id="homes'; drop table x"),
                        ["kpis.yml", "kpis[0].id", "is not a valid identifier"]),
    "id with a path separator": (lambda d: d / "sources.yml", lambda doc: doc["sources"][0].update(id="../returns"),
                                 ["sources.yml", "sources[0].id", "is not a valid identifier"]),
    "source path leaves the data directory": (lambda d: d / "sources.yml",
                                              lambda doc: doc["sources"][0].update(path="../../etc/*.csv"),
                                              ["sources.yml", "sources[0].path", "must be a relative path inside the data directory"]),
    "absolute source path": (lambda d: d / "sources.yml", lambda doc: doc["sources"][0].update(path="/etc/passwd"),
                             ["sources.yml", "sources[0].path", "must be a relative path inside the data directory"]),
    "sql table name with SQL in it": (lambda d: d / "sources.yml", lambda doc: doc["sources"][0].update(
        kind="sql", sqlite_path="db.sqlite", table="kpis; drop table kpis", path=None),
        ["sources.yml", "sources[0].table", "is not a valid identifier"]),
}


@pytest.mark.parametrize("name", sorted(CATALOG_CASES))
def test_broken_catalog_is_refused_with_file_line_and_problem(tmp_path, name):
    target, change, expected = CATALOG_CASES[name]
    cat = _catalog_yaml(tmp_path)

    def fn(doc):
        change(doc)
        for s in doc.get("sources", []):
            if s.get("path") is None:
                s.pop("path", None)
    _edit(target(cat), fn)
    with pytest.raises(CatalogError) as exc:
        load_catalog(cat)
    lines = [str(p) for p in exc.value.problems]
    hit = [ln for ln in lines if all(e in ln for e in expected)]
    assert hit, lines
    assert ":" in hit[0].split(" ")[0] and hit[0].split(" ")[0].split(":")[1].rstrip(":").isdigit(), hit[0]  # file:line


def test_catalog_yaml_with_duplicate_keys_and_broken_syntax(tmp_path):
    cat = _catalog_yaml(tmp_path)
    (cat / "departments.yml").write_text("departments:\n  - id: dept\n    id: again\n    name: D\n    channel: '#d'\n")
    (cat / "kpis.yml").write_text((cat / "kpis.yml").read_text() + "\n  - [unclosed\n")
    with pytest.raises(CatalogError) as exc:
        load_catalog(cat)
    text = "\n".join(map(str, exc.value.problems))
    assert "departments.yml:3: (top): invalid YAML: found duplicate key 'id'" in text or "duplicate key 'id'" in text
    assert "kpis.yml:" in text and "invalid YAML" in text


def test_kpiwatch_validate_prints_one_line_per_problem_and_exits_2(tmp_path):
    """Through the real CLI: a broken catalog stops before any run, naming file, line and problem."""
    cat = _catalog_yaml(tmp_path)
    _edit(cat / "kpis.yml", lambda doc: (doc["kpis"][0].update(colour="red"), doc["kpis"][1].update(tolerance="lots")))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_"))}
    res = subprocess.run([sys.executable, "-m", "pipelines.cli", "validate", "--catalog", str(cat)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    problems = [ln.strip() for ln in res.stderr.splitlines() if ln.startswith("  ")]
    assert len(problems) == 2, res.stderr
    assert problems[0].startswith("kpis.yml:") and "unknown key(s) 'colour'" in problems[0]
    assert problems[1].startswith("kpis.yml:") and "tolerance" in problems[1]


def test_run_progress_prints_a_file_name_with_brackets_as_it_is():
    """A file name is data: `[bold]` or `[/]` in it must not be taken for console markup
    (it was: rich swallowed the brackets or raised MarkupError inside the log handler)."""
    import logging

    from rich.console import Console

    from pipelines.cli import _Progress

    buf = io.StringIO()
    handler = _Progress(Console(file=buf, width=300, soft_wrap=True), quiet=False)
    line = "health/[bold]draft[/] [x].csv: refused (unreadable_source) — binary content, not a text file"
    record = logging.LogRecord("kpiwatch", logging.ERROR, __file__, 1, line, None, None)
    record.dagster_meta = {"step_key": "ingest__health_returns", "orig_message": line}
    handler.emit(record)
    assert buf.getvalue().strip() == f"ingest__health_returns: {line}"
