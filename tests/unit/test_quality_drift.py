"""Drift methods on planted series (pure functions, docs/quality.md): each kind is caught where
it is planted and nowhere else; noise, trends, bends and seasonality raise nothing."""
import datetime as dt
import random

import pytest

from pipelines.quality import drift
from pipelines.quality.publish import final_trust


def months(n, first=dt.date(2023, 1, 1)):
    return [drift._add_months(first, i) for i in range(n)]


def series(values, first=dt.date(2023, 1, 1)):
    return list(zip(months(len(values), first), values))


def trend(n=40, slope=0.3, noise=1.0, seed=1):
    rng = random.Random(seed)
    return [100 + slope * i + rng.gauss(0, noise) for i in range(n)]


def kinds(findings):
    return [(f.kind, f.period, f.severity) for f in findings]


def test_noisy_trends_raise_nothing():
    # 300 series of trend + noise (gaussian and uniform): the thresholds leave a wide margin.
    rng = random.Random(7)
    found = []
    for i in range(300):
        slope = rng.uniform(-2, 2)
        if i % 2:
            values = [100 + slope * t + rng.gauss(0, 1) for t in range(40)]
        else:
            values = [100 + slope * t + rng.uniform(-1.7, 1.7) for t in range(40)]
        found += drift.kpi_value_findings("k", series(values), "monthly")
    assert found == []


def test_a_spike_is_an_outlier_and_the_month_after_is_not():
    values = trend()
    values[30] += 25  # about 25 noise standard deviations
    [f] = drift.kpi_value_findings("k", series(values), "monthly", "src", "dept")
    assert (f.kind, f.period, f.severity) == ("kpi_outlier", months(40)[30], "critical")
    assert f.observed == pytest.approx(values[30])
    assert f.expected == pytest.approx(100 + 0.3 * 30, abs=3)
    assert f.lower_bound < f.expected < f.upper_bound < f.observed
    assert f.score > drift.Z_OUTLIER and f.threshold == drift.Z_OUTLIER
    assert (f.source_id, f.department_id, f.is_latest) == ("src", "dept", False)
    assert "robust z" in f.detail


def test_the_latest_value_is_judged_and_flagged_latest():
    values = trend()
    values[-1] -= 9
    [f] = drift.kpi_value_findings("k", series(values), "monthly")
    assert f.kind == "kpi_outlier" and f.is_latest and f.severity == "warning"


def test_a_step_is_a_level_shift_once_it_holds_for_three_periods():
    values = trend()
    for i in range(36, 40):
        values[i] += 15
    found = drift.kpi_value_findings("k", series(values), "monthly")
    assert kinds(found) == [("level_shift", months(40)[36], "critical")]
    assert found[0].observed - found[0].expected == pytest.approx(15, abs=3)
    # Two periods after the step it is still an outlier (a spike cannot be told from a step yet).
    early = drift.kpi_value_findings("k", series(values[:38]), "monthly")
    assert [f.kind for f in early] == ["kpi_outlier", "kpi_outlier"]


def test_a_bend_in_the_trend_is_not_a_level_shift():
    # The slope doubles (a new target trajectory): values drift away gradually, no step.
    rng = random.Random(3)
    values = [60 + 0.4 * i + rng.uniform(-0.3, 0.3) for i in range(18)]
    values += [values[-1] + 0.8 * (i + 1) + rng.uniform(-0.3, 0.3) for i in range(18)]
    assert drift.kpi_value_findings("k", series(values), "monthly") == []


def seasonal(n=48, seed=2):
    rng = random.Random(seed)
    out = []
    for i, p in enumerate(months(n, dt.date(2022, 1, 1))):
        out.append(100 + i + (30 if p.month == 12 else 0) - (10 if p.month == 8 else 0) + rng.gauss(0, 1))
    return out


