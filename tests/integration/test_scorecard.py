"""The owner's scorecard from two real runs of the asset graph on the demo:

- run 1 (reporting date 2026-10-20) before health's October return arrived;
- run 2 (reporting date 2026-11-15) with it.

Each run writes reports/scorecard.html and keeps the scorecard's data; `kpiwatch report`
renders the current one, `kpiwatch report --as-of 2026-10-31` the one known on that date. The
page renders in headless Chromium (Debian's `chromium`; the test skips where it is not
installed) with every department and planted story in its text and no request leaving the file.
"""
import datetime as dt
import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from pipelines.config import Settings
from pipelines.demo import write_demo

pytestmark = [pytest.mark.slow, pytest.mark.clock]  # clock: also run with the clock moved (make test-clock)
CHROMIUM = Path("/usr/bin/chromium")
KPIWATCH = Path(sys.executable).parent / "kpiwatch"
DEPARTMENTS = ["Riverside Health Service", "Riverside Employment Service", "Riverside Transport Authority"]


def visible_text(markup: str) -> str:
    markup = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", markup, flags=re.S | re.I)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup)))


def _env(settings: Settings) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KPIWATCH_", "SLACK_"))}
    env["KPIWATCH_WAREHOUSE"] = str(settings.warehouse)
    return env


def kpiwatch(settings: Settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(KPIWATCH), *args], env=_env(settings), capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from pipelines.definitions import build_definitions
    from pipelines.transform.project import prepare_manifest

    prepare_manifest()
    base = tmp_path_factory.mktemp("scorecard")
    data = base / "data"
    write_demo(data)
    october = data / "health" / "returns_2026-10.csv"
    held = base / "returns_2026-10.csv"
    shutil.move(october, held)  # not yet submitted at run 1
    saved = dict(os.environ)
    results = []
    try:
        for k in [k for k in os.environ if k.startswith(("SLACK_", "KPIWATCH_"))]:
            del os.environ[k]
        with dg.DagsterInstance.ephemeral() as instance:
            for as_of in (dt.date(2026, 10, 20), dt.date(2026, 11, 15)):
                settings = Settings(data_dir=data, warehouse=base / "wh" / "kpiwatch.duckdb", as_of=as_of).resolved()
                os.environ.update(settings.export())
                defs = build_definitions(settings)
                result = dg.materialize(list(defs.assets), resources=defs.resources, instance=instance,
                                        raise_on_error=False)
                assert result.success
                results.append(result)
                if as_of.month == 10:
                    first_scorecard = (settings.reports_dir / "scorecard.html").read_text()
                    shutil.move(held, october)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return {"settings": settings, "base": base, "results": results, "first_scorecard": first_scorecard}


def test_each_run_writes_the_scorecard_and_keeps_its_data(runs):
    settings = runs["settings"]
    page = (settings.reports_dir / "scorecard.html").read_text()
    assert "Reporting date 2026-11-15" in page and "Reporting date 2026-10-20" in runs["first_scorecard"]
    import duckdb

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        kept = con.execute("select run_id, as_of from publish.scorecard_snapshots order by taken_at").fetchall()
    finally:
        con.close()
    assert [r[0] for r in kept] == [r.run_id for r in runs["results"]]
    assert [r[1] for r in kept] == [dt.date(2026, 10, 20), dt.date(2026, 11, 15)]


def _tile(text: str, kpi_id: str) -> str:
    """The visible text of one KPI tile (from its heading to the next tile's)."""
    start = text.index(f"({kpi_id})")
    end = text.find(" Data table for", start)
    return text[start:end]


def test_report_renders_now_and_as_known_on_a_date(runs, tmp_path):
    settings = runs["settings"]
    now, then = tmp_path / "now.html", tmp_path / "then.html"
    done = kpiwatch(settings, "report", "--out", str(now))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"scorecard: {now}"
    done = kpiwatch(settings, "report", "--as-of", "2026-10-31", "--out", str(then))
    assert done.returncode == 0, done.stderr
    assert "as known on 2026-10-31" in done.stdout
    now_text, then_text = visible_text(now.read_text()), visible_text(then.read_text())
    # health's October return arrived after 2026-10-31's last run: that view ends in September
    # a change of a percentage is in percentage points
    assert "Latest 81.4% (Oct 2026) Change +0.8 pp on Sep 2026" in _tile(now_text, "rtt_18_weeks")
    assert "(Sep 2026)" in _tile(then_text, "rtt_18_weeks") and "(Oct 2026)" not in _tile(then_text, "rtt_18_weeks")
    first_run = runs["results"][0].run_id
    assert f"As known on 2026-10-31 : the scorecard kept by run {first_run}" in then_text
    assert "Reporting date 2026-10-20" in then_text and "As known on" not in now_text
    # without --out an as-of view gets its own file: the current scorecard is not overwritten
    done = kpiwatch(settings, "report", "--as-of", "2026-10-31")
    assert done.returncode == 0 and done.stdout.strip() == (
        f"scorecard: {settings.reports_dir / 'scorecard-as-of-2026-10-31.html'} (as known on 2026-10-31)")
    assert "As known on" not in (settings.reports_dir / "scorecard.html").read_text()


