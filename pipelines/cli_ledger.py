"""kpiwatch commands of the run ledger, registered on the main CLI app by `register`:
`verify-ledger` (is every run record as it was written?)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

# Exit codes of the main CLI (README): 0 ok, 1 failed (here: the ledger was tampered with),
# 2 configuration / usage, 3 warehouse busy.
EXIT_OK, EXIT_TAMPERED, EXIT_CONFIG, EXIT_BUSY = 0, 1, 2, 3


def _err(message: str, code: int) -> typer.Exit:
    from rich.console import Console
    from rich.markup import escape

    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/] {escape(message)}")
    return typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add the ledger's commands to the kpiwatch CLI."""

    @app.command("verify-ledger")
    def verify_ledger(
        warehouse: Optional[Path] = typer.Option(None, "--warehouse", help="DuckDB warehouse file [env KPIWATCH_WAREHOUSE]"),
        fmt: str = typer.Option("text", "--format", help="text or json"),
    ):
        """Verify the run ledger: every record's hash chains over the previous one, and the
        warehouse's records match the ledger.jsonl mirror beside it. Names the first broken record
        and exits 1 if any record was changed or deleted."""
        from pipelines.config import Settings
        from pipelines.ledger import verify
        from pipelines.warehouse import WarehouseBusy, WarehouseConfigError, connect

        if fmt not in ("text", "json"):
            raise _err(f"--format must be 'text' or 'json', not {fmt!r}", EXIT_CONFIG)
        wh = Settings.from_env(warehouse=warehouse).resolved().warehouse
        try:
            with connect(wh, read_only=True) as con:
                verdict = verify(con, wh)
        except WarehouseBusy as exc:
            raise _err(str(exc), EXIT_BUSY)
        except (FileNotFoundError, WarehouseConfigError) as exc:
            raise _err(str(exc), EXIT_CONFIG)
        if fmt == "json":
            sys.stdout.write(json.dumps({"ok": verdict.ok, "records": verdict.records, "head": verdict.head,
                                         "problem": verdict.problem, "notes": list(verdict.notes)}) + "\n")
        elif verdict.ok:
            head = f", head {verdict.head[:16]}" if verdict.head else ""
            print(f"ledger OK: {verdict.records} record(s) verified{head}")
            for note in verdict.notes:
                print(f"note: {note}")
        if not verdict.ok:
            if fmt == "text":
                raise _err(f"ledger broken: {verdict.problem}", EXIT_TAMPERED)
            raise typer.Exit(EXIT_TAMPERED)
        if verdict.records == 0 and fmt == "text":
            print("note: no run has been recorded yet (the ledger is written at the end of `kpiwatch run`)")
