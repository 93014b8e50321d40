"""Property: whatever a CSV row holds, it is landed or quarantined with a named reason —
accepted + quarantined = input, and nothing else happens (no crash, no silent drop)."""
import datetime as dt
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines.catalog.loader import load_catalog
from pipelines.ingest.landing import process_batch
from pipelines.ingest.readers import RawBatch
from tests.support.catalogs import kpi, write_catalog

KNOWN_REASONS = {
    "unparseable_number", "unparseable_period", "period_not_aligned", "missing_value", "missing_kpi_id",
    "missing_period", "unknown_kpi_id", "negative_value", "duplicate_key", "period_in_future",
    "period_out_of_range",
}
hostile = st.one_of(
    st.text(alphabet=string.printable + "éü–’\u00a0", max_size=12),
    st.sampled_from(["1e309", "NaN", "--5", "-", "N/A", "..", "*", "'; drop table x; --", "../../etc/passwd",
                     'a"b', "2026-13", "2999-01", "1900-01", "12,4", "1,234", "95%", " 7 ", ""]),
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
)


def _catalog(tmp_path_factory=None):
    import tempfile
    from pathlib import Path

    d = Path(tempfile.mkdtemp()) / "catalog"
    src = {"id": "s", "department": "dept", "kind": "csv", "path": "*.csv", "cadence": "monthly",
           "columns": {"kpi_id": "kpi", "period": "month", "org_id": "org", "value": "value"}}
    return load_catalog(write_catalog(d, [src], [kpi("homes", "s"), kpi("jobs", "s")]))


CATALOG = _catalog()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.one_of(st.sampled_from(["homes", "jobs"]), hostile),
                          st.one_of(st.sampled_from(["2026-01", "2026-02", "May 2026"]), hostile),
                          st.one_of(st.just("A"), hostile), hostile), min_size=1, max_size=25))
def test_every_row_is_landed_or_quarantined_with_a_reason(rows):
    records = [{"kpi": k, "month": m, "org": o, "value": v} for k, m, o, v in rows]
    batch = RawBatch("s", "f.csv", "0" * 64, None, ["kpi", "month", "org", "value"], records)
    frame, quarantine, outcomes = process_batch(batch, CATALOG.sources["s"], CATALOG, dt.date(2026, 11, 15))
    assert len(frame) + len(quarantine) == len(records)
    assert {reason for _, reason, _, _ in quarantine} <= KNOWN_REASONS
    assert set(frame.index).isdisjoint({n for n, *_ in quarantine})
    assert frame["value"].map(lambda v: v == v and abs(v) != float("inf")).all()  # finite numbers only
