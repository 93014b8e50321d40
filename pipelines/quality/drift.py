"""Drift and anomaly detection: KPI values against their own history, level shifts, source
volume against its typical volume, and missing submissions against each source's cadence.

The methods are pure functions over plain Python values (tested in tests/unit/test_quality_drift.py);
`detect_drift` reads their inputs from the warehouse and returns every finding of a run. The
methods, thresholds and their rationale are documented in docs/quality.md.

Severity: `info` (recorded, never alerts or changes trust), `warning`, `critical`.
"""
from __future__ import annotations

import datetime as dt
import math
import statistics
from dataclasses import asdict, dataclass, field

from pipelines.warehouse import rows as _rows

# ---- thresholds (docs/quality.md explains each) -------------------------------------------
# KPI values: robust z of the period-on-period change against the KPI's own history.
Z_OUTLIER = 6.0            # |z| above this: the period's value is an outlier (warning) ...
Z_OUTLIER_CRITICAL = 12.0  # ... and above this, critical
MIN_HISTORY = {"monthly": 12, "quarterly": 8}   # previous changes needed before judging
HISTORY_WINDOW = {"monthly": 36, "quarterly": 12}  # at most this many previous changes
SEASON = {"monthly": 12, "quarterly": 4}          # periods per year
# Seasonality (year-on-year differences) is used from MIN_SEASONAL_HISTORY year-on-year changes
# on, and only when it at least halves the mean absolute deviation of the history (compared
# like for like: a year-on-year change of a noisy series is as noisy as a monthly one). Weak
# seasonality stays inside the noise band anyway.
MIN_SEASONAL_HISTORY = {"monthly": 12, "quarterly": 6}
SEASONAL_GAIN = 0.5
# Level shift: the last SHIFT_WINDOW values all sit more than Z_SHIFT spreads away from the
# pre-window level projected forward, on the same side.
SHIFT_WINDOW = 3
Z_SHIFT = 4.0
Z_SHIFT_CRITICAL = 12.0
# Spread floor when the changes have no spread at all: 0.1% of the KPI's typical level.
LEVEL_FLOOR = 0.001
# Volume: rows per period of a source (and organisations per KPI and period) against the median
# of the previous VOLUME_HISTORY periods (at least VOLUME_MIN_HISTORY).
VOLUME_HISTORY = 12
VOLUME_MIN_HISTORY = 3
VOLUME_WARN = 0.20       # relative deviation above this: warning
VOLUME_CRITICAL = 0.50   # observed below (1 - this) x typical, or above (1 + 2 x this): critical
# Missing submissions: a period is due lag_days after it ends; GRACE_DAYS more before it is a
# warning; a full cadence period beyond that (the next one is due too) makes it critical.
GRACE_DAYS = 7
CADENCE_DAYS = {"monthly": 31, "quarterly": 92}

KINDS = ("kpi_outlier", "level_shift", "volume", "missing_submission")
SEVERITIES = ("info", "warning", "critical")


@dataclass
class Finding:
    kind: str                 # one of KINDS
    severity: str             # info | warning | critical
    department_id: str | None
    source_id: str | None
    kpi_id: str | None        # None: the finding is about the source as a whole
    period: dt.date
    observed: float | None
    expected: float | None
    lower_bound: float | None
    upper_bound: float | None
    score: float | None       # robust z (KPI values) or relative deviation (volume) or days late
    threshold: float
    method: str
    detail: str
    is_latest: bool = False   # about the latest period of its KPI / source (what trust uses)

    @property
    def finding_key(self) -> str:
        """Stable identity across runs (alerting can fingerprint on it)."""
        return "|".join([self.kind, self.source_id or "", self.kpi_id or "", self.period.isoformat()])

    def as_row(self) -> dict:
        row = asdict(self)
        row["finding_key"] = self.finding_key
        return row


# ---- robust statistics ----------------------------------------------------------------------
def median(xs) -> float:
    return statistics.median(xs)


