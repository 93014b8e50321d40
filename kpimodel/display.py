"""Figures shown so that they never contradict their status.

A month at 94.99% against a 95% standard is *not met*; shown with one decimal it reads
"95.0%", which looks met. Every figure kpiwatch shows beside a status is therefore given with
the fewest decimals (at least the usual one or two) at which the rounded figure relates to
each threshold it is judged against (the standard, the expected value, the tolerance edge) as
the figure itself does. Changes of a percentage are percentage points and say "pp".

Pure functions: the scorecard, the command line, `explain` and alert texts all use them.
"""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Iterable

PERCENT_UNITS = {"percent", "%", "pct"}
# dbt rounds gaps to 9 decimals before judging (int_kpi_status, int_kpi_standards): a figure
# within 1e-9 of its threshold counts as on it. The same rule is used here.
JUDGE_DECIMALS = 9
MAX_DECIMALS = 12


def is_percent(unit: str | None) -> bool:
    return (unit or "").strip().lower() in PERCENT_UNITS


def _dec(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def rounded(value: float, decimals: int) -> Decimal:
    """`value` rounded half away from zero to `decimals` places (as shown)."""
    return _dec(value).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def _sign(x) -> int:
    return (x > 0) - (x < 0)


def relation(value: float, threshold: float) -> int:
    """-1, 0 or 1: the figure below, on or above the threshold, as the status rules judge it
    (the difference rounded to 9 decimals)."""
    return _sign(round(float(value) - float(threshold), JUDGE_DECIMALS))


def base_decimals(value: float) -> int:
    """The usual number of decimals: 1 below 100, none from 100 up (as the scorecard always did)."""
    return 1 if abs(float(value)) < 100 else 0


def decimals_against(value: float | None, thresholds: Iterable[float | None], base: int | None = None) -> int:
    """The fewest decimals (at least `base`) at which the shown figure and each shown
    threshold compare as the figure and the threshold do."""
    if value is None:
        return base or 0
    points = [float(t) for t in thresholds if t is not None]
    start = base_decimals(value) if base is None else base
    for decimals in range(start, MAX_DECIMALS + 1):
        shown = rounded(value, decimals)
        if all(_sign(shown - rounded(t, decimals)) == relation(value, t) for t in points):
            return decimals
    return MAX_DECIMALS


def number(value: float | None, unit: str | None = None, decimals: int | None = None, *, signed: bool = False) -> str:
    """A figure with thousands separators and its unit ("%" for percentages)."""
    if value is None:
        return "–"
    decimals = base_decimals(value) if decimals is None else decimals
    text = f"{rounded(value, decimals):{'+' if signed else ''},.{decimals}f}"
    if text in ("-0", "+0") or text.strip("+-0.,") == "":
        text = text.lstrip("+-")  # never "-0.0"
        if signed:
            text = "±" + text
    return f"{text}%" if is_percent(unit) else text


def figure(value: float | None, unit: str | None = None, against: Iterable[float | None] = ()) -> str:
    """`value` shown with enough decimals never to contradict its comparison with `against`."""
    return number(value, unit, decimals_against(value, list(against)))


def figures(value: float | None, others: Iterable[float | None], unit: str | None = None) -> tuple[str, list[str]]:
    """The figure and the thresholds it is judged against, all with the same decimals, so that
    "94.99% against 95.00%" reads as the miss it is."""
    others = list(others)
    decimals = decimals_against(value, others)
    if value is None:
        decimals = max((base_decimals(o) for o in others if o is not None), default=1)
    return number(value, unit, decimals), [number(o, unit, decimals) for o in others]


def change(delta: float | None, unit: str | None = None) -> str:
    """A change between two periods: signed, in percentage points ("pp") for a percentage,
    otherwise in the KPI's unit."""
    if delta is None:
        return "–"
    decimals = base_decimals(delta)
    if delta != 0 and rounded(delta, decimals) == 0:
        decimals = decimals_against(delta, [0.0])  # a real change never shows as zero
    text = f"{rounded(delta, decimals):+,.{decimals}f}".replace("-", "−")
    if rounded(delta, decimals) == 0:
        text = f"±{rounded(0, decimals):.{decimals}f}"
    return f"{text} pp" if is_percent(unit) else text


def thresholds_of(row: dict, tolerance: float | None = None) -> list[float]:
    """What a KPI period's status judges its actual against: its standard, its expected value
    and the tolerance edge (amber/red) beside it."""
    out = []
    if row.get("standard_value") is not None:
        out.append(float(row["standard_value"]))
    if row.get("band_lower") is not None and row.get("band_upper") is not None:
        lower, upper = float(row["band_lower"]), float(row["band_upper"])
        out += [lower, upper] + ([lower - tolerance, upper + tolerance] if tolerance else [])
    expected = row.get("expected_value")
    if expected is not None:
        out.append(float(expected))
        if tolerance:
            lower = (row.get("direction") or "higher_is_better") == "lower_is_better"
            out.append(float(expected) + (tolerance if lower else -tolerance))
    return out


def standard_met(value: float, standard: float, direction: str) -> bool:
    """The rule of int_kpi_standards: met when the figure is on or beyond the standard in the
    KPI's good direction (difference rounded to 9 decimals)."""
    rel = relation(value, standard)
    return rel <= 0 if direction == "lower_is_better" else rel >= 0


def band_status(value: float, lower: float, upper: float, tolerance: float) -> str:
    """The rule of int_kpi_status for a within_range KPI: green inside the band (inclusive),
    amber up to `tolerance` outside it, red beyond."""
    outside = max(round(float(lower) - float(value), JUDGE_DECIMALS), round(float(value) - float(upper), JUDGE_DECIMALS), 0.0)
    if outside == 0:
        return "green"
    return "amber" if outside <= tolerance else "red"


def trajectory_status(value: float, expected: float, tolerance: float, direction: str) -> str:
    """The rule of int_kpi_status against a trajectory."""
    gap = float(value) - float(expected)
    if direction == "lower_is_better":
        gap = -gap
    gap = round(gap, JUDGE_DECIMALS)
    if gap >= 0:
        return "green"
    return "amber" if gap >= -tolerance else "red"
