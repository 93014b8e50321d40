"""Hostile inputs built in the test (nothing binary committed): a workbook whose sheet expands
far beyond its file size, a YAML alias bomb."""
from __future__ import annotations

import zipfile
from pathlib import Path


def workbook_bomb(src: Path, dst: Path, rows: int) -> int:
    """`src` (a real .xlsx) with its first sheet replaced by `rows` rows of four cells; returns
    the sheet's uncompressed size in bytes. 1,000,000 rows: 65 MB of XML in a file of about 100 KB."""
    with zipfile.ZipFile(src) as z:
        items = {i.filename: z.read(i) for i in z.infolist()}
    sheet = sorted(n for n in items if n.startswith("xl/worksheets/sheet"))[0]
    size = 0
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in items.items():
            if name != sheet:
                z.writestr(name, data)
        with z.open(sheet, "w", force_zip64=True) as out:
            head = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet xmlns='
                    b'"http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>')
            out.write(head)
            size += len(head)
            block = []
            for _ in range(rows):
                # Row and cell references are optional: identical rows compress about 1000-fold.
                block.append("<row><c><v>1</v></c><c><v>2</v></c><c><v>3</v></c><c><v>4</v></c></row>")
                if len(block) == 10000:
                    chunk = "".join(block).encode()
                    out.write(chunk)
                    size += len(chunk)
                    block = []
            tail = ("".join(block) + "</sheetData></worksheet>").encode()
            out.write(tail)
            size += len(tail)
    return size


def yaml_alias_bomb(levels: int = 9, width: int = 9, key: str = "sources") -> str:
    """`levels` levels of `width` aliases: width**levels strings from a few hundred bytes."""
    names = [f"l{i}" for i in range(levels)]
    lines = [f"{names[0]}: &{names[0]} [" + ", ".join(['"lol"'] * width) + "]"]
    for prev, name in zip(names, names[1:]):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * width) + "]")
    lines.append(f"{key}: *{names[-1]}")
    return "\n".join(lines) + "\n"


def peak_rss_kb(cmd: list[str], **kw):
    """Run `cmd` under GNU time; (completed process, its peak resident memory in KB)."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("r", suffix=".rss") as out:
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name, *cmd], **kw)
        return proc, int(out.read().split()[-1])