def robust_spread(deviations: list[float], level: float, resolution: float = 0.0) -> float:
    """Standard-deviation-scale spread of deviations from a centre: the larger of 1.4826 x MAD
    (ignores outliers in the history) and 1.2533 x mean absolute deviation (steadier on short
    histories: a MAD from a dozen values is often 30-40% too small, which would make a 6-spread
    band a 4-spread one). When both are 0 (every deviation 0), LEVEL_FLOOR x the typical level.
    Never below half the data's resolution (a whole-number KPI cannot move by less than 1: a
    change of one unit more than usual is rounding, z = 2 at most)."""
    absdev = [abs(d) for d in deviations]
    mad = median(absdev) if absdev else 0.0
    mean_ad = sum(absdev) / len(absdev) if absdev else 0.0
    spread = max(1.4826 * mad, 1.2533 * mean_ad)
    if spread <= 1e-12:
        spread = max(LEVEL_FLOOR * abs(level), 1e-9)
    return max(spread, resolution / 2)


def resolution(values: list[float]) -> float:
    """The precision the values are reported in: 1 for whole numbers, 0.1 for one decimal, ...
    (up to 3 decimals); 0 for computed values with more decimals (ratios)."""
    for decimals in range(4):
        scale = 10 ** decimals
        if all(abs(v * scale - round(v * scale)) < 1e-6 * max(1.0, abs(v * scale)) for v in values):
            return 1.0 / scale
    return 0.0


def _month_index(d: dt.date) -> int:
    return d.year * 12 + d.month - 1


