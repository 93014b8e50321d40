"""The period model (kpimodel/periods.py): parsing, labels, ends and alignment for
every frequency, fiscal years with a start month, and ingest and `explain` agreeing on it."""
from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.ingest.parsing import Rejected
from pipelines.ingest.parsing import parse_period as ingest_parse
from kpimodel import periods
from pipelines.reporting.trail import TrailError
from pipelines.reporting.trail import parse_period as explain_parse

D = dt.date


@pytest.mark.parametrize("text, frequency, start, end, label", [
    ("2026-W14", "weekly", D(2026, 3, 30), D(2026, 4, 5), "2026-W14"),
    ("2020-W53", "weekly", D(2020, 12, 28), D(2021, 1, 3), "2020-W53"),   # a 53-week ISO year
    ("2025-W01", "weekly", D(2024, 12, 30), D(2025, 1, 5), "2025-W01"),   # week 1 starts in December
    ("2026-03", "monthly", D(2026, 3, 1), D(2026, 3, 31), "2026-03"),
    ("Feb 2028", "monthly", D(2028, 2, 1), D(2028, 2, 29), "2028-02"),
    ("2026-Q3", "quarterly", D(2026, 7, 1), D(2026, 9, 30), "2026-Q3"),
    ("2019/20 Q4", "quarterly", D(2020, 1, 1), D(2020, 3, 31), "2020-Q1"),  # fiscal Q4 = Jan-Mar
    ("2026", "annual", D(2026, 1, 1), D(2026, 12, 31), "2026"),
    ("2019/20", "fiscal_year", D(2019, 4, 1), D(2020, 3, 31), "2019/20"),
    ("FY2019/2020", "fiscal_year", D(2019, 4, 1), D(2020, 3, 31), "2019/20"),
    ("1999-00", "fiscal_year", D(1999, 4, 1), D(2000, 3, 31), "1999/00"),
])
def test_each_frequency_parses_ends_and_labels(text, frequency, start, end, label):
    assert periods.parse(text, frequency) == start
    assert periods.end_of(start, frequency) == end
    assert periods.label(start, frequency) == label
    assert periods.next_start(start, frequency) == end + dt.timedelta(days=1)


def test_fiscal_year_with_another_start_month():
    # a July-June year (e.g. Australia): 2019/20 runs 1 July 2019 - 30 June 2020
    assert periods.parse("2019/20", "fiscal_year", fiscal_start_month=7) == D(2019, 7, 1)
    assert periods.end_of(D(2019, 7, 1), "fiscal_year") == D(2020, 6, 30)
    assert periods.start_of(D(2020, 6, 30), "fiscal_year", 7) == D(2019, 7, 1)
    assert periods.start_of(D(2020, 7, 1), "fiscal_year", 7) == D(2020, 7, 1)
    assert periods.parse("2019/20 Q2", "quarterly", fiscal_start_month=7) == D(2019, 10, 1)
    # a fiscal year starting in January is the calendar year
    assert periods.label(D(2026, 1, 1), "fiscal_year") == "2026"


@pytest.mark.parametrize("text, frequency, reason", [
    ("2026-W14", "monthly", "period_not_aligned"),     # a week is not read as the month it starts in
    ("2026-Q3", "monthly", "period_not_aligned"),
    ("2019/20", "quarterly", "period_not_aligned"),
    ("2026", "monthly", "unparseable_period"),         # a bare year (often a truncated 2026-10)
    ("2026-03-03", "weekly", "period_not_aligned"),    # a Tuesday
    ("2026-05-01", "fiscal_year", "period_not_aligned"),  # the year starts in April
    ("2019/21", "fiscal_year", "unparseable_period"),  # not consecutive years
    ("2026-W54", "weekly", "unparseable_period"),
    ("next spring", None, "unparseable_period"),
])
def test_refusals_are_named(text, frequency, reason):
    with pytest.raises(periods.PeriodError) as exc:
        periods.parse(text, frequency)
    assert exc.value.reason == reason


FREQUENCIES = st.sampled_from(periods.FREQUENCIES)


@settings(max_examples=300, deadline=None)
@given(day=st.dates(min_value=D(1950, 1, 1), max_value=D(2090, 12, 31)), frequency=FREQUENCIES,
       fiscal_start_month=st.integers(min_value=2, max_value=12))
def test_every_label_parses_back_to_its_period(day, frequency, fiscal_start_month):
    fy = fiscal_start_month if frequency in ("fiscal_year", "quarterly") else 1
    start = periods.start_of(day, frequency, fy)
    assert start <= day <= periods.end_of(start, frequency)
    text = periods.label(start, frequency, fy)
    assert periods.parse(text, frequency, fy) == start
    # ingest and `explain` read the label the same way (one period model)
    assert ingest_parse(text, frequency, fiscal_start_month=fy) == start
    assert explain_parse(text, frequency, fy) == start


def test_ingest_and_explain_agree_on_fiscal_quarters():
    # Regression: ingest accepted "2019/20 Q1" while `kpiwatch explain` refused it.
    assert ingest_parse("2019/20 Q1", "quarterly") == explain_parse("2019/20 Q1", "quarterly") == D(2019, 4, 1)
    with pytest.raises(Rejected) as rejected:
        ingest_parse("2026-W14", "monthly")
    assert rejected.value.reason == "period_not_aligned"
    with pytest.raises(TrailError, match="not a period of this monthly KPI"):
        explain_parse("2026-W14", "monthly")


def test_fiscal_quarter_labels_one_way():
    # a quarterly KPI whose year starts in April: "2014/15 Q2" is July-September 2014, shown,
    # parsed by explain and by ingest the same way
    assert periods.label(D(2014, 7, 1), "quarterly", 4) == "2014/15 Q2"
    assert periods.label(D(2015, 1, 1), "quarterly", 4) == "2014/15 Q4"
    assert periods.label(D(2014, 4, 1), "quarterly", 4) == "2014/15 Q1"
    assert periods.label(D(2014, 7, 1), "quarterly", 7) == "2014/15 Q1"
    assert periods.label(D(2014, 7, 1), "quarterly") == "2014-Q3"  # a calendar year
    assert periods.words(D(2014, 7, 1), "quarterly", 4) == "2014/15 Q2"
    for text in ("2014/15 Q2", "2014/2015 Q2", "FY2014/15 Q2", "2014-Q3", "2014-07", "2014-07-01"):
        assert explain_parse(text, "quarterly", 4) == D(2014, 7, 1), text
    assert ingest_parse("2014/15 Q2", "quarterly", fiscal_start_month=4) == D(2014, 7, 1)
    # a quarterly KPI without its own year start reads a fiscal quarter as the April year
    assert explain_parse("2014/15 Q2", "quarterly", 1) == ingest_parse("2014/15 Q2", "quarterly") == D(2014, 7, 1)


def test_words_for_prose():
    assert periods.words(D(2026, 10, 1), "monthly") == "Oct 2026"
    assert periods.words(D(2026, 3, 30), "weekly") == "2026-W14"
    assert periods.words(D(2019, 4, 1), "fiscal_year") == "2019/20"
