"""kpiwatch's one clock (pipelines/clock.py): how a pinned `now` is read, and that a Dagster run
hands every step the same `now`."""
import datetime as dt

import dagster as dg
import pytest

from pipelines.clock import FixedClock, command_now, parse_now
from pipelines.config import Settings
from pipelines.resources import KpiwatchResource


@pytest.mark.parametrize("text, expected", [
    ("2026-11-27", dt.datetime(2026, 11, 27)),
    ("2026-11-27T08:30", dt.datetime(2026, 11, 27, 8, 30)),
    ("2026-11-27 08:30:15", dt.datetime(2026, 11, 27, 8, 30, 15)),
    ("2026-11-27T09:30:00+01:00", dt.datetime(2026, 11, 27, 8, 30)),  # an offset is converted to UTC
    ("2026-11-27T08:30:00Z", dt.datetime(2026, 11, 27, 8, 30)),
])
def test_parse_now(text, expected):
    assert parse_now(text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "27/11/2026", ""])
def test_parse_now_refuses_what_is_not_a_time(text):
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        parse_now(text)


def test_settings_read_kpiwatch_now_and_name_the_variable_when_it_is_wrong(tmp_path):
    s = Settings.from_env({"KPIWATCH_NOW": "2027-01-05T06:00", "KPIWATCH_WAREHOUSE": str(tmp_path / "w.duckdb")})
    assert s.now == dt.datetime(2027, 1, 5, 6, 0)
    assert s.export()["KPIWATCH_NOW"] == "2027-01-05T06:00:00"
    assert KpiwatchResource.from_settings(s).settings().now == s.now
    with pytest.raises(ValueError, match="KPIWATCH_NOW: 'noon'"):
        Settings.from_env({"KPIWATCH_NOW": "noon"})
    with pytest.raises(ValueError, match="KPIWATCH_AS_OF: '2026-02-30'"):
        Settings.from_env({"KPIWATCH_AS_OF": "2026-02-30"})


def test_command_now_is_pinned_by_the_environment():
    assert command_now({"KPIWATCH_NOW": "2030-06-01"}) == dt.datetime(2030, 6, 1)
    before = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    assert before <= command_now({}) <= before + dt.timedelta(seconds=5)
    with pytest.raises(ValueError, match="KPIWATCH_NOW"):
        command_now({"KPIWATCH_NOW": "soon"})


def test_a_fixed_clock_always_says_the_same_time():
    clock = FixedClock(dt.datetime(2026, 11, 27, 9, 0, tzinfo=dt.timezone(dt.timedelta(hours=1))))
    assert clock() == clock() == dt.datetime(2026, 11, 27, 8, 0)


def _seen_by_two_steps(resource: KpiwatchResource):
    seen = {}

    @dg.asset
    def first(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource):
        seen["first"] = (kpiwatch.run_now(context), kpiwatch.reporting_date(context))

    @dg.asset(deps=[first])
    def second(context: dg.AssetExecutionContext, kpiwatch: KpiwatchResource):
        seen["second"] = (kpiwatch.run_now(context), kpiwatch.reporting_date(context))

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([first, second], resources={"kpiwatch": resource}, instance=instance)
        record = instance.get_run_record_by_id(result.run_id)
    return seen, record


def test_every_step_of_a_run_sees_the_run_s_now(tmp_path, catalog_copy):
    (catalog_copy / "kpiwatch.yml").write_text("name: no reporting date\n")  # as_of then follows the clock
    base = dict(catalog_dir=str(catalog_copy), data_dir=str(tmp_path), warehouse=str(tmp_path / "w.duckdb"))

    pinned = dt.datetime(2031, 3, 4, 5, 6, 7)
    seen, _ = _seen_by_two_steps(KpiwatchResource(**base, now=pinned.isoformat()))
    assert seen["first"] == seen["second"] == (pinned, dt.date(2031, 3, 4))

    # Not pinned: the time the Dagster run was created, whichever step asks, whenever.
    seen, record = _seen_by_two_steps(KpiwatchResource(**base))
    created = record.create_timestamp.astimezone(dt.timezone.utc).replace(tzinfo=None, microsecond=0)
    assert seen["first"] == seen["second"] == (created, created.date())

    # An explicit reporting date wins over the clock's date; the clock stays the run's.
    seen, _ = _seen_by_two_steps(KpiwatchResource(**base, now=pinned.isoformat(), as_of="2030-12-31"))
    assert seen["second"] == (pinned, dt.date(2030, 12, 31))