def test_monthly_seasonality_is_learnt_not_flagged():
    values = seasonal()
    idx = [drift._month_index(p) for p in months(48, dt.date(2022, 1, 1))]
    assert drift.is_seasonal(values, idx, {i: n for n, i in enumerate(idx)}, "monthly")
    assert drift.kpi_value_findings("k", series(values, dt.date(2022, 1, 1)), "monthly") == []


def test_seasonal_series_outliers_are_caught():
    values = seasonal()
    values[45] += 25              # October 2025 spikes (Octobers are ordinary)
    values[47] -= 30              # December 2025 misses its usual peak
    found = drift.kpi_value_findings("k", series(values, dt.date(2022, 1, 1)), "monthly")
    assert [(f.kind, f.period) for f in found] == [("kpi_outlier", dt.date(2025, 10, 1)),
                                                    ("kpi_outlier", dt.date(2025, 12, 1))]
    assert all("seasonal difference" in f.method for f in found)


def test_whole_number_series_moving_one_unit_is_noise():
    # Stations opening one at a time: changes are mostly 0, sometimes 1 (MAD 0).
    values = [float(round(40 + 9.4 * i / 34)) for i in range(35)]
    assert drift.kpi_value_findings("k", series(values), "monthly") == []
    values[-1] += 5
    assert kinds(drift.kpi_value_findings("k", series(values), "monthly"))[-1][0] == "kpi_outlier"


def test_short_history_is_not_judged():
    values = trend(12)
    values[-1] += 50
    assert drift.kpi_value_findings("k", series(values), "monthly") == []


