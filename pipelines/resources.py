"""The one Dagster resource that carries kpiwatch's settings to every stage."""
from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import dagster as dg

from pipelines.clock import FixedClock, as_utc_naive, parse_now, system_now
from pipelines.config import Settings


class KpiwatchResource(dg.ConfigurableResource):
    """Where the catalog, the source drop folders and the warehouse are, the reporting date and
    the run's clock."""

    catalog_dir: str
    data_dir: str
    warehouse: str
    as_of: str | None = None
    alerts_file: str | None = None
    rules_file: str | None = None
    target: str = "duckdb"
    # The run's `now` pinned (ISO, naive UTC); None = the time the Dagster run was created.
    now: str | None = None

    @classmethod
    def from_settings(cls, s: Settings) -> "KpiwatchResource":
        return cls(
            catalog_dir=str(s.catalog_dir),
            data_dir=str(s.data_dir),
            warehouse=str(s.warehouse),
            as_of=s.as_of.isoformat() if s.as_of else None,
            alerts_file=str(s.alerts_path),
            rules_file=str(s.rules_file) if s.rules_file else None,
            target=s.target,
            now=s.now.isoformat() if s.now else None,
        )

    def settings(self) -> Settings:
        return Settings(
            catalog_dir=Path(self.catalog_dir),
            data_dir=Path(self.data_dir),
            warehouse=Path(self.warehouse),
            as_of=dt.date.fromisoformat(self.as_of) if self.as_of else None,
            alerts_file=Path(self.alerts_file) if self.alerts_file else None,
            rules_file=Path(self.rules_file) if self.rules_file else None,
            target=self.target,
            now=parse_now(self.now) if self.now else None,
        )

    def catalog(self):
        return _load(self.catalog_dir)

    def run_now(self, context) -> dt.datetime:
        """The run's `now` (naive UTC): pinned by --now / KPIWATCH_NOW, else the time the Dagster
        run was created — the same value in every step of a run, whichever process runs it."""
        if self.now:
            return parse_now(self.now)
        record = context.instance.get_run_record_by_id(context.run_id) if context.run_id else None
        if record is not None and record.create_timestamp is not None:
            return as_utc_naive(record.create_timestamp).replace(microsecond=0)
        return system_now()

    def run_clock(self, context) -> FixedClock:
        """The run's `now` as a clock for the alerting engine."""
        return FixedClock(self.run_now(context))

    def reporting_date(self, context) -> dt.date:
        """--as-of / KPIWATCH_AS_OF, else the catalog's `as_of`, else the date of the run's `now`."""
        if self.as_of:
            return dt.date.fromisoformat(self.as_of)
        return self.catalog().as_of or self.run_now(context).date()


@functools.lru_cache(maxsize=4)
def _load(catalog_dir: str):
    from pipelines.catalog.loader import load_catalog

    return load_catalog(catalog_dir)
