"""The scorecard renderer on hand-made data: values from data are escaped, colours keep their
contrast, charts have text alternatives, a blocked publication is said in words, and a kept
scorecard reads back exactly as it was stored."""
import datetime as dt
import html
import json
import re

import duckdb
import pytest

from pipelines.reporting.scorecard import (COLOURS, NoSnapshot, SNAPSHOT_DDL, _decode, _encode, render,
                                           save_snapshot, snapshot_as_of)

HOSTILE = '<script>alert("x")</script> & <img src=http://evil.example/x.png>'


def _data(published: bool = True) -> dict:
    months = [dt.date(2026, m, 1) for m in range(1, 7)]
    points = [{"kpi_id": "k1", "period": p, "period_end": p.replace(day=28), "actual": 60.0 + i,
               "expected_value": 61.0 + i, "target_value": 70.0, "target_date": dt.date(2026, 12, 31),
               "status": "amber", "forecast_value": 68.0, "forecast_status": "will_miss",
               "data_trust": "trusted", "data_trust_reason": "all checks passed"} for i, p in enumerate(months)]
    return {
        "settings": {"as_of": dt.date(2026, 7, 15), "catalog_name": "Test roadmap"},
        "kpis": [{"kpi_id": "k1", "kpi_name": HOSTILE, "department_id": "d1", "unit": "percent",
                  "owner_name": "Owner <b>bold</b>"}],
        "points": points,
        "targets": [{"kpi_id": "k1", "point_date": dt.date(2026, 12, 31), "value": 70.0}],
        "departments": [{"department_id": "d1", "department_name": "Dept & Co", "kpis": 1, "green": 0, "amber": 1,
                         "red": 0, "grey": 0, "untrusted": 0, "milestones_met": 0, "milestones_missed": 0,
                         "milestones_at_risk": 1, "milestones_upcoming": 0, "source_overdue": False}],
        "milestones": [{"milestone_id": "m1", "title": "Reach 70% <soon>", "department_id": "d1",
                        "due_date": dt.date(2026, 12, 31), "state": "at_risk", "latest_actual": 65.0,
                        "threshold": 70.0, "forecast_value": 68.0, "owner_name": "Owner"}],
        "sources": [{"source_id": "s1", "department_id": "d1", "cadence": "monthly",
                     "latest_period": dt.date(2026, 6, 1), "expected_period": dt.date(2026, 6, 1),
                     "is_overdue": False, "periods_overdue": 0, "last_loaded_at": None}],
        "published": [{"kpi_id": "k1", "period": dt.date(2026, 5, 1), "actual": 64.0, "status": "amber",
                       "data_trust": "stale", "data_trust_reason": "publication blocked: critical check failed",
                       "published": published, "published_at": dt.datetime(2026, 6, 20, 6, 0),
                       "publication_run_id": "run-a"}],
    }


