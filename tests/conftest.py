import shutil
from pathlib import Path

import pytest

from pipelines.config import DEFAULT_CATALOG, PROJECT_ROOT

REALDATA = PROJECT_ROOT.parent / "shared" / "realdata"


@pytest.fixture
def catalog_copy(tmp_path) -> Path:
    """A writable copy of the demo catalog, for tests that break it on purpose."""
    dst = tmp_path / "catalog"
    shutil.copytree(DEFAULT_CATALOG, dst)
    return dst


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory) -> Path:
    from pipelines.demo import write_demo

    out = tmp_path_factory.mktemp("demo-data")
    write_demo(out)
    return out
