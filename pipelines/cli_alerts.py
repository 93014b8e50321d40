"""kpiwatch commands of the alerting stage: silences, acknowledgements, digests, open alerts.

Registered on the main CLI app by `register`. Heavy imports happen inside the commands.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

# The exit codes of the main CLI (README): 0 ok, 1 failed, 2 configuration/usage, 3 busy.
EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_BUSY = 0, 1, 2, 3

out = Console(highlight=False, width=None if sys.stdout.isatty() else 160, soft_wrap=False)
err = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160, soft_wrap=True)

WarehouseOpt = typer.Option(None, "--warehouse",
                            help="DuckDB warehouse file; with KPIWATCH_TARGET=postgres, where local files go "
                                 "[env KPIWATCH_WAREHOUSE; default: warehouse/kpiwatch.duckdb]")
FormatOpt = typer.Option("table", "--format", help="table or json")

silence_app = typer.Typer(no_args_is_help=True, add_completion=False,
                          help="Silence alerts for a KPI, a department or a rule until a date.")


def _now() -> dt.datetime:
    """This command's `now`, read once (KPIWATCH_NOW pins it: pipelines/clock.py)."""
    from pipelines.clock import command_now

    try:
        return command_now()
    except ValueError as exc:
        raise _fail(str(exc))


def _settings(warehouse: Optional[Path]):
    from pipelines.config import Settings

    try:
        return Settings.from_env(warehouse=warehouse).resolved()
    except ValueError as exc:
        err.print(f"[red]error:[/] {exc}")
        raise typer.Exit(EXIT_CONFIG)


def _fail(message: str, code: int = EXIT_CONFIG) -> typer.Exit:
    err.print(f"[red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


def _require_warehouse(settings, must_exist: bool = True) -> None:
    """A DuckDB warehouse must exist before these commands read it; a Postgres warehouse is a
    database (the file path only places local files), reached or not when connecting."""
    from pipelines.warehouse import WarehouseConfigError, current_target

    try:
        target = current_target()
    except WarehouseConfigError as exc:
        raise _fail(str(exc))
    if must_exist and target == "duckdb" and not Path(settings.warehouse).exists():
        raise _fail(f"warehouse {settings.warehouse} does not exist yet: run `kpiwatch run` first")


class _Warehouse:
    """`with _Warehouse(settings) as con:` — a short-lived connection; errors become exit codes."""

    def __init__(self, settings, must_exist: bool = True):
        self.settings = settings
        self.must_exist = must_exist
        self._cm = None

    def __enter__(self):
        from pipelines.warehouse import WarehouseBusy, WarehouseConfigError, connect

        _require_warehouse(self.settings, self.must_exist)
        self._cm = connect(self.settings.warehouse)
        try:
            return self._cm.__enter__()
        except WarehouseBusy as exc:
            raise _fail(str(exc), EXIT_BUSY)
        except WarehouseConfigError as exc:
            raise _fail(str(exc))

    def __exit__(self, *exc_info):
        return self._cm.__exit__(*exc_info)


def parse_until(text: str, now: dt.datetime) -> dt.datetime:
    """``YYYY-MM-DD`` -> the end of that day (UTC); ``YYYY-MM-DDTHH:MM`` -> that instant (UTC)."""
    text = text.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time()) + dt.timedelta(days=1)
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--until {text!r} is not a date (YYYY-MM-DD) or a UTC time (YYYY-MM-DDTHH:MM)") from None
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


# --------------------------------------------------------------------------- silence


