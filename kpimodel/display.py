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
    """The fewest decimals (at least `base`: the KPI's own `decimals` when the catalog gives
    them, else the usual one below 100) at which the shown figure and each shown threshold
    compare as the figure and the threshold do."""
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


def at_least(value: float | None, decimals: int | None) -> int | None:
    """The fewest decimals a KPI's figure is shown with: its own `decimals` (the precision its
    targets were written with: 3.15 -> 2), never fewer than the usual ones (85.5 stays 85.5
    beside a target of 80)."""
    if decimals is None:
        return None
    return max(int(decimals), base_decimals(value if value is not None else 0))


def figure(value: float | None, unit: str | None = None, against: Iterable[float | None] = (),
           decimals: int | None = None) -> str:
    """`value` shown with enough decimals never to contradict its comparison with `against`
    (at least the KPI's own `decimals`)."""
    return number(value, unit, decimals_against(value, list(against), at_least(value, decimals)))


def written_decimals(value: float) -> int:
    """The decimals a given number was written with (3.15 -> 2, 80.0 -> 0). A number with more
    than 4 decimals was computed (an interpolated 3.1500000000000004, a third), not written:
    it asks for none."""
    text = repr(float(value))
    if "e" in text or "n" in text:  # 1e-07, inf, nan
        return 0
    places = len(text.split(".")[1].rstrip("0"))
    return places if places <= 4 else 0


def figures(value: float | None, others: Iterable[float | None], unit: str | None = None,
            decimals: int | None = None) -> tuple[str, list[str]]:
    """The figure and the thresholds it is judged against, all with the same decimals, so that
    "94.99% against 95.00%" reads as the miss it is; at least the KPI's own `decimals`, and at
    least the decimals a threshold was given with (a target of 3.15 -- from the catalog or
    delivered with the data -- is "3.15", not "3.1")."""
    others = list(others)
    given = max((written_decimals(o) for o in others if o is not None), default=0)
    if given:
        decimals = max(given, decimals or 0)
    base = at_least(value if value is not None else next((o for o in others if o is not None), None), decimals)
    decimals = decimals_against(value, others, base)
    if value is None:
        decimals = base if base is not None else max((base_decimals(o) for o in others if o is not None), default=1)
    return number(value, unit, decimals), [number(o, unit, decimals) for o in others]


def tolerance_text(tolerance: float | None, kind: str | None, unit: str | None = None) -> str | None:
    """A tolerance as the catalog writes it: "10%" (a share of the target) or an amount in the
    KPI's unit ("0.5 days", "1 pp" for a percentage)."""
    if tolerance is None:
        return None
    if kind == "share":
        return f"{rounded(float(tolerance) * 100, 6).normalize():f}%"
    text = f"{rounded(float(tolerance), 6).normalize():f}"
    if is_percent(unit):
        return f"{text} pp"
    return f"{text} {unit}" if unit and unit.strip() else text


def status_words(row: dict, tolerance: float | None = None, kind: str | None = None, unit: str | None = None) -> str:
    """A period's status in words with the tolerance as written: "amber (within 10% of
    target)", "red (more than 10% from target)", "standard met", "within range", "no target"
    (a figure with neither target nor standard: shown as data only)."""
    st, judged = row.get("status"), row.get("judged_by")
    tol = tolerance_text(tolerance, kind, unit)
    if judged == "standard":
        return f"standard {'met' if row.get('standard_met') else 'not met'}"
    if judged == "band":
        what = "within range" if row.get("standard_met") else "outside range"
        if st == "amber" and tol:
            return f"{what} (amber: within {tol} of the range)"
        if st == "red" and tol:
            return f"{what} (red: more than {tol} outside the range)"
        return f"{what} ({st})"
    if judged == "trajectory":
        if st == "amber" and tol:
            return f"amber (within {tol} of target)"
        if st == "red" and tol:
            return f"red (more than {tol} from target)"
        return str(st)
    if row.get("actual") is not None:
        return "no target (target withdrawn)" if row.get("target_withdrawn") else "no target"
    return str(st)


def kpi_title(kpi_id: str, code: str | None = None, name: str | None = None) -> str:
    """A KPI with the organisation's own code beside it: "CS01 Calls answered" (with a name),
    "CS01 (cs01)" (the id); the id or name alone when the code is the id."""
    if not code or code == kpi_id:
        return name or kpi_id
    return f"{code} {name}" if name else f"{code} ({kpi_id})"


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
