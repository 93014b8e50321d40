"""Writing report files whole or not at all."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class ReportWriteError(OSError):
    """A report could not be written (disk full, read-only, ...); nothing partial was left."""


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write `text` to a temporary file beside `path`, flush it to disk, then rename it over
    `path`. A failure (e.g. the disk fills up) removes the temporary file and leaves `path` as it
    was: a reader never finds half a report."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise ReportWriteError(exc.errno, f"could not write {path}: {exc.strerror or exc} "
                                          "(nothing was written; any previous file is unchanged)") from None
    return path