def test_report_errors_are_one_line_and_named(runs, tmp_path):
    settings = runs["settings"]
    before = kpiwatch(settings, "report", "--as-of", "2026-01-01", "--out", str(tmp_path / "x.html"))
    assert before.returncode == 2 and not (tmp_path / "x.html").exists()
    assert before.stderr.strip() == ("error: no scorecard was kept for a reporting date on or before 2026-01-01 "
                                     "(the first is 2026-10-20)")
    bad = kpiwatch(settings, "report", "--as-of", "31/10/2026")
    assert bad.returncode == 2 and "is not a date (YYYY-MM-DD)" in bad.stderr and "Traceback" not in bad.stderr
    wrong = kpiwatch(settings, "report", "--out", str(tmp_path / "x.pdf"))
    assert wrong.returncode == 2 and "should be an .html file" in wrong.stderr
    missing = subprocess.run([str(KPIWATCH), "report", "--warehouse", str(tmp_path / "none.duckdb")],
                             env=_env(settings), capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "run `kpiwatch run` first" in missing.stderr


def test_the_page_tells_the_planted_stories_in_words(runs):
    page = (runs["settings"].reports_dir / "scorecard.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page, re.I), "no network resources"
    assert "<script" not in page.lower()
    text = visible_text(page)
    for department in DEPARTMENTS:
        assert department in text
    assert "Off track" in _tile(text, "rtt_18_weeks")                 # red
    assert "Slipping" in _tile(text, "claimant_count")                # amber
    assert "On track" in _tile(text, "ae_four_hour")                  # green
    assert "Data stale" in _tile(text, "bus_punctuality")             # the overdue department
    assert "Data anomalous" in _tile(text, "job_placements")          # the sudden jump
    timeline = text[text.index("Milestone timeline"):]
    # each milestone names its test; a milestone already past due has no forecast (none is drawn
    # into the past: it used to show 72.9 here)
    assert ("2026-06-30 Cancer 62-day standard reaches 75% reached by the due date health Missed "
            "73.4% 75.0% –") in timeline
    assert ("2027-03-31 Bus punctuality reaches 88% reached by the due date transport At risk "
            "84.3% 88.0% 84.8%") in timeline
    assert "Met manually on 01 Oct 2026, by Sam Okonkwo" in timeline  # not a bare "Met"
    # every chart has a text alternative
    assert page.count("<svg") == page.count("<desc") and page.count("<svg") >= 13


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def page_requests(page: Path, profile: Path) -> tuple[str, list[str]]:
    """The DOM Chromium renders from `page`, and the network URLs the page itself asked for
    (from the browser's net log: requests whose isolation key is the file's, not the browser's
    own background traffic)."""
    netlog = profile.parent / f"{profile.name}-netlog.json"
    dom = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", f"--log-net-log={netlog}",
                          "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    log = json.loads(netlog.read_text(errors="replace"))
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = [e["params"]["url"] for e in log["events"] if e["type"] == start_job
            and str(e["params"].get("network_isolation_key", "")).startswith("file://")]
    return dom.stdout, urls


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed (Debian package `chromium`; "
                                                  ".ci/run installs it)")
def test_scorecard_renders_in_headless_chromium_without_network(runs, tmp_path):
    # the check can fail: a page with one remote image is caught
    probe = tmp_path / "probe.html"
    probe.write_text('<!doctype html><p>probe</p><img src="http://example.invalid/pixel.png" alt="">')
    _, probe_urls = page_requests(probe, tmp_path / "probe-profile")
    assert probe_urls == ["http://example.invalid/pixel.png"]

    page = runs["settings"].reports_dir / "scorecard.html"
    dom, urls = page_requests(page, tmp_path / "profile")
    assert urls == [], "the scorecard asked the network for " + ", ".join(urls)
    text = visible_text(dom)
    for department in DEPARTMENTS:
        assert department in text
    for words in ("Off track", "Slipping", "On track", "Data stale", "Data anomalous", "Missed", "At risk"):
        assert words in text, words
    shot = tmp_path / "scorecard.png"
    subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
                    "--window-size=1280,6000", page.as_uri()], capture_output=True, timeout=120, check=True)
    assert shot.exists() and shot.stat().st_size > 50_000
    keep = os.environ.get("KPIWATCH_SCORECARD_SCREENSHOT")
    if keep:  # let a person look at it
        shutil.copy(shot, keep)
