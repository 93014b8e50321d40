"""The one Dagster resource that carries kpiwatch's settings to every stage."""
from __future__ import annotations

import datetime as dt
import functools
from pathlib import Path

import dagster as dg

from pipelines.config import Settings


class KpiwatchResource(dg.ConfigurableResource):
    """Where the catalog, the source drop folders and the warehouse are, and the reporting date."""

    catalog_dir: str
    data_dir: str
    warehouse: str
    as_of: str | None = None
    alerts_file: str | None = None
    rules_file: str | None = None
    target: str = "duckdb"

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
        )

    def catalog(self):
        return _load(self.catalog_dir)

    def reporting_date(self) -> dt.date:
        """--as-of / KPIWATCH_AS_OF, else the catalog's `as_of`, else today."""
        if self.as_of:
            return dt.date.fromisoformat(self.as_of)
        return self.catalog().as_of or dt.date.today()


@functools.lru_cache(maxsize=4)
def _load(catalog_dir: str):
    from pipelines.catalog.loader import load_catalog

    return load_catalog(catalog_dir)