def test_quarterly_series_use_their_own_history():
    rng = random.Random(5)
    periods = [dt.date(2023 + i // 4, 3 * (i % 4) + 1, 1) for i in range(12)]
    values = [75 + 0.2 * i + rng.uniform(-0.1, 0.1) for i in range(12)]
    assert drift.kpi_value_findings("q", list(zip(periods, values)), "quarterly") == []
    values[-1] += 5
    [f] = drift.kpi_value_findings("q", list(zip(periods, values)), "quarterly")
    assert f.kind == "kpi_outlier" and f.period == periods[-1] and "Q4" in f.detail


def counts_for(periods, kpis, orgs, missing=()):
    out = {}
    for p in periods:
        for k, freq in kpis.items():
            if freq == "quarterly" and p.month not in (1, 4, 7, 10):
                continue
            n = orgs - sum(1 for (mk, mp) in missing if mk == k and mp == p)
            if n:
                out[(k, p)] = n
    return out


def test_volume_drop_of_a_source_and_of_a_kpi():
    periods = months(14)
    kpis = {"a": "monthly", "b": "monthly", "c": "monthly", "d": "monthly", "q": "quarterly"}
    # In the latest month two of four organisations sent nothing for a, b and c; d is complete.
    missing = [(k, periods[-1]) for k in "abc"] * 2
    found = drift.volume_findings("src", "dept", counts_for(periods, kpis, 4, missing), kpis)
    by = {(f.kpi_id, f.period): f for f in found}
    source = by[(None, periods[-1])]
    assert (source.observed, source.expected, source.severity) == (10, 16, "warning")
    assert source.score == pytest.approx(-0.375) and source.is_latest
    assert {k for k, _ in by if k} == {"a", "b", "c"}
    assert by[("a", periods[-1])].observed == 2 and by[("a", periods[-1])].expected == 4
    # Quarterly KPIs in a monthly source are expected only in their quarter's first month.
    assert len(found) == 4


def test_volume_is_not_judged_without_history_and_a_dropped_kpi_is_critical():
    periods = months(3)
    kpis = {"a": "monthly"}
    assert drift.volume_findings("src", None, counts_for(periods, kpis, 4), kpis) == []
    periods = months(8)
    kpis = {"a": "monthly", "b": "monthly"}
    counts = counts_for(periods, kpis, 1)
    del counts[("b", periods[-1])]
    found = {(f.kpi_id, f.severity) for f in drift.volume_findings("src", None, counts, kpis)}
    assert found == {("b", "critical"), (None, "warning")}  # exactly half the source's rows: warning


@pytest.mark.parametrize("as_of, expected", [
    # September 2026 is due 2026-10-14 (lag 14); grace 7 days.
    (dt.date(2026, 10, 13), []),                                      # not yet due
    (dt.date(2026, 10, 20), [("2026-09", "info")]),                   # within the grace period
    (dt.date(2026, 10, 22), [("2026-09", "warning")]),                # grace exceeded
    (dt.date(2026, 11, 15), [("2026-09", "warning"), ("2026-10", "info")]),  # the demo's transport story
    (dt.date(2026, 11, 23), [("2026-09", "critical"), ("2026-10", "warning")]),
])
def test_missing_submissions_against_cadence_with_grace(as_of, expected):
    landed = set(months(8, dt.date(2026, 1, 1)))  # January .. August 2026
    found = drift.missing_submission_findings("src", "dept", "monthly", 14, landed, as_of, 4.0)
    assert [(f"{f.period:%Y-%m}", f.severity) for f in found] == expected
    assert all(f.observed == 0 and f.expected == 4.0 for f in found)


def test_a_gap_inside_the_history_and_a_source_that_never_delivered():
    landed = set(months(8, dt.date(2026, 1, 1))) - {dt.date(2026, 4, 1)}
    found = drift.missing_submission_findings("src", None, "monthly", 14, landed, dt.date(2026, 9, 30))
    assert [(f"{f.period:%Y-%m}", f.severity) for f in found] == [("2026-04", "critical")]
    [never] = drift.missing_submission_findings("src", None, "quarterly", 45, set(), dt.date(2026, 11, 15))
    assert (never.period, never.severity) == (dt.date(2026, 7, 1), "critical")


def test_robust_spread_fallbacks():
    assert drift.robust_spread([-1, 1, -1, 1, 0], 100) == pytest.approx(1.4826)
    assert drift.robust_spread([0, 0, 0, 0, 2], 100) == pytest.approx(1.2533 * 0.4)
    assert drift.robust_spread([0, 0, 0], 500) == pytest.approx(0.5)
    assert drift.robust_spread([0, 0, 0], 100, resolution=1.0) == 0.5
    assert drift.resolution([1.0, 2.0, 40.0]) == 1.0
    assert drift.resolution([1.5, 2.25]) == 0.01
    assert drift.resolution([1 / 3]) == 0.0


def test_data_trust_combines_dbt_trust_and_findings():
    outlier = {"kind": "kpi_outlier", "severity": "critical", "detail": "k 2026-10: 5,342 against 2,069"}
    assert final_trust("trusted", "all critical checks passed", []) == ("trusted", "all critical checks passed")
    trust, reason = final_trust("trusted", "ok", [outlier])
    assert trust == "anomalous" and "5,342 against 2,069" in reason
    trust, reason = final_trust("stale", "source s overdue", [outlier])
    assert trust == "stale" and reason.startswith("source s overdue; also kpi outlier")
    assert final_trust("failed_checks", "critical check failed", [])[0] == "failed_checks"


def test_quarterly_findings_name_the_period_as_every_other_place_does():
    """A quarterly KPI with an April year: the outlier reads `2030/31 Q2`, as in status and
    explain; a calendar-year quarterly KPI keeps `2030-Q3`."""
    values = trend(n=40, slope=0.2, noise=0.5)
    values[30] += 20
    quarters = [drift._add_months(dt.date(2023, 1, 1), 3 * i) for i in range(40)]
    spike = quarters[30]  # 2030-07-01
    [fiscal] = drift.kpi_value_findings("k", list(zip(quarters, values)), "quarterly", fiscal_start_month=4)
    [calendar] = drift.kpi_value_findings("k", list(zip(quarters, values)), "quarterly")
    assert fiscal.period == calendar.period == spike
    assert "k 2030/31 Q2:" in fiscal.detail and "k 2030-Q3:" in calendar.detail
