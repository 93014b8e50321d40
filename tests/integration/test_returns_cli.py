"""`kpiwatch run` with a source whose every new workbook is refused: the run completes, but exits
4 naming that source once, its refusals counted per cause; rows excluded by rule are in the
summary."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.unit.test_workbooks import make_catalog, sheet_rows, source, write_xls, write_xlsx

pytestmark = pytest.mark.slow


def test_a_source_that_read_none_of_its_files_exits_4_naming_it(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_", "DAGSTER_HOME"))}
    exe = str(Path(sys.executable).parent / "kpiwatch")
    for folder in ("ae", "ae_new"):
        write_xls(tmp_path / "data" / folder / "2016-04.xls", {"A&E Data": sheet_rows("April 2016")})
        write_xlsx(tmp_path / "data" / folder / "2016-05.xlsx", {"A&E Data": sheet_rows("May 2016")})
    make_catalog(tmp_path, source())
    # A second source over a copy of the files expects a sheet none of them has.
    sources = yaml.safe_load((tmp_path / "catalog" / "sources.yml").read_text())
    sources["sources"].append(source(id="ae_new_template", path="ae_new/*.xls*", sheet="Provider Level Data"))
    (tmp_path / "catalog" / "sources.yml").write_text(yaml.safe_dump(sources, sort_keys=False))
    (tmp_path / "catalog" / "kpiwatch.yml").write_text(yaml.safe_dump({"name": "returns", "as_of": "2016-07-01"}))
    args = [exe, "run", "--quiet", "--catalog", str(tmp_path / "catalog"), "--data-dir", str(tmp_path / "data"),
            "--warehouse", str(tmp_path / "wh" / "w.duckdb")]
    run = subprocess.run(args, env=env, capture_output=True, text=True)
    assert run.returncode == 4, run.stdout[-3000:] + run.stderr[-3000:]
    message = " ".join(run.stderr.split())
    assert ("error: source ae_new_template read none of its 2 new file(s): unreadable_source × 2 file(s) "
            "(sheet 'Provider Level Data' not found (sheets: 'A&E Data'))") in message
    assert "ae_returns" not in message  # the source that read its files is not named
    text = " ".join(run.stdout.split())
    assert "Rows this run: 8 in, 4 landed, 4 quarantined from 4 new batch(es)" in text
    assert "excluded 2 × rule footnote (ae_returns: 2 file(s))" in text
    # the two refused files, one cause: one line with a count
    assert ("quarantined 2 × unreadable_source (ae_new_template: 2 files, first ae_new/2016-04.xls) — sheet "
            "'Provider Level Data' not found (sheets: 'A&E Data')") in text
    assert "Traceback" not in run.stdout + run.stderr

    # explain finds the quarantined row of a figure whose KPI is a constant and whose period is
    # the title cell (neither is in the raw record's text).
    explain = subprocess.run([exe, "explain", "ae_type1", "2016-04", "--warehouse", str(tmp_path / "wh" / "w.duckdb")],
                             env=env, capture_output=True, text=True)
    assert explain.returncode == 0, explain.stderr
    text = explain.stdout
    assert "Quarantined rows of these batches for ae_type1 2016-04: 1" in text
    assert "row 3 (A&E Data!A8) of ae_returns:" in text and "missing_value" in text  # as the sheet shows it
    assert "A&E Data!A7" in text  # R1's source row
    assert "excluded by rule national: 1 row(s) (records 1)" in text
    assert "period from title cell A&E Data!B2 beside 'Period:': 'April 2016'" in text
