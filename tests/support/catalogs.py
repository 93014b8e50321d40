"""Write small catalogs for tests (YAML from Python dicts)."""
from pathlib import Path

import yaml


def kpi(kpi_id: str, source: str, department: str = "dept", **over) -> dict:
    base = {
        "id": kpi_id, "name": kpi_id.replace("_", " "), "department": department, "source": source,
        "owner": {"name": "Owner", "slack": "U0OWNER"}, "unit": "count", "direction": "higher_is_better",
        "frequency": "monthly", "aggregation": "sum", "tolerance": 1,
        "baseline": {"value": 0, "date": "2018-12-31"}, "targets": [{"value": 100, "due": "2027-03-31"}],
    }
    base.update(over)
    return base


def write_catalog(directory: Path, sources: list[dict], kpis: list[dict], as_of: str = "2026-11-15",
                  departments: list[dict] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    departments = departments or [{"id": "dept", "name": "Test department", "channel": "#dept"}]
    docs = {
        "kpiwatch.yml": {"name": "test catalog", "as_of": as_of},
        "departments.yml": {"departments": departments},
        "sources.yml": {"sources": sources},
        "kpis.yml": {"kpis": kpis},
    }
    for name, doc in docs.items():
        (directory / name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return directory
