"""The period model: one place that knows what a period is for every frequency kpiwatch reports.

A period is stored as its first day. Frequencies:

| frequency | period starts | label | other forms parsed |
|---|---|---|---|
| weekly | Monday of an ISO week | `2026-W14` | `2026W14`, a Monday's date |
| monthly | 1st of a month | `2026-03` | `2026-03-01`, `Mar 2026`, `March 2026` |
| quarterly | 1st of Jan/Apr/Jul/Oct | `2026-Q3`; `2019/20 Q1` when the year starts in April | `2026Q3`; fiscal `2019/20 Q1` (= Apr-Jun 2019 with an April year) |
| annual | 1 January | `2026` | `2026-01-01` |
| fiscal_year | 1st of the start month (April by default) | `2019/20` | `2019/2020`, `FY2019/20`, `2019-20` (but `2011-12` is December 2011) |

Ingest (pipelines/ingest/parsing.py) reads department returns with it; `kpiwatch explain`, the
scorecard, the command line and alerts label periods with it.
"""
from __future__ import annotations

import datetime as dt
import re

FREQUENCIES = ("weekly", "monthly", "quarterly", "annual", "fiscal_year")
DEFAULT_FISCAL_START_MONTH = 4  # April: the UK government's financial year

_MONTH_NAMES = ["january", "february", "march", "april", "may", "june", "july", "august",
                "september", "october", "november", "december"]
_MONTHS = {**{m: i for i, m in enumerate(_MONTH_NAMES, start=1)},
           **{m[:3]: i for i, m in enumerate(_MONTH_NAMES, start=1)}, "sept": 9}
MONTH_NUMBERS = _MONTHS  # month names and abbreviations (lower case) -> 1..12, for the readers

