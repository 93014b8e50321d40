"""The dbt project, prepared once: the manifest is built by `dbt parse` only when missing or
older than the project's files, never at import time of the definitions."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pipelines.config import DBT_PROJECT_DIR

MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def dbt_executable() -> str:
    """The `dbt` beside this interpreter: kpiwatch may run from a venv that is not activated."""
    local = Path(sys.executable).parent / "dbt"
    return str(local) if local.exists() else "dbt"


def _project_files():
    for sub in ("models", "macros", "tests", "seeds", "snapshots"):
        yield from (DBT_PROJECT_DIR / sub).rglob("*")
    yield DBT_PROJECT_DIR / "dbt_project.yml"
    yield DBT_PROJECT_DIR / "profiles.yml"


def manifest_is_stale() -> bool:
    if not MANIFEST.exists():
        return True
    built = MANIFEST.stat().st_mtime
    return any(p.is_file() and p.stat().st_mtime > built for p in _project_files())


def prepare_manifest(force: bool = False) -> Path:
    """Run `dbt parse` if the manifest is missing or stale; return its path."""
    if force or manifest_is_stale():
        env = {**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
        proc = subprocess.run(
            [dbt_executable(), "parse", "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR), "--quiet"],
            cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"dbt parse failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        MANIFEST.touch()
    return MANIFEST
