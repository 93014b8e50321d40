"""The column-at-a-time parser gives exactly parse_record's results, rejections included."""
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.ingest.fastparse import _row_at_a_time, parse_batch
from pipelines.ingest.parsing import Rejected, parse_record

KPIS = {
    "ratio_kpi": {"frequency": "monthly", "aggregation": "ratio"},
    "sum_kpi": {"frequency": "monthly", "aggregation": "sum"},
    "q_kpi": {"frequency": "quarterly", "aggregation": "mean"},
}
SOURCE = {"id": "s", "columns": {"kpi_id": "k", "period": "p", "org_id": "o", "value": "v",
                                 "numerator": {"column": "n"}, "denominator": "d"}}
PERCENT = {"id": "s", "columns": {**SOURCE["columns"], "value": {"column": "v", "unit": "fraction_to_percent"}}}

cells = st.one_of(
    st.none(), st.just(""), st.just(" "), st.sampled_from(["-", "n/a", "x", "12,5x", "1,234.5", "95%", "1e999", "nan",
                                                          " 7 ", "+3.", ".5", "-0", "1e3", "0x10", "1_000"]),
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), st.booleans(),
    st.decimals(allow_nan=False, allow_infinity=False, places=2),
    st.from_regex(r"-?\d{1,6}(\.\d{1,4})?", fullmatch=True),
)
periods = st.one_of(st.none(), st.sampled_from(["2026-10", "2026-01", "2026-02", "2026-Q3", "2026-10-15", "May 2019",
                                                "nonsense", "", "1066-01", "2026-13"]),
                    st.dates(dt.date(1890, 1, 1), dt.date(2030, 1, 1)))
kpi_ids = st.one_of(st.none(), st.sampled_from([*KPIS, "unknown", " sum_kpi ", ""]), st.integers(0, 3), st.just(1.0))
records = st.fixed_dictionaries({"k": kpi_ids, "p": periods, "o": st.one_of(st.none(), st.sampled_from(["A", "B", 3, 3.0])),
                                 "v": cells, "n": cells, "d": cells})


def _same(numbered, source):
    fast_rows, fast_parsed, fast_rej = parse_batch(numbered, source, KPIS)
    slow_rows, slow_parsed, slow_rej = _row_at_a_time(numbered, source, KPIS)
    assert (fast_rows, fast_parsed) == (slow_rows, slow_parsed)
    # ... and both are parse_record's, row by row.
    for n, rec in numbered:
        try:
            expected = parse_record(rec, source, KPIS)
        except Rejected:
            assert n not in fast_rows
            continue
        i = fast_rows.index(n)
        assert {c: fast_parsed[c][i] for c in expected} == expected
    assert [(n, r.reason, r.detail) for n, r in fast_rej] == [(n, r.reason, r.detail) for n, r in slow_rej]


@settings(max_examples=300, deadline=None)
@given(st.lists(records, max_size=30), st.sampled_from([SOURCE, PERCENT]))
def test_column_at_a_time_equals_row_at_a_time(recs, source):
    _same(list(enumerate(recs, start=1)), source)


def test_a_mapping_with_rules_goes_row_at_a_time():
    source = {"id": "s", "columns": {"kpi_id": {"column": "k", "map": {"A": "sum_kpi"}}, "period": "p", "value": "v"}}
    _same([(1, {"k": "A", "p": "2026-10", "v": "5"}), (2, {"k": "B", "p": "2026-10", "v": "5"})], source)


def test_clean_rows_do_not_go_row_at_a_time(monkeypatch):
    import pipelines.ingest.fastparse as fp

    calls = []
    real = fp.parse_record
    monkeypatch.setattr(fp, "parse_record", lambda rec, *a: calls.append(rec) or real(rec, *a))
    recs = [{"k": "ratio_kpi", "p": "2026-10", "o": f"O{i}", "v": None, "n": str(i), "d": "100.0"} for i in range(50)]
    recs += [{"k": "sum_kpi", "p": "2026-10", "o": "A", "v": 2.5, "n": "", "d": ""},
             {"k": "sum_kpi", "p": "2026-10", "o": "B", "v": "-", "n": "", "d": ""}]
    rows, parsed, rejected = parse_batch(list(enumerate(recs, start=1)), SOURCE, KPIS)
    assert len(rows) == 51 and [(n, r.reason) for n, r in rejected] == [(52, "missing_value")]
    assert {c: v[0] for c, v in parsed.items()} == {"kpi_id": "ratio_kpi", "org_id": "O0", "period": dt.date(2026, 10, 1),
                                                  "value": None, "numerator": 0.0, "denominator": 100.0, "target": None}
    assert len(calls) == 1  # only the marker row


def test_no_target_values_mean_no_target_on_both_paths():
    """A source's no_target_values (MTA writes 0) become no target; without the key a target of 0
    is a target (a project 0 days behind schedule); an empty target cell is no target."""
    source = {"id": "s", "columns": {"kpi_id": "k", "period": "p", "value": "v", "target": "t"}}
    numbered = [(1, {"k": "sum_kpi", "p": "2026-01", "v": "5", "t": "0"}),
                (2, {"k": "sum_kpi", "p": "2026-02", "v": "-3", "t": "12.5"}),
                (3, {"k": "sum_kpi", "p": "2026-03", "v": "4", "t": ""})]
    for src, expected in ((source, [0.0, 12.5, None]), ({**source, "no_target_values": [0]}, [None, 12.5, None])):
        _same(numbered, src)
        assert parse_batch(numbered, src, KPIS)[1]["target"] == expected
        assert [parse_record(rec, src, KPIS)["target"] for _, rec in numbered] == expected


def test_fiscal_periods_are_read_in_the_kpis_own_year():
    """`2019/20 Q1` is April-June 2019 for a KPI with the default (April) year, July-September
    for one whose year starts in July -- on both paths, as status and explain label them."""
    kpis = {**KPIS, "july_q": {"frequency": "quarterly", "aggregation": "mean", "fiscal_year_start_month": 7},
            "fy_july": {"frequency": "fiscal_year", "aggregation": "sum", "fiscal_year_start_month": 7}}
    source = {"id": "s", "columns": {"kpi_id": "k", "period": "p", "value": "v"}}
    numbered = [(1, {"k": "q_kpi", "p": "2019/20 Q1", "v": "1"}), (2, {"k": "july_q", "p": "2019/20 Q1", "v": "2"}),
                (3, {"k": "july_q", "p": "2019/20 Q3", "v": "3"}), (4, {"k": "fy_july", "p": "2019/20", "v": "4"})]
    expected = [dt.date(2019, 4, 1), dt.date(2019, 7, 1), dt.date(2020, 1, 1), dt.date(2019, 7, 1)]
    assert parse_batch(numbered, source, kpis)[1]["period"] == expected
    assert [parse_record(rec, source, kpis)["period"] for _, rec in numbered] == expected