def _add_months(d: dt.date, n: int) -> dt.date:
    m = d.month - 1 + n
    return dt.date(d.year + m // 12, m % 12 + 1, 1)


def period_end(period: dt.date, cadence: str) -> dt.date:
    return _add_months(period, 3 if cadence == "quarterly" else 1) - dt.timedelta(days=1)


@dataclass
class ValueModel:
    """What a KPI's history says about one period: the expected value and the spread around it.

    `first_difference`: expected = previous (cleaned) value + the median change per period;
    `seasonal_difference`: expected = the (cleaned) value one year earlier + the median
    year-on-year change, which removes a monthly (or quarterly) seasonal pattern and a linear
    trend alike."""
    method: str
    centre: float          # median change per period, or median year-on-year change
    spread: float          # robust spread of the changes around the centre (per period)
    history: int           # how many changes the centre and spread come from

    def expected(self, clean: list[float], idx: list[int], pos: dict[int, int], t: int, base: int) -> float:
        if self.method == "seasonal_difference":
            return clean[pos[idx[t] - self._season]] + self.centre
        return clean[base] + self.centre * (idx[t] - idx[base])

    def spread_at(self, idx: list[int], t: int, base: int) -> float:
        if self.method == "seasonal_difference":
            return self.spread
        return self.spread * math.sqrt(idx[t] - idx[base])

    _season: int = 12


def _mean_abs_dev(xs: list[float]) -> float:
    centre = median(xs)
    return sum(abs(x - centre) for x in xs) / len(xs)


def is_seasonal(values: list[float], idx: list[int], pos: dict[int, int], frequency: str) -> bool:
    """Does the series follow a yearly pattern? Decided once per series, on its raw values:
    year-on-year differences must have at most SEASONAL_GAIN times the mean absolute deviation
    of the period-on-period differences, over the same periods (at least MIN_SEASONAL_HISTORY of
    them). For a trend plus noise both kinds of difference are equally noisy (ratio about 1);
    a seasonal pattern inflates only the period-on-period ones. Mean, not median, deviations: a
    seasonal peak is a few months a year, which a median would ignore."""
    season = SEASON.get(frequency, 12)
    common = [h for h in range(1, len(values)) if idx[h] - season in pos and idx[h] - idx[h - 1] == 1]
    if len(common) < MIN_SEASONAL_HISTORY.get(frequency, 12):
        return False
    yoy = [values[h] - values[pos[idx[h] - season]] for h in common]
    per_period = [values[h] - values[h - 1] for h in common]
    spread = _mean_abs_dev(per_period)
    return spread > 0 and _mean_abs_dev(yoy) <= SEASONAL_GAIN * spread


def value_model(t: int, clean: list[float], idx: list[int], pos: dict[int, int], excluded: set[int],
                frequency: str, unit: float, seasonal: bool) -> ValueModel | None:
    """The model for judging period t from the cleaned values before it (None: too little
    history). A seasonal series is judged only once MIN_SEASONAL_HISTORY year-on-year changes
    exist (before that its peaks cannot be told from outliers); never with the other model."""
    season = SEASON.get(frequency, 12)
    window = HISTORY_WINDOW.get(frequency, 36)
    level = median([abs(v) for v in clean[max(0, t - window):t]])
    if seasonal:
        if idx[t] - season not in pos:
            return None
        yoy = [clean[h] - clean[pos[idx[h] - season]]
               for h in range(t) if h not in excluded and idx[h] - season in pos][-window:]
        if len(yoy) < MIN_SEASONAL_HISTORY.get(frequency, 12):
            return None
        centre = median(yoy)
        return ValueModel("seasonal_difference", centre, robust_spread([c - centre for c in yoy], level, unit),
                          len(yoy), season)
    first = [(clean[h] - clean[h - 1]) / (idx[h] - idx[h - 1])
             for h in range(1, t) if h not in excluded and idx[h] > idx[h - 1]][-window:]
    if len(first) < MIN_HISTORY.get(frequency, 12):
        return None
    centre = median(first)
    return ValueModel("first_difference", centre, robust_spread([c - centre for c in first], level, unit),
                      len(first))


def kpi_value_findings(kpi_id: str, series: list[tuple[dt.date, float]], frequency: str,
                       source_id: str | None = None, department_id: str | None = None,
                       fiscal_start_month: int = 1) -> list[Finding]:
    """Outliers and level shifts of one KPI's series [(period, value)], oldest first.

    Each period is compared with what its own history predicts (see `value_model`): robust z =
    (value - expected) / spread. An outlier does not enter the history: the cleaned series keeps
    the expected value instead, so one bad month neither widens the band nor makes the next,
    normal month look like a jump back. SHIFT_WINDOW consecutive values on the same side of the
    projection made before them, each beyond Z_SHIFT spreads, are a level shift: reported once
    (replacing the outlier findings of those periods), after which the history before the shift
    is moved by the shift so that the new level is the reference."""
    series = sorted(series)
    if len(series) < 3:
        return []
    step = 3 if frequency == "quarterly" else 1
    periods = [p for p, _ in series]
    values = [float(v) for _, v in series]
    idx = [_month_index(p) // step for p in periods]
    pos = {i: n for n, i in enumerate(idx)}
    unit = resolution(values)
    seasonal = is_seasonal(values, idx, pos, frequency)
    clean = values[:]
    excluded: set[int] = set()
    models: dict[int, ValueModel] = {}
    outliers: dict[int, Finding] = {}
    shifts: list[Finding] = []
    latest = len(values) - 1
    for t in range(1, len(values)):
        if idx[t] <= idx[t - 1]:
            continue
        model = value_model(t, clean, idx, pos, excluded, frequency, unit, seasonal)
        if model is None:
            continue
        models[t] = model
        expected = model.expected(clean, idx, pos, t, t - 1)
        spread = model.spread_at(idx, t, t - 1)
        z = (values[t] - expected) / spread
        if abs(z) > Z_OUTLIER:
            outliers[t] = Finding(
                "kpi_outlier", "critical" if abs(z) > Z_OUTLIER_CRITICAL else "warning",
                department_id, source_id, kpi_id, periods[t], values[t], expected,
                expected - Z_OUTLIER * spread, expected + Z_OUTLIER * spread, round(z, 3), Z_OUTLIER,
                model.method.replace("_", " ") + ", robust z",
                f"{kpi_id} {_label(periods[t], frequency, fiscal_start_month)}: {_num(values[t])} against an expected "
                f"{_num(expected)} ({model.method.replace('_', ' ')} model; robust z {z:+.1f}, "
                f"threshold ±{Z_OUTLIER:g})",
                is_latest=(t == latest),
            )
            clean[t] = expected
            excluded.add(t)
        shift = _level_shift(t, values, clean, periods, idx, pos, models, excluded, frequency, kpi_id,
                             source_id, department_id, latest, fiscal_start_month)
        if shift is not None:
            shifts.append(shift)
            first = t - SHIFT_WINDOW + 1
            delta = shift.observed - shift.expected
            for h in range(first):
                clean[h] += delta
            for j in range(first, t + 1):
                outliers.pop(j, None)
                excluded.discard(j)
                clean[j] = values[j]
            excluded.add(first)  # the step itself is not an ordinary change
    return sorted([*outliers.values(), *shifts], key=lambda f: (f.period, f.kind))


def _level_shift(t, values, clean, periods, idx, pos, models, excluded, frequency, kpi_id, source_id,
                 department_id, latest, fiscal_start_month: int = 1) -> Finding | None:
    """Are the last SHIFT_WINDOW values all on the same side of the level projected from before
    them, each by more than Z_SHIFT spreads, after a step (the window's first value is itself
    more than Z_SHIFT spreads from its expected value)? First-difference model: the projection is the
    trend line (median change per period) through the median of the previous (up to 12)
    detrended values, and the spread that of those values around it, so one noisy base value
    does not decide. Seasonal model: each value's own year-on-year projection."""
    first = t - SHIFT_WINDOW + 1
    if first < 1 or any(j not in models for j in range(first, t + 1)):
        return None
    model = models[first]  # what was known just before the window
    if model.method == "seasonal_difference":
        projected = [model.expected(clean, idx, pos, j, j - 1) for j in range(first, t + 1)]
        spread = model.spread
    else:
        base = [h for h in range(first) if h not in excluded][-12:]
        anchors = [clean[h] - model.centre * idx[h] for h in base]
        anchor = median(anchors)
        projected = [anchor + model.centre * idx[j] for j in range(first, t + 1)]
        spread = max(robust_spread([a - anchor for a in anchors], abs(anchor), 0.0), model.spread / math.sqrt(2))
    deviations = [values[j] - proj for j, proj in zip(range(first, t + 1), projected)]
    zs = [d / spread for d in deviations]
    if not (all(z > Z_SHIFT for z in zs) or all(z < -Z_SHIFT for z in zs)):
        return None
    # A step, not a bend: the first value of the window already jumps from the one before it.
    # (A trend that steepens drifts away from the projection gradually; that is the status's
    # business, not a level shift.)
    step_z = (values[first] - model.expected(clean, idx, pos, first, first - 1)) / model.spread_at(idx, first, first - 1)
    if abs(step_z) <= Z_SHIFT or (step_z > 0) != (zs[0] > 0):
        return None
    shift, z = median(deviations), median(zs)
    level_before = median(projected)
    return Finding(
        "level_shift", "critical" if abs(z) > Z_SHIFT_CRITICAL else "warning",
        department_id, source_id, kpi_id, periods[first], level_before + shift, level_before,
        level_before - Z_SHIFT * spread, level_before + Z_SHIFT * spread,
        round(z, 3), Z_SHIFT, f"{SHIFT_WINDOW} consecutive values beyond the projected level",
        f"{kpi_id}: level shift of {_num(shift, signed=True)} from {_label(periods[first], frequency, fiscal_start_month)} "
        f"({SHIFT_WINDOW} periods in a row {'above' if shift > 0 else 'below'} the level projected from "
        f"before them; median robust z {z:+.1f}, threshold ±{Z_SHIFT:g})",
        is_latest=(t == latest),
    )


# ---- volume ----------------------------------------------------------------------------------
def volume_findings(source_id: str, department_id: str | None,
                    org_counts: dict[tuple[str, dt.date], int], kpi_frequency: dict[str, str]) -> list[Finding]:
    """Rows per period of a source against its typical volume, and organisations per KPI.

    org_counts: (kpi_id, period) -> number of organisations that reported the KPI for the period.
    A KPI's typical count is the median over its previous (up to VOLUME_HISTORY) periods. A
    period's expected source volume is the sum of the typical counts of the KPIs due in that
    period (quarterly KPIs only in a quarter's first month), so a source mixing monthly and
    quarterly KPIs is not flagged every quarter. Only periods the source delivered are judged:
    a period with no rows at all is a missing submission."""
    periods = sorted({p for _, p in org_counts})
    if not periods:
        return []
    latest = periods[-1]
    latest_end = period_end(latest, "monthly")
    out: list[Finding] = []
    per_kpi: dict[str, list[tuple[dt.date, int]]] = {}
    for (k, p), n in org_counts.items():
        per_kpi.setdefault(k, []).append((p, n))
    for k in per_kpi:
        per_kpi[k].sort()
    for p in periods:
        observed_total, expected_total, low_kpis = 0, 0.0, []
        for k, hist in per_kpi.items():
            if kpi_frequency.get(k) == "quarterly" and (
                    p.month not in (1, 4, 7, 10) or period_end(p, "quarterly") > latest_end):
                continue  # a quarter is judged once the source has delivered up to its end
            previous = [n for q, n in hist if q < p][-VOLUME_HISTORY:]
            if len(previous) < VOLUME_MIN_HISTORY:
                continue
            typical = median(previous)
            n = org_counts.get((k, p), 0)
            observed_total += n
            expected_total += typical
            if typical > 0:
                dev = (n - typical) / typical
                if abs(dev) > VOLUME_WARN:
                    critical = n < (1 - VOLUME_CRITICAL) * typical or n > (1 + 2 * VOLUME_CRITICAL) * typical
                    low_kpis.append(k)
                    out.append(Finding(
                        "volume", "critical" if critical else "warning", department_id, source_id, k, p,
                        n, typical, typical * (1 - VOLUME_WARN), typical * (1 + VOLUME_WARN), round(dev, 4),
                        VOLUME_WARN, "organisations reporting the KPI vs median of previous periods",
                        f"{k} {p:%Y-%m}: {n} organisation(s) reported, typically {_num(typical)} "
                        f"({dev:+.0%}; threshold ±{VOLUME_WARN:.0%})",
                        is_latest=(p == max(q for q, _ in hist)) or (n == 0 and p == latest),
                    ))
        if expected_total > 0:
            dev = (observed_total - expected_total) / expected_total
            if abs(dev) > VOLUME_WARN:
                critical = dev < -VOLUME_CRITICAL or dev > 2 * VOLUME_CRITICAL
                out.append(Finding(
                    "volume", "critical" if critical else "warning", department_id, source_id, None, p,
                    observed_total, expected_total, expected_total * (1 - VOLUME_WARN),
                    expected_total * (1 + VOLUME_WARN), round(dev, 4), VOLUME_WARN,
                    "rows per period vs sum of the KPIs' typical counts",
                    f"{source_id} {p:%Y-%m}: {observed_total} rows landed, typically {_num(expected_total)} "
                    f"({dev:+.0%}; threshold ±{VOLUME_WARN:.0%})"
                    + (f"; low: {', '.join(sorted(low_kpis))}" if low_kpis else ""),
                    is_latest=(p == latest),
                ))
    return out


# ---- missing submissions ---------------------------------------------------------------------
def missing_submission_findings(source_id: str, department_id: str | None, cadence: str, lag_days: int,
                                landed_periods: set[dt.date], as_of: dt.date,
                                typical_rows: float | None = None, grace_days: int = GRACE_DAYS) -> list[Finding]:
    """Every period of the source's cadence, from its first landed period to the latest one
    due by as_of (period end + lag_days), that has no row. Within the grace period after the
    due date: info; later: warning; once the following period is due as well (more than one
    cadence period late): critical. A source that never delivered anything: one critical
    finding for the latest due period."""
    step = 3 if cadence == "quarterly" else 1
    # The latest period due by as_of (the same rule as int_source_freshness).
    probe = _add_months(dt.date(as_of.year, as_of.month, 1), 1)
    while period_end(probe, cadence) + dt.timedelta(days=lag_days) > as_of:
        probe = _add_months(probe, -1)
    if step == 3:
        while probe.month not in (1, 4, 7, 10) or period_end(probe, cadence) + dt.timedelta(days=lag_days) > as_of:
            probe = _add_months(probe, -1)
    latest_due = probe
    out = []
    if not landed_periods:
        due = period_end(latest_due, cadence) + dt.timedelta(days=lag_days)
        return [Finding(
            "missing_submission", "critical", department_id, source_id, None, latest_due, 0, typical_rows,
            None, None, float((as_of - due).days), grace_days, "periods due by cadence + lag + grace",
            f"{source_id}: nothing has ever landed; {latest_due:%Y-%m} was due on {due}", is_latest=True,
        )]
    p = min(landed_periods)
    while p <= latest_due:
        if p not in landed_periods:
            due = period_end(p, cadence) + dt.timedelta(days=lag_days)
            late = (as_of - due).days
            if late <= grace_days:
                severity = "info"
            elif late > grace_days + CADENCE_DAYS.get(cadence, 31):
                severity = "critical"
            else:
                severity = "warning"
            out.append(Finding(
                "missing_submission", severity, department_id, source_id, None, p, 0,
                typical_rows, None, None, float(late), float(grace_days), "periods due by cadence + lag + grace",
                f"{source_id} {p:%Y-%m}: no submission; due {due} ({lag_days} days after the period), "
                f"{late} day(s) late" + (f", within the {grace_days}-day grace period" if severity == "info" else
                                         f", grace period of {grace_days} days exceeded"),
                is_latest=True,
            ))
        p = _add_months(p, step)
    return out


# ---- warehouse -----------------------------------------------------------------------------
@dataclass
class DriftInputs:
    as_of: dt.date
    kpis: dict[str, dict]                                   # kpi_id -> {source_id, department_id, frequency}
    sources: dict[str, dict]                                # source_id -> {department_id, cadence, lag_days}
    values: dict[str, list[tuple[dt.date, float]]] = field(default_factory=dict)
    org_counts: dict[str, dict[tuple[str, dt.date], int]] = field(default_factory=dict)  # per source


def load_inputs(con, as_of: dt.date | None = None) -> DriftInputs:
    """KPI values from marts.fct_kpi_progress, organisation counts from raw.observations."""
    if as_of is None:
        as_of = con.execute("select max(as_of) from catalog.settings").fetchone()[0]
    kpis = {r["kpi_id"]: r for r in _rows(con, "select kpi_id, source_id, department_id, frequency, fiscal_start_month from catalog.kpis")}
    sources = {r["source_id"]: r for r in _rows(
        con, "select source_id, department_id, cadence, lag_days from catalog.sources")}
    inputs = DriftInputs(as_of, kpis, sources)
    for r in _rows(con, "select kpi_id, period, actual from marts.fct_kpi_progress order by kpi_id, period"):
        if r["actual"] is not None and r["kpi_id"] in kpis:
            inputs.values.setdefault(r["kpi_id"], []).append((r["period"], float(r["actual"])))
    for r in _rows(con, """
            select source_id, kpi_id, period, count(distinct org_id) as orgs
            from raw.observations group by source_id, kpi_id, period"""):
        if r["source_id"] in sources:
            inputs.org_counts.setdefault(r["source_id"], {})[(r["kpi_id"], r["period"])] = int(r["orgs"])
    return inputs


def detect(inputs: DriftInputs) -> list[Finding]:
    out: list[Finding] = []
    for kpi_id, series in sorted(inputs.values.items()):
        k = inputs.kpis[kpi_id]
        out += kpi_value_findings(kpi_id, series, k["frequency"], k["source_id"], k["department_id"],
                                  int(k.get("fiscal_start_month") or 1))
    for source_id, s in sorted(inputs.sources.items()):
        counts = inputs.org_counts.get(source_id, {})
        freq = {k: v["frequency"] for k, v in inputs.kpis.items() if v["source_id"] == source_id}
        out += volume_findings(source_id, s["department_id"], counts, freq)
        per_period: dict[dt.date, int] = {}
        for (_, p), n in counts.items():
            per_period[p] = per_period.get(p, 0) + n
        typical = median(sorted(per_period.values())[-VOLUME_HISTORY:]) if per_period else None
        out += missing_submission_findings(source_id, s["department_id"], s["cadence"], int(s["lag_days"] or 0),
                                           set(per_period), inputs.as_of, typical)
    return out


def _label(period: dt.date, frequency: str, fiscal_start_month: int = 1) -> str:
    """The period as every other place writes it (kpimodel/periods.py): `2014/15 Q2` for a
    quarterly KPI with an April year, `2014-Q3` for a calendar one, `2014-07` for a month."""
    from kpimodel import periods as period_model

    return period_model.label(period, frequency, fiscal_start_month)


def _num(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "n/a"
    text = f"{v:,.0f}" if abs(v) >= 1000 else f"{v:,.2f}".rstrip("0").rstrip(".")
    if text in ("-0", ""):
        text = "0"
    return ("+" if signed and v > 0 else "") + text


def store_findings(con, run_id: str, as_of: dt.date, now: dt.datetime, findings: list[Finding]) -> None:
    """Append the run's findings to quality.drift_findings (history: one set per run)."""
    from pipelines.quality.store import ensure_quality

    ensure_quality(con)
    cols = ["finding_key", "kind", "severity", "department_id", "source_id", "kpi_id", "period", "observed",
            "expected", "lower_bound", "upper_bound", "score", "threshold", "method", "detail", "is_latest"]
    rows = [[run_id, now, as_of, *[f.as_row()[c] for c in cols]] for f in findings]
    # Recorded also when nothing was found: alerting reads the latest evaluation's findings, and
    # "no findings" must resolve earlier ones rather than leave them firing.
    con.execute("insert into quality.drift_runs values (?, ?, ?, ?)", [run_id, now, as_of, len(findings)])
    if rows:
        # Column names are this module's constants; values are bound parameters.
        con.executemany(
            f"insert into quality.drift_findings (run_id, detected_at, as_of, {', '.join(cols)}) "
            f"values ({', '.join(['?'] * (len(cols) + 3))})", rows)