_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_DAY = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ][0-9:.]+)?$")
_QUARTER = re.compile(r"^(\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)
_FISCAL_QUARTER = re.compile(r"^(?:FY\s*)?(\d{4})\s*[/-]\s*(\d{2}|\d{4})\s*-?\s*Q([1-4])$", re.IGNORECASE)
_FISCAL_YEAR = re.compile(r"^(?:FY\s*)?(\d{4})\s*[/-]\s*(\d{2}|\d{4})$", re.IGNORECASE)
_WEEK = re.compile(r"^(\d{4})\s*-?\s*W(\d{1,2})$", re.IGNORECASE)
_YEAR = re.compile(r"^(\d{4})$")
_MONTH_NAME = re.compile(r"^([A-Za-z]{3,9})\.?[\s-]+(\d{4})$")


class PeriodError(ValueError):
    """A text or date that is not a period of the frequency asked for; `reason` is the
    quarantine reason (unparseable_period, period_not_aligned)."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(detail)


def _add_months(d: dt.date, months: int) -> dt.date:
    index = d.year * 12 + d.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def _second_year(first: int, text: str) -> int:
    return int(text) if len(text) == 4 else first // 100 * 100 + int(text) + (100 if int(text) < first % 100 else 0)


def start_of(day: dt.date, frequency: str, fiscal_start_month: int = DEFAULT_FISCAL_START_MONTH) -> dt.date:
    """The first day of the period (of `frequency`) that contains `day`."""
    if frequency == "weekly":
        return day - dt.timedelta(days=day.weekday())
    if frequency == "quarterly":
        return dt.date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
    if frequency == "annual":
        return dt.date(day.year, 1, 1)
    if frequency == "fiscal_year":
        year = day.year if day.month >= fiscal_start_month else day.year - 1
        return dt.date(year, fiscal_start_month, 1)
    return dt.date(day.year, day.month, 1)


def end_of(start: dt.date, frequency: str) -> dt.date:
    """The last day of the period that starts on `start`."""
    if frequency == "weekly":
        return start + dt.timedelta(days=6)
    months = {"quarterly": 3, "annual": 12, "fiscal_year": 12}.get(frequency, 1)
    return _add_months(start, months) - dt.timedelta(days=1)


def next_start(start: dt.date, frequency: str) -> dt.date:
    return end_of(start, frequency) + dt.timedelta(days=1)


def label(start: dt.date, frequency: str | None, fiscal_start_month: int | None = 1) -> str:
    """How a period is written everywhere kpiwatch shows one: 2026-W14, 2026-03, 2026-Q3, 2026,
    2019/20. A quarter of a KPI whose year starts in another month than January
    (`fiscal_start_month`, e.g. 4) is a fiscal quarter: `2014/15 Q2` (July-September 2014)."""
    if frequency == "weekly":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if frequency == "quarterly":
        fiscal = fiscal_start_month or 1
        if fiscal != 1 and (start.month - fiscal) % 3 == 0:
            first = start.year if start.month >= fiscal else start.year - 1
            return f"{first}/{(first + 1) % 100:02d} Q{(start.month - fiscal) % 12 // 3 + 1}"
        return f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    if frequency == "annual":
        return f"{start.year}"
    if frequency == "fiscal_year":
        if start.month == 1:
            return f"{start.year}"
        return f"{start.year}/{(start.year + 1) % 100:02d}"
    return f"{start.year}-{start.month:02d}"


def aligned(day: dt.date, frequency: str | None, fiscal_start_month: int = DEFAULT_FISCAL_START_MONTH) -> dt.date:
    """`day` if it is the first day of a period of `frequency`, else PeriodError. Without a
    frequency (the KPI is not known yet) any first day of a month is accepted."""
    if frequency != "weekly" and day.day != 1:
        raise PeriodError("period_not_aligned", f"period {day.isoformat()} is not the first day of a month")
    if frequency is None or start_of(day, frequency, fiscal_start_month) == day:
        return day
    if frequency == "quarterly":
        raise PeriodError("period_not_aligned", f"period {day.isoformat()} does not start a quarter")
    what = {"weekly": "a Monday (the start of an ISO week)", "annual": "1 January",
            "fiscal_year": f"the first day of a fiscal year (starting in month {fiscal_start_month})"}
    raise PeriodError("period_not_aligned", f"period {day.isoformat()} is not {what.get(frequency, frequency)}")


def _only(text: str, frequency: str | None, allowed: tuple[str, ...], what: str) -> None:
    """A form that names its own kind of period ("2026-W14" is a week) is refused for a KPI of
    another frequency instead of being read as the month it happens to start in."""
    if frequency is not None and frequency not in allowed:
        raise PeriodError("period_not_aligned", f"period {text[:40]!r} is {what}, not a {frequency} period")


def parse(text: str, frequency: str | None = None,
          fiscal_start_month: int = DEFAULT_FISCAL_START_MONTH) -> dt.date:
    """A period's first day from its text: '2026-10', '2026-10-01', 'May 2019', '2026-Q3',
    '2019/20 Q1', '2026-W14', '2026', '2019/20'. The result is checked against `frequency`
    (when given). Raises PeriodError."""
    text = str(text).strip()
    try:
        # "2019-20" is a fiscal year, "2019-12" a month: the month form takes 01-12 only
        if (m := _MONTH.match(text)) and 1 <= int(m[2]) <= 12:
            day = dt.date(int(m[1]), int(m[2]), 1)
        elif m := _DAY.match(text):
            day = dt.date(int(m[1]), int(m[2]), int(m[3]))
        elif m := _QUARTER.match(text):
            _only(text, frequency, ("quarterly",), "a quarter")
            day = dt.date(int(m[1]), 3 * (int(m[2]) - 1) + 1, 1)
        elif m := _FISCAL_QUARTER.match(text):
            first, q = int(m[1]), int(m[3])
            if _second_year(first, m[2]) != first + 1:
                raise ValueError
            _only(text, frequency, ("quarterly",), "a fiscal quarter")
            # a year written across two calendar years does not start in January: a KPI
            # without its own year start reads it as the UK financial year (April), as ingest does
            start = fiscal_start_month if fiscal_start_month != 1 else DEFAULT_FISCAL_START_MONTH
            day = _add_months(dt.date(first, start, 1), 3 * (q - 1))
        elif m := _FISCAL_YEAR.match(text):
            first = int(m[1])
            if _second_year(first, m[2]) != first + 1:
                raise ValueError
            _only(text, frequency, ("fiscal_year",), "a fiscal year")
            day = dt.date(first, fiscal_start_month, 1)
            frequency = frequency or "fiscal_year"
        elif m := _WEEK.match(text):
            _only(text, frequency, ("weekly",), "an ISO week")
            day = dt.date.fromisocalendar(int(m[1]), int(m[2]), 1)
            frequency = frequency or "weekly"
        elif (m := _YEAR.match(text)) and frequency in (None, "annual", "fiscal_year"):
            # a bare year is a period of a yearly KPI only; for others it is not a period at
            # all (often a truncated "2026-10")
            day = dt.date(int(m[1]), fiscal_start_month if frequency == "fiscal_year" else 1, 1)
        elif (m := _MONTH_NAME.match(text)) and m[1].lower() in _MONTHS:
            day = dt.date(int(m[2]), _MONTHS[m[1].lower()], 1)
        else:
            raise ValueError
    except PeriodError:
        raise
    except ValueError:
        raise PeriodError("unparseable_period", f"period={text[:40]!r}") from None
    return aligned(day, frequency, fiscal_start_month)


def forms(frequency: str | None = None) -> str:
    """The period forms accepted, for error messages."""
    return {"weekly": "YYYY-Www (ISO week)", "quarterly": "YYYY-Qn or YYYY/YY Qn", "annual": "YYYY",
            "fiscal_year": "YYYY/YY"}.get(frequency or "", "YYYY-MM, YYYY-MM-DD, YYYY-Qn, YYYY/YY Qn, YYYY-Www, YYYY or YYYY/YY")


def words(start: dt.date, frequency: str | None, fiscal_start_month: int | None = 1) -> str:
    """A period for prose: 'Oct 2026' for a month, otherwise its label ('2026-W14',
    '2026-Q3', '2014/15 Q2', '2026', '2019/20')."""
    if frequency in (None, "monthly"):
        return f"{start:%b %Y}"
    return label(start, frequency, fiscal_start_month)
