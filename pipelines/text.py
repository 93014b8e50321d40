"""Text from departments' data (file names, cells, error messages) made safe to print."""
from __future__ import annotations


def one_line(text: object, limit: int | None = 300) -> str:
    """`text` as one printable line: control characters (a newline in a file name would forge a
    line of output; an escape sequence would restyle the terminal) shown as escapes, and capped
    at `limit` characters (None: not capped)."""
    out = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(text))
    return out if limit is None or len(out) <= limit else out[:limit - 1] + "…"
