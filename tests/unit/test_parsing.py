import datetime as dt

import pytest

from pipelines.ingest.fastparse import parse_batch
from pipelines.ingest.parsing import Rejected, parse_number, parse_period


@pytest.mark.parametrize("raw,expected", [
    ("12.5", 12.5), (" 7 ", 7.0), ("1,234,567", 1234567.0), ("-3", -3.0), (4, 4.0), (2.5, 2.5), ("", None), (None, None),
])
def test_numbers(raw, expected):
    assert parse_number(raw, "value") == expected


@pytest.mark.parametrize("raw", ["3O.5", "12,4", "nan", "inf", "1e309", "--5", "1.2.3", True])
def test_unparseable_numbers_are_named(raw):
    with pytest.raises(Rejected) as exc:
        parse_number(raw, "value")
    assert exc.value.reason == "unparseable_number"


@pytest.mark.parametrize("raw", ["-", "N/A", "n/a", "..", "*", " : "])
def test_missing_markers_are_missing_not_zero(raw):
    with pytest.raises(Rejected) as exc:
        parse_number(raw, "value")
    assert exc.value.reason == "missing_value"


@pytest.mark.parametrize("raw,unit,expected", [
    ("95%", "percent", 95.0), ("95.5 %", None, 95.5), ("0.955", "fraction_to_percent", 95.5),
    ("95%", "fraction_to_percent", 95.0), ("1\u00a0234", None, 1234.0), ("+7", None, 7.0),
])
def test_units_and_text_forms(raw, unit, expected):
    assert parse_number(raw, "value", unit) == pytest.approx(expected)


@pytest.mark.parametrize("raw,freq,expected", [
    ("2026-10", "monthly", dt.date(2026, 10, 1)),
    ("2026-10-01", "monthly", dt.date(2026, 10, 1)),
    ("2026-Q3", "quarterly", dt.date(2026, 7, 1)),
    ("2026 q1", "quarterly", dt.date(2026, 1, 1)),
    (dt.datetime(2025, 4, 1, 0, 0), "quarterly", dt.date(2025, 4, 1)),
    ("May 2019", "monthly", dt.date(2019, 5, 1)),
    ("September 2019", "monthly", dt.date(2019, 9, 1)),
    ("2019/20 Q1", "quarterly", dt.date(2019, 4, 1)),
    ("2019/20 Q4", "quarterly", dt.date(2020, 1, 1)),
    ("2019/2020 Q3", "quarterly", dt.date(2019, 10, 1)),
    ("2017-03-01 00:00:00", "monthly", dt.date(2017, 3, 1)),
])
def test_periods(raw, freq, expected):
    assert parse_period(raw, freq) == expected


@pytest.mark.parametrize("raw,freq,reason", [
    ("Octember 2026", "monthly", "unparseable_period"),
    ("2019/20 Q5", "quarterly", "unparseable_period"),
    ("2026-13", "monthly", "unparseable_period"),
    ("2026-10-15", "monthly", "period_not_aligned"),
    ("2026-08", "quarterly", "period_not_aligned"),
])
def test_bad_periods_are_named(raw, freq, reason):
    with pytest.raises(Rejected) as exc:
        parse_period(raw, freq)
    assert exc.value.reason == reason


def test_an_integer_too_large_for_a_number_quarantines_its_row_not_the_file():
    # A workbook cell holding a 400-digit integer made float() raise OverflowError, which refused the whole file.
    for parse in (lambda v: parse_number(v, "value"),
                  lambda v: parse_batch([(1, {"k": "sum_kpi", "p": "2026-10", "v": v})],
                                        {"id": "s", "columns": {"kpi_id": "k", "period": "p", "value": "v"}},
                                        {"sum_kpi": {"frequency": "monthly", "aggregation": "sum"}})):
        try:
            out = parse(10 ** 400)
        except Rejected as exc:
            rejected = exc
        else:
            [(_, rejected)] = out[2]
        assert rejected.reason == "unparseable_number" and "an integer of 401 digits" in rejected.detail