def test_values_from_data_are_escaped():
    page = render(_data(), dt.datetime(2026, 7, 15, 8, 0))
    assert "<script" not in page and "<img" not in page and "<b>bold" not in page
    assert html.escape(HOSTILE) in page and "Dept &amp; Co" in page and "Reach 70% &lt;soon&gt;" in page
    tags = re.findall(r"<[^>]+>", page)  # markup only: the escaped text may say anything
    assert not [t for t in tags if re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", t)]


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


@pytest.mark.parametrize("name", sorted(COLOURS))
def test_badge_colours_keep_wcag_aa_contrast_with_white_text(name):
    ratio = (1.0 + 0.05) / (_luminance(COLOURS[name]) + 0.05)
    assert ratio >= 4.5, f"{name} {COLOURS[name]}: {ratio:.2f}:1"


def test_structure_for_screen_readers_and_print():
    page = render(_data(), dt.datetime(2026, 7, 15, 8, 0))
    headings = re.findall(r"<h([1-3])[^>]*>", page)
    assert headings[0] == "1" and headings.count("1") == 1
    assert all(int(b) - int(a) <= 1 for a, b in zip(headings, headings[1:])), "no skipped heading levels"
    assert page.count("<svg") == page.count("<title id=") == page.count("<desc id=") == 1
    assert 'role="img"' in page and "<caption" in page and "@media print" in page
    assert 'lang="en"' in page and 'id="kpi-k1"' in page and "id='milestone-m1'" in page and "id='source-s1'" in page


def test_status_and_trust_in_words_and_a_blocked_publication_said():
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", render(_data(published=False))))
    assert "Slipping" in text and "Data stale" in text
    assert "Publication blocked this run: the figure shown as published is for May 2026 (64.0%, Slipping)." in text
    assert "publication blocked: critical check failed" in text
    assert "Needs attention" in text


def test_snapshot_round_trip_and_as_of_choice(tmp_path):
    data = _data()
    assert json.loads(json.dumps(data, default=_encode), object_hook=_decode) == data
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute(SNAPSHOT_DDL)
    with pytest.raises(NoSnapshot, match="no run has kept one yet"):
        snapshot_as_of(con, dt.date(2026, 7, 1))
    save_snapshot(con, "run-june", dt.datetime(2026, 6, 16, 6, 0), {**data, "settings": {**data["settings"], "as_of": dt.date(2026, 6, 15)}})
    save_snapshot(con, "run-july", dt.datetime(2026, 7, 16, 6, 0), data)
    got, kept = snapshot_as_of(con, dt.date(2026, 7, 1))
    assert kept["run_id"] == "run-june" and got["settings"]["as_of"] == dt.date(2026, 6, 15)
    got, kept = snapshot_as_of(con, dt.date(2026, 8, 1))
    assert kept["run_id"] == "run-july" and got == data
    with pytest.raises(NoSnapshot, match=r"on or before 2026-06-01 \(the first is 2026-06-15\)"):
        snapshot_as_of(con, dt.date(2026, 6, 1))


def test_standard_band_organisations_and_manual_milestones_in_words():
    # A standard-judged KPI: "Standard not met" (never "Off track"), figures with enough
    # decimals to show the miss, changes in pp, organisations N of M (escaped), a milestone met
    # by hand said as such.
    data = _data()
    for i, p in enumerate(data["points"]):
        p.update(expected_value=None, target_value=None, target_date=None, forecast_value=None,
                 forecast_status="unknown", judged_by="standard", standard_value=95.0,
                 standard_met=False, status="red", periods_met_last_12=0, periods_judged_last_12=i + 1,
                 consecutive_misses=i + 1, actual=93.0 + i * 0.398)
    data["published"] = []
    data["standard_orgs"] = [{"kpi_id": "k1", "period": dt.date(2026, 6, 1), "standard_value": 95.0,
                              "orgs_judged": 3, "orgs_met": 1, "orgs_not_met": 2,
                              "not_met": [{"org_id": "<R1>", "actual": 80.0}, {"org_id": "R2", "actual": 94.999}]}]
    data["milestones"][0].update(state="met", met_how="manual", completed_on=dt.date(2026, 6, 2),
                                 completed_by="Jo <Lead>", test="manual")
    page = render(data, dt.datetime(2026, 7, 15, 8, 0))
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    tile = html.unescape(re.sub(r"<[^>]+>", " ", page[page.index('id="kpi-k1"'):page.index("</article>")]))
    assert "Standard not met" in tile and "Off track" not in tile
    assert "94.99%" in text and "95.00%" in text  # 94.99 against 95, never "95.0% | 95.0%"
    assert "+0.4 pp on" in text
    assert "1 of 3 organisations met the standard in Jun 2026; not met, worst first: <R1> 80.0%, R2 94.999%" in text
    assert "&lt;R1&gt;" in page
    assert "Met manually on 02 Jun 2026, by Jo <Lead>" in text
