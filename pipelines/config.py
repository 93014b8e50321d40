"""One place that turns the environment (and CLI flags) into kpiwatch settings.

Nothing here runs at import time: callers ask for ``Settings.from_env()`` when they need it.
"""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"
DEFAULT_CATALOG = PROJECT_ROOT / "catalog"

# The Dagster owner of the shared stages (catalog, landing, dbt models, alerting); a
# department's ingest assets are owned by its head (catalog `head.email`) or its team.
DATA_TEAM_OWNER = "team:data-engineering"

ENV = {
    "catalog_dir": "KPIWATCH_CATALOG",
    "data_dir": "KPIWATCH_DATA_DIR",
    "warehouse": "KPIWATCH_WAREHOUSE",
    "as_of": "KPIWATCH_AS_OF",
    "alerts_file": "KPIWATCH_ALERTS_FILE",
    "rules_file": "KPIWATCH_ALERT_RULES",
    "now": "KPIWATCH_NOW",
}


def _catalog_defaults(catalog_dir: Path) -> dict[str, Path]:
    """`data_dir` / `warehouse` from the catalog's kpiwatch.yml, relative to the catalog.
    A broken file is ignored here: `load_catalog` reports it with file, line and key."""
    import yaml

    try:
        doc = yaml.safe_load((catalog_dir / "kpiwatch.yml").read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {k: (catalog_dir / doc[k]).resolve() for k in ("data_dir", "warehouse") if isinstance(doc.get(k), str)}


@dataclass(frozen=True)
class Settings:
    catalog_dir: Path = DEFAULT_CATALOG
    data_dir: Path = PROJECT_ROOT / "demo-data"
    warehouse: Path = PROJECT_ROOT / "warehouse" / "kpiwatch.duckdb"
    # Reporting date override; None = the catalog's `as_of`, else the date of `now`.
    as_of: dt.date | None = None
    # The run's clock, pinned (naive UTC); None = the time the run starts (pipelines/clock.py).
    now: dt.datetime | None = None
    # JSONL file the default alert sink appends to; None = beside the warehouse.
    alerts_file: Path | None = None
    # Alert rules file; None = the rules shipped in the `alerts` package.
    rules_file: Path | None = None
    # Warehouse target: "duckdb" (the file `warehouse`) or "postgres" (KPIWATCH_PG_*; then
    # `warehouse` only places the local files: reports, alert log, ledger mirror, run logs).
    target: str = "duckdb"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        environ = os.environ if environ is None else environ
        values = {}
        for field_name, var in ENV.items():
            raw = environ.get(var)
            if not raw:
                continue
            if field_name == "as_of":
                try:
                    values[field_name] = dt.date.fromisoformat(raw)
                except ValueError:
                    raise ValueError(f"{var}: {raw!r} is not a date (YYYY-MM-DD)") from None
            elif field_name == "now":
                from pipelines.clock import parse_now

                try:
                    values[field_name] = parse_now(raw)
                except ValueError as exc:
                    raise ValueError(f"{var}: {exc}") from None
            else:
                values[field_name] = Path(raw)
        from pipelines.warehouse import current_target

        values["target"] = current_target(environ)
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "target" in overrides and overrides["target"] is not None:
            values["target"] = current_target({"KPIWATCH_TARGET": overrides["target"]})
        # A catalog may name its own data directory and warehouse (examples/ do): used when
        # neither a flag nor the environment sets them.
        for key, path in _catalog_defaults(Path(values.get("catalog_dir", DEFAULT_CATALOG))).items():
            values.setdefault(key, path)
        return cls(**values)

    def resolved(self) -> "Settings":
        return replace(
            self,
            catalog_dir=Path(self.catalog_dir).resolve(),
            data_dir=Path(self.data_dir).resolve(),
            warehouse=Path(self.warehouse).resolve(),
        )

    @property
    def alerts_path(self) -> Path:
        return Path(self.alerts_file) if self.alerts_file else Path(self.warehouse).parent / "alerts.jsonl"

    @property
    def reports_dir(self) -> Path:
        """Where each run writes the scorecard and the audit report."""
        return Path(self.warehouse).parent / "reports"

    def export(self) -> dict[str, str]:
        """Environment variables that carry these settings to subprocesses (dbt) and Dagster."""
        env = {
            ENV["catalog_dir"]: str(self.catalog_dir),
            ENV["data_dir"]: str(self.data_dir),
            ENV["warehouse"]: str(self.warehouse),
            ENV["alerts_file"]: str(self.alerts_path),
        }
        env["KPIWATCH_TARGET"] = self.target
        if self.as_of:
            env[ENV["as_of"]] = self.as_of.isoformat()
        if self.now:
            env[ENV["now"]] = self.now.isoformat()
        if self.rules_file:
            env[ENV["rules_file"]] = str(self.rules_file)
        return env
