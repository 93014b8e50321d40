"""`kpiwatch report --audit` on the two quality runs (tests/support/quality_runs.py): one
self-contained HTML file with every section and the planted findings, rendered in headless
Chromium (Debian's `chromium`; the test skips where it is not installed), plus GX Data Docs."""
import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.quality_runs import HOSTILE_NOTE, quality_runs

pytestmark = [pytest.mark.slow, pytest.mark.clock]  # clock: also run with the clock moved (make test-clock)
CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ["1. Run summary", "2. Publication decisions", "3. Every check that ran", "4. Quarantined rows",
            "5. Drift findings", "6. Alerts sent and suppressed", "7. Evidence for each published figure", "GX Data Docs"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    runs = quality_runs(tmp_path_factory)
    out = tmp_path_factory.mktemp("audit") / "audit.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_"))}
    proc = subprocess.run([str(Path(sys.executable).parent / "kpiwatch"), "report", "--audit", "--out", str(out),
                           "--warehouse", str(runs["wh"])], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return runs, out


def visible_text(markup: str) -> str:
    markup = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", markup, flags=re.S | re.I)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)))


def test_report_is_one_self_contained_file(report):
    _, out = report
    page = out.read_text()
    assert "<style>" in page and "<script" not in page.lower()
    # No network resource: no http(s) URL anywhere in attributes, CSS or imports.
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"url\(\s*['\"]?\s*(https?:)?//|@import", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert '<link' not in page.lower()


def test_data_values_are_escaped(report):
    _, out = report
    page = out.read_text()
    assert "<b>checked</b>" not in page and '<script>alert("kpiwatch")' not in page
    assert html.escape('<script>alert("kpiwatch")</script>', quote=True) in page.replace("\\&quot;", "&quot;")
    assert HOSTILE_NOTE.split(" & ")[1] in visible_text(page)  # shown as text


def test_report_has_every_section_and_the_planted_findings(report):
    runs, out = report
    text = visible_text(out.read_text())
    for section in SECTIONS:
        assert section in text, section
    second = runs["second"].run_id
    assert f"run {second}" in text
    assert "schema_contract" in text and "column added 'notes'" in text  # the planted schema change
    assert "schema_change" in text and "returns_2026-11.csv" in text      # quarantined whole, by reason
    assert "health blocked" in text and "employment published" in text    # publication per department
    assert "kpi_outlier claimant_count 2026-11" in text                    # the planted outlier
    assert "missing_submission transport_db 2026-09" in text              # the overdue department
    assert "deduplicated by fingerprint" in text                          # alerts firing, not re-sent
    assert "Notifications attempted in this run" in text
    # Evidence: the kept health figure traces to the October file, its sha256, rows and run.
    import hashlib

    october = runs["data"] / "health" / "returns_2026-10.csv"
    assert hashlib.sha256(october.read_bytes()).hexdigest() in text
    assert f"kept from run {runs['first'].run_id}" in text
    assert "rtt_18_weeks 2026-10" in text


def test_data_docs_are_built_beside_the_report_and_linked(report):
    runs, out = report
    index = out.parent / "data_docs" / "index.html"
    assert index.exists() and (out.parent / "data_docs" / ".gitignore").read_text() == "*\n"
    assert 'href="data_docs/index.html"' in out.read_text()
    pages = {p.name for p in (out.parent / "data_docs" / "validations").rglob("*.html")}
    assert any(name.startswith("health_returns_") for name in pages)
    assert any(name.startswith("marts.fct_kpi_progress_") for name in pages)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed (Debian package `chromium`; "
                                                  ".ci/run installs it)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    _, out = report
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([str(CHROMIUM), *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = visible_text(dom.stdout)
    for section in SECTIONS:
        assert section in text, section
    assert "column added 'notes'" in text and "kpi_outlier claimant_count 2026-11" in text
    assert "health blocked" in text
    shot = tmp_path / "audit.png"
    subprocess.run([str(CHROMIUM), *flags, f"--screenshot={shot}", "--window-size=1280,4000", out.as_uri()],
                   capture_output=True, timeout=120, check=True)
    assert shot.exists() and shot.stat().st_size > 20_000
    keep = os.environ.get("KPIWATCH_AUDIT_SCREENSHOT")
    if keep:  # let a person look at it
        shutil.copy(shot, keep)