@silence_app.command("add")
def silence_add(
    kpi: Optional[str] = typer.Option(None, "--kpi", help="Silence every alert about this KPI (its status, jumps, milestones)"),
    department: Optional[str] = typer.Option(None, "--department", help="Silence every alert of this department"),
    rule: Optional[str] = typer.Option(None, "--rule", help="Silence every alert of this rule"),
    until: str = typer.Option(..., "--until", help="YYYY-MM-DD (silenced through that day, UTC) or YYYY-MM-DDTHH:MM (UTC)"),
    reason: str = typer.Option(..., "--reason", help="Why: shown in `silence list` and recorded with each suppressed alert"),
    by: Optional[str] = typer.Option(None, "--by", help="Who silences [default: $USER]"),
    warehouse: Optional[Path] = WarehouseOpt,
):
    """Silence alerts until a date: nothing is sent for them meanwhile; each suppressed notice
    is logged with the silence id, and it goes out when the silence ends if still true."""
    from alerts.store import AlertingError, add_silence, known_targets

    targets = [(kind, value) for kind, value in (("kpi", kpi), ("department", department), ("rule", rule)) if value]
    if len(targets) != 1:
        raise _fail("give exactly one of --kpi ID, --department ID or --rule NAME")
    target_type, target = targets[0]
    now = _now()
    ends_at = parse_until(until, now)
    settings = _settings(warehouse)
    known = None
    if target_type == "rule":
        from alerts.rules import RulesError

        from pipelines.alerting.runtime import load_rules_for

        try:
            known = [r.name for r in load_rules_for(settings)]
        except RulesError as exc:
            raise _fail(f"cannot read the alert rules:\n{exc}")
    with _Warehouse(settings) as con:
        if target_type != "rule":
            known = known_targets(con, target_type)
        try:
            silence = add_silence(con, target_type, target, ends_at, reason, now,
                                  created_by=by or os.environ.get("USER"), known=known)
        except AlertingError as exc:
            raise _fail(str(exc))
    out.print(f"silence {silence.silence_id} added: {silence.target_type} {silence.target} "
              f"until {silence.ends_at:%Y-%m-%d %H:%M} UTC — {silence.reason}", markup=False)


def _silence_dict(s, now) -> dict:
    return {
        "silence_id": s.silence_id, "target_type": s.target_type, "target": s.target, "reason": s.reason,
        "created_by": s.created_by, "created_at": s.created_at.isoformat(), "ends_at": s.ends_at.isoformat(),
        "expired_at": s.expired_at.isoformat() if s.expired_at else None, "active": s.is_active(now),
    }


@silence_app.command("list")
def silence_list(
    show_all: bool = typer.Option(False, "--all", help="Include expired silences"),
    fmt: str = FormatOpt,
    warehouse: Optional[Path] = WarehouseOpt,
):
    """List active silences (with --all: expired ones too)."""
    from alerts.store import list_silences

    if fmt not in ("table", "json"):
        raise _fail(f"--format must be 'table' or 'json', not {fmt!r}")
    now = _now()
    with _Warehouse(_settings(warehouse)) as con:
        silences = list_silences(con, now, include_expired=show_all)
    if fmt == "json":
        sys.stdout.write(json.dumps([_silence_dict(s, now) for s in silences], indent=2) + "\n")
        return
    if not silences:
        out.print("no active silences" if not show_all else "no silences")
        return
    table = Table(title="Silences", title_justify="left")
    for column in ("id", "silences", "until (UTC)", "reason", "by", "state"):
        table.add_column(column, overflow="fold")
    for s in silences:
        state = "active" if s.is_active(now) else ("expired" if s.expired_at else "ended")
        table.add_row(str(s.silence_id), f"{s.target_type} {s.target}", f"{s.ends_at:%Y-%m-%d %H:%M}",
                      s.reason, s.created_by or "", state)
    out.print(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: int = typer.Argument(..., help="The silence id (see `kpiwatch silence list`)"),
    warehouse: Optional[Path] = WarehouseOpt,
):
    """End a silence now: its alerts are sent by the next run if they still hold."""
    from alerts.store import AlertingError, expire_silence

    with _Warehouse(_settings(warehouse)) as con:
        try:
            silence = expire_silence(con, silence_id, _now())
        except AlertingError as exc:
            raise _fail(str(exc))
    out.print(f"silence {silence.silence_id} expired ({silence.target_type} {silence.target})", markup=False)


# --------------------------------------------------------------------------- ack, alerts, digest


def ack(
    fingerprint: str = typer.Argument(..., help="The alert's fingerprint (shown in each message), or its first 6+ characters"),
    by: str = typer.Option(..., "--by", help="Who acknowledges"),
    note: str = typer.Option(..., "--note", help="What is being done about it"),
    warehouse: Optional[Path] = WarehouseOpt,
):
    """Acknowledge a firing alert: no more reminders and no escalation for its current state."""
    from alerts.store import AlertingError
    from alerts.store import ack as record_ack

    with _Warehouse(_settings(warehouse)) as con:
        try:
            done = record_ack(con, fingerprint, by, note, _now())
        except AlertingError as exc:
            raise _fail(str(exc))
    out.print(f"acknowledged {done.fingerprint} ({done.summary}) by {done.acked_by}: {done.note}", markup=False)


def alerts(
    show_all: bool = typer.Option(False, "--all", help="Include resolved alerts"),
    fmt: str = FormatOpt,
    warehouse: Optional[Path] = WarehouseOpt,
):
    """List the alerts firing now with their fingerprints (for `kpiwatch ack`)."""
    from alerts.store import rows, table_exists

    if fmt not in ("table", "json"):
        raise _fail(f"--format must be 'table' or 'json', not {fmt!r}")
    with _Warehouse(_settings(warehouse)) as con:
        found = []
        if table_exists(con, "alerting.alert_state"):
            found = rows(con, """
                select s.fingerprint, s.rule, s.subject, s.severity, s.state, s.summary, s.channel,
                       s.first_fired_at, s.last_notified_at,
                       exists (select 1 from alerting.acks a where a.fingerprint = s.fingerprint
                               and a.labels_hash = s.labels_hash
                               and a.episode_started_at is not distinct from s.first_fired_at) as acknowledged
                from alerting.alert_state s
                where ? or s.state = 'firing'
                order by case s.severity when 'critical' then 0 when 'warning' then 1 else 2 end, s.rule, s.subject
            """, [show_all])
    if fmt == "json":
        sys.stdout.write(json.dumps(found, default=str, indent=2) + "\n")
        return
    if not found:
        out.print("no alerts firing")
        return
    table = Table(title="Alerts", title_justify="left")
    for column in ("fingerprint", "severity", "alert", "to", "since (UTC)", "state"):
        table.add_column(column, overflow="fold")
    for a in found:
        state = a["state"] + (" (acknowledged)" if a["acknowledged"] else "")
        table.add_row(a["fingerprint"], a["severity"], a["summary"] or a["subject"], a["channel"] or "",
                      f"{a['first_fired_at']:%Y-%m-%d %H:%M}" if a["first_fired_at"] else "", state)
    out.print(table)


def digest(
    warehouse: Optional[Path] = WarehouseOpt,
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Reporting date YYYY-MM-DD [default: the warehouse's]"),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the digests; send nothing"),
):
    """Send this week's KPI digest to every owner and department (once per week each)."""
    from alerts.conditions import AlertsError
    from alerts.rules import RulesError

    from pipelines.alerting.runtime import send_digests

    settings = _settings(warehouse)
    try:
        day = dt.date.fromisoformat(as_of) if as_of else None
    except ValueError:
        raise _fail(f"--as-of {as_of!r} is not a date (YYYY-MM-DD)")
    _require_warehouse(settings)
    from pipelines.warehouse import WarehouseBusy, WarehouseConfigError

    from pipelines.clock import FixedClock

    now = _now()
    run_id = f"digest-{now:%Y%m%dT%H%M%S}"
    try:
        digests, queued, delivery = send_digests(settings, run_id=run_id, as_of=day, dry_run=dry_run,
                                                 clock=FixedClock(now))
    except WarehouseBusy as exc:
        raise _fail(str(exc), EXIT_BUSY)
    except (AlertsError, RulesError, WarehouseConfigError) as exc:
        raise _fail(str(exc))
    owners = sum(d.audience == "owner" for d in digests)
    out.print(f"{len(digests)} digest(s): {owners} owner(s), {len(digests) - owners} department(s)")
    if dry_run:
        from alerts.formatting import fallback_text
        from alerts.model import Message

        for d in digests:
            out.print(f"  → {d.channel}: {fallback_text(Message(d.channel, digest=d))}", markup=False)
        return
    skipped = len(digests) - len(queued)
    out.print(f"{len(queued)} new this week" + (f", {skipped} already sent this week" if skipped else ""))
    out.print(f"delivery: {delivery}", markup=False)
    for issue in delivery.issues:
        out.print(f"  {issue.channel}: {issue.detail} — {issue.action}", markup=False)
    if delivery.failed:
        raise typer.Exit(EXIT_FAILED)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the kpiwatch CLI."""
    app.add_typer(silence_app, name="silence")
    app.command("ack")(ack)
    app.command("alerts")(alerts)
    app.command("digest")(digest)
