"""Evaluate alert rules against the warehouse, and dispatch notifications with stored state.

``evaluate(con, rules, as_of)`` only reads (catalog, raw, quality, marts) and returns the
alerts that are firing now. ``dispatch(con, alerts, sinks, run_id, now)`` compares them with
``alerting.alert_state`` and notifies only what changed:

- a new fingerprint, a re-opened one, or a changed ``labels_hash`` -> one ``firing`` notice;
- still firing with the same labels -> nothing (a re-run sends nothing);
- firing in state but not found any more -> one ``resolved`` notice.

State is written only once a delivering sink accepted the notice; otherwise the attempt is
logged as failed and the notice stays pending, so the next run retries it. Every attempt is
logged per sink in ``alerting.alert_log``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterable, Sequence

from alerts.model import Alert, Notification
from alerts.rules import Rule, RuleSet
from alerts.sinks import Sink, SinkError


class AlertsError(RuntimeError):
    """The warehouse cannot be evaluated (e.g. a table the rules need is missing)."""


# Tables each kind reads. A missing table is an error, never "no alerts": treating it as
# empty would resolve every open alert of that kind.
REQUIRED_TABLES: dict[str, tuple[str, ...]] = {
    "kpi_status": ("marts.fct_kpi_progress",),
    "milestone": ("marts.fct_milestones",),
    "source_overdue": ("marts.fct_source_freshness",),
    "check_failed": ("quality.check_results", "raw.batches"),
    "anomaly": ("marts.fct_kpi_anomalies",),
}
CATALOG_TABLES = ("catalog.kpis", "catalog.departments")

MAX_LISTED_CHECKS = 5


# --------------------------------------------------------------------------- reading


def _rows(con, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def _table_exists(con, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()[0]
    return found > 0


def _require_tables(con, tables: Iterable[str]) -> None:
    missing = [table for table in tables if not _table_exists(con, table)]
    if missing:
        raise AlertsError(
            "cannot evaluate alerts: missing warehouse table(s) "
            + ", ".join(missing)
            + " (run the ingest and dbt steps first)"
        )


def _settings_as_of(con) -> date | None:
    if not _table_exists(con, "catalog.settings"):
        return None
    row = con.execute("select max(as_of) from catalog.settings").fetchone()
    return _as_date(row[0]) if row else None


def _as_date(value: Any) -> date | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


@dataclass
class _Context:
    as_of: date
    fallback_channel: str
    kpis: dict[str, dict[str, Any]]
    departments: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, con, fallback_channel: str, as_of: date) -> "_Context":
        _require_tables(con, CATALOG_TABLES)
        kpis = _rows(
            con,
            "select kpi_id, name, department_id, source_id, owner_name, owner_slack, unit, "
            "direction, frequency, tags from catalog.kpis order by kpi_id",
        )
        departments = _rows(con, "select department_id, name, channel from catalog.departments")
        return cls(
            as_of=as_of,
            fallback_channel=fallback_channel,
            kpis={row["kpi_id"]: row for row in kpis},
            departments={row["department_id"]: row for row in departments},
        )

    def kpi(self, kpi_id: str | None) -> dict[str, Any]:
        return self.kpis.get(kpi_id, {}) if kpi_id else {}

    def tags(self, kpi_ids: Iterable[str]) -> set[str]:
        out: set[str] = set()
        for kpi_id in kpi_ids:
            out.update(tag.strip() for tag in (self.kpi(kpi_id).get("tags") or "").split(",") if tag.strip())
        return out

    def source_kpis(self, source_id: str) -> list[str]:
        return [kpi_id for kpi_id, row in self.kpis.items() if row.get("source_id") == source_id]

    def department_name(self, department_id: str | None) -> str:
        row = self.departments.get(department_id) if department_id else None
        return (row or {}).get("name") or department_id or "unknown"

    def route(self, rule: Rule, department_id: str | None, owner_slack: str | None) -> tuple[str, str]:
        """(channel, how): the owner (route: owner), else the department channel, else fallback."""
        if rule.route == "owner" and owner_slack:
            return owner_slack, "owner"
        department = self.departments.get(department_id) if department_id else None
        if department and department.get("channel"):
            return department["channel"], "department"
        return self.fallback_channel, "fallback"


# --------------------------------------------------------------------------- formatting values


def _num(value: Any, unit: str | None = None, *, signed: bool = False) -> str:
    """Readable number: thousands separators, at most 2 decimals (1 from 100 up, 3 significant
    digits below 1), no trailing zeros; the unit appended ("%" without a space)."""
    if value is None:
        return "n/a"
    number = float(value)
    sign = "+" if signed else ""
    if abs(number) >= 100:
        text = f"{number:{sign},.1f}"
    elif abs(number) >= 1 or number == 0:
        text = f"{number:{sign},.2f}"
    else:
        text = f"{number:{sign}.3g}"
    if "." in text and "e" not in text:
        text = text.rstrip("0").rstrip(".")
    if not unit:
        return text
    return f"{text}{unit}" if unit == "%" else f"{text} {unit}"


def _period(value: Any, frequency: str | None) -> str:
    day = _as_date(value)
    if day is None:
        return "n/a"
    if frequency == "quarterly":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


def _day(value: Any) -> str:
    day = _as_date(value)
    return day.isoformat() if day else "n/a"


def _short(value: Any, limit: int = 80) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Ordered label -> text, dropping empty values."""
    return {label: str(value) for label, value in pairs if value not in (None, "")}


# --------------------------------------------------------------------------- kinds
# Each kind: a fetch (one query, shared by every rule of that kind) and a builder that
# applies one rule to one row and returns an Alert or None.


def _fetch_kpi_status(con) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        select kpi_id, kpi_name, department_id, period, period_end, actual, expected_value,
               target_value, target_date, performance_gap, status, previous_status,
               forecast_value, forecast_status, data_trust, data_trust_reason
        from marts.fct_kpi_progress
        where is_latest
        order by kpi_id
        """,
    )


def _kpi_status_alert(rule: Rule, row: dict[str, Any], ctx: _Context) -> Alert | None:
    status = row["status"]
    if status not in rule.condition["status_in"]:
        return None
    kpi_id = row["kpi_id"]
    if not rule.matchers.matches(row["department_id"], {kpi_id}, ctx.tags([kpi_id])):
        return None
    kpi = ctx.kpi(kpi_id)
    unit = kpi.get("unit")
    name = row.get("kpi_name") or kpi.get("name") or kpi_id
    period = _period(row["period"], kpi.get("frequency"))
    title = f"{name} is {status}"
    previous = row.get("previous_status")
    if previous and previous != status:
        title += f" (was {previous})"
    text = f"{period}: actual {_num(row['actual'], unit)} against {_num(row['expected_value'], unit)} expected"
    if row.get("target_value") is not None:
        text += f" on the trajectory to {_num(row['target_value'], unit)} by {_day(row['target_date'])}"
    text += "."
    if row.get("forecast_value") is not None:
        forecast_status = (row.get("forecast_status") or "unknown").replace("_", " ")
        text += f" Forecast for {_day(row['target_date'])}: {_num(row['forecast_value'], unit)} ({forecast_status})."
    trust = row.get("data_trust")
    if trust and trust != "trusted":
        reason = f" ({row['data_trust_reason']})" if row.get("data_trust_reason") else ""
        text += f" Data trust: {trust.replace('_', ' ')}{reason}."
    forecast = None
    if row.get("forecast_value") is not None:
        forecast = f"{_num(row['forecast_value'], unit)} ({(row.get('forecast_status') or 'unknown').replace('_', ' ')})"
    channel, how = ctx.route(rule, row["department_id"], kpi.get("owner_slack"))
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity_for(status),
        subject=kpi_id,
        department_id=row["department_id"],
        kpi_id=kpi_id,
        title=title,
        text=text,
        channel=channel,
        route=how,
        fields=_fields(
            [
                ("KPI", name),
                ("Department", ctx.department_name(row["department_id"])),
                ("Period", period),
                ("Status", status),
                ("Actual", _num(row["actual"], unit)),
                ("Expected (trajectory)", _num(row["expected_value"], unit)),
                (
                    "Target",
                    f"{_num(row['target_value'], unit)} by {_day(row['target_date'])}"
                    if row.get("target_value") is not None
                    else None,
                ),
                ("Forecast", forecast),
                ("Data trust", trust),
                ("Owner", kpi.get("owner_name")),
            ]
        ),
        labels={"status": status},
        as_of=ctx.as_of,
    )


def _fetch_milestone(con) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        select milestone_id, title, department_id, kpi_id, threshold, due_date, owner_name,
               owner_slack, latest_actual, latest_period, forecast_value, state, days_to_due
        from marts.fct_milestones
        order by milestone_id
        """,
    )


def _milestone_alert(rule: Rule, row: dict[str, Any], ctx: _Context) -> Alert | None:
    state = row["state"]
    if state not in rule.condition["state_in"]:
        return None
    kpi_id = row.get("kpi_id")
    kpi_ids = {kpi_id} if kpi_id else set()
    if not rule.matchers.matches(row["department_id"], kpi_ids, ctx.tags(kpi_ids)):
        return None
    kpi = ctx.kpi(kpi_id)
    unit = kpi.get("unit")
    kpi_name = kpi.get("name") or kpi_id or "the KPI"
    threshold = _num(row["threshold"], unit)
    due = _day(row["due_date"])
    days = row.get("days_to_due")
    if days is None and _as_date(row["due_date"]):
        days = (_as_date(row["due_date"]) - ctx.as_of).days
    latest = None
    if row.get("latest_actual") is not None:
        latest = f"{_num(row['latest_actual'], unit)} ({_period(row.get('latest_period'), kpi.get('frequency'))})"
    label = {"missed": "Milestone missed", "at_risk": "Milestone at risk"}.get(state, f"Milestone {state}")
    title = f"{label}: {row['title']}"
    if state == "missed":
        text = f"Due {due}: {kpi_name} had not reached {threshold}"
        text += f"; latest {latest}." if latest else "."
    elif state == "at_risk":
        text = (
            f"Due {due} (in {days} days): the forecast for {kpi_name} at the due date is "
            f"{_num(row.get('forecast_value'), unit)}, short of {threshold}."
        )
    else:
        text = f"Due {due}: {kpi_name} to reach {threshold}; state {state}."
    owner_slack = row.get("owner_slack") or kpi.get("owner_slack")
    channel, how = ctx.route(rule, row["department_id"], owner_slack)
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity_for(state),
        subject=row["milestone_id"],
        department_id=row["department_id"],
        kpi_id=kpi_id,
        title=title,
        text=text,
        channel=channel,
        route=how,
        fields=_fields(
            [
                ("Milestone", row["title"]),
                ("KPI", kpi_name if kpi_id else None),
                ("Department", ctx.department_name(row["department_id"])),
                ("State", state.replace("_", " ")),
                ("Threshold", threshold),
                ("Latest actual", latest),
                (
                    "Forecast at due date",
                    _num(row["forecast_value"], unit) if row.get("forecast_value") is not None else None,
                ),
                ("Due date", due),
                ("Owner", row.get("owner_name") or kpi.get("owner_name")),
            ]
        ),
        labels={"state": state},
        as_of=ctx.as_of,
    )


def _fetch_source_overdue(con) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        select source_id, department_id, cadence, lag_days, latest_period, expected_period,
               periods_overdue, last_loaded_at
        from marts.fct_source_freshness
        where is_overdue
        order by source_id
        """,
    )


def _source_overdue_alert(rule: Rule, row: dict[str, Any], ctx: _Context) -> Alert | None:
    source_id = row["source_id"]
    kpi_ids = ctx.source_kpis(source_id)
    if not rule.matchers.matches(row["department_id"], set(kpi_ids), ctx.tags(kpi_ids)):
        return None
    cadence = row.get("cadence")
    expected = _period(row["expected_period"], cadence)
    latest = _period(row["latest_period"], cadence) if row.get("latest_period") else "none yet"
    overdue = row.get("periods_overdue")
    text = f"Data for {expected} is due (lag {row.get('lag_days')} days) but the latest period delivered is {latest}"
    text += f" ({overdue} period{'s' if overdue != 1 else ''} overdue)." if overdue is not None else "."
    kpi_names = ", ".join(ctx.kpi(kpi_id).get("name") or kpi_id for kpi_id in kpi_ids)
    channel, how = ctx.route(rule, row["department_id"], None)
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity_for(None),
        subject=source_id,
        department_id=row["department_id"],
        kpi_id=None,
        title=f"Source overdue: {source_id}",
        text=text,
        channel=channel,
        route=how,
        fields=_fields(
            [
                ("Source", source_id),
                ("Department", ctx.department_name(row["department_id"])),
                ("Cadence", cadence),
                ("Latest period", latest),
                ("Expected period", expected),
                ("Periods overdue", overdue),
                ("Last loaded", str(row["last_loaded_at"])[:16] if row.get("last_loaded_at") else "never"),
                ("KPIs affected", _short(kpi_names, 200) if kpi_names else None),
            ]
        ),
        labels={"state": "overdue"},
        as_of=ctx.as_of,
    )


def _fetch_check_failed(con) -> list[dict[str, Any]]:
    # The latest batch per source; the latest result per check (a batch may be re-checked).
    rows = _rows(
        con,
        """
        with latest_batch as (
            select source_id, batch_id, source_file, loaded_at
            from raw.batches
            qualify row_number() over (
                partition by source_id order by loaded_at desc, batch_id desc) = 1
        ),
        results as (
            select *
            from quality.check_results
            qualify row_number() over (
                partition by batch_id, suite, check_name, coalesce(column_name, '')
                order by checked_at desc) = 1
        )
        select r.source_id, r.department_id, r.batch_id, b.source_file, r.suite, r.check_name,
               r.expectation_type, r.column_name, r.severity,
               cast(r.observed as varchar) as observed, cast(r.expected as varchar) as expected,
               r.unexpected_count
        from results r
        join latest_batch b on b.batch_id = r.batch_id and b.source_id = r.source_id
        where not r.success
        order by r.source_id, r.suite, r.check_name, r.column_name nulls first
        """,
    )
    by_source: dict[str, dict[str, Any]] = {}
    for row in rows:
        group = by_source.setdefault(
            row["source_id"],
            {
                "source_id": row["source_id"],
                "department_id": row["department_id"],
                "batch_id": row["batch_id"],
                "source_file": row["source_file"],
                "checks": [],
            },
        )
        group["checks"].append(row)
    return list(by_source.values())


def _check_label(check: dict[str, Any]) -> str:
    label = check["check_name"]
    if check.get("column_name"):
        label += f" on {check['column_name']}"
    parts = []
    if check.get("observed") is not None:
        parts.append(f"observed {_short(check['observed'], 60)}")
    if check.get("expected") is not None:
        parts.append(f"expected {_short(check['expected'], 60)}")
    return label + (f" ({', '.join(parts)})" if parts else "")


def _check_failed_alert(rule: Rule, group: dict[str, Any], ctx: _Context) -> Alert | None:
    severities = rule.condition["severities"]
    checks = [check for check in group["checks"] if check["severity"] in severities]
    if not checks:
        return None
    source_id = group["source_id"]
    kpi_ids = ctx.source_kpis(source_id)
    if not rule.matchers.matches(group["department_id"], set(kpi_ids), ctx.tags(kpi_ids)):
        return None
    shown = "; ".join(_check_label(check) for check in checks[:MAX_LISTED_CHECKS])
    if len(checks) > MAX_LISTED_CHECKS:
        shown += f"; and {len(checks) - MAX_LISTED_CHECKS} more"
    which = "/".join(severities)
    text = (
        f"{len(checks)} {which} check{'s' if len(checks) != 1 else ''} failed on the latest batch "
        f"{group['batch_id']} of {source_id}: {shown}."
    )
    kpi_names = ", ".join(ctx.kpi(kpi_id).get("name") or kpi_id for kpi_id in kpi_ids)
    channel, how = ctx.route(rule, group["department_id"], None)
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity_for(None),
        subject=source_id,
        department_id=group["department_id"],
        kpi_id=None,
        title=f"Data checks failed: {source_id}",
        text=text,
        channel=channel,
        route=how,
        fields=_fields(
            [
                ("Source", source_id),
                ("Department", ctx.department_name(group["department_id"])),
                ("Batch", group["batch_id"]),
                ("File", _short(group.get("source_file") or "", 120)),
                ("Failed checks", len(checks)),
                ("KPIs affected", _short(kpi_names, 200) if kpi_names else None),
            ]
        ),
        labels={
            "batch_id": str(group["batch_id"]),
            "checks": sorted(f"{c['suite']}.{c['check_name']}.{c.get('column_name') or ''}" for c in checks),
        },
        as_of=ctx.as_of,
    )


def _fetch_anomaly(con) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        select kpi_id, department_id, period, actual, change, median_change, mad_change, robust_z
        from marts.fct_kpi_anomalies
        where is_anomaly and is_latest
        order by kpi_id
        """,
    )


def _anomaly_alert(rule: Rule, row: dict[str, Any], ctx: _Context) -> Alert | None:
    kpi_id = row["kpi_id"]
    if not rule.matchers.matches(row["department_id"], {kpi_id}, ctx.tags([kpi_id])):
        return None
    kpi = ctx.kpi(kpi_id)
    unit = kpi.get("unit")
    name = kpi.get("name") or kpi_id
    period = _period(row["period"], kpi.get("frequency"))
    z = row.get("robust_z")
    z_text = f"{float(z):+.1f}" if z is not None else "n/a"
    text = (
        f"{period}: {name} changed by {_num(row['change'], unit, signed=True)} to {_num(row['actual'], unit)}; "
        f"its typical change is {_num(row['median_change'], unit, signed=True)} (robust z {z_text})."
    )
    channel, how = ctx.route(rule, row["department_id"], kpi.get("owner_slack"))
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity_for(None),
        subject=kpi_id,
        department_id=row["department_id"],
        kpi_id=kpi_id,
        title=f"Sudden jump: {name}",
        text=text,
        channel=channel,
        route=how,
        fields=_fields(
            [
                ("KPI", name),
                ("Department", ctx.department_name(row["department_id"])),
                ("Period", period),
                ("Actual", _num(row["actual"], unit)),
                ("Change", _num(row["change"], unit, signed=True)),
                ("Typical change", _num(row["median_change"], unit, signed=True)),
                ("Robust z", z_text),
                ("Owner", kpi.get("owner_name")),
            ]
        ),
        labels={"period": _day(row["period"])},
        as_of=ctx.as_of,
    )


_KINDS: dict[str, tuple[Callable[[Any], list[dict[str, Any]]], Callable[[Rule, dict, _Context], Alert | None]]] = {
    "kpi_status": (_fetch_kpi_status, _kpi_status_alert),
    "milestone": (_fetch_milestone, _milestone_alert),
    "source_overdue": (_fetch_source_overdue, _source_overdue_alert),
    "check_failed": (_fetch_check_failed, _check_failed_alert),
    "anomaly": (_fetch_anomaly, _anomaly_alert),
}


def evaluate(con, rules: RuleSet, as_of: date | datetime | str | None = None) -> list[Alert]:
    """The alerts firing now, in rule order then subject order. Reads only.

    `as_of` defaults to ``catalog.settings.as_of`` (else today); it is used in texts and for
    milestone days-to-due when the mart has none. Raises `AlertsError` if a table is missing.
    """
    day = _as_date(as_of) or _settings_as_of(con) or date.today()
    ctx = _Context.load(con, rules.fallback_channel, day)
    fetched: dict[str, list[dict[str, Any]]] = {}
    alerts: list[Alert] = []
    for rule in rules:
        if not rule.enabled:
            continue
        fetch, build = _KINDS[rule.kind]
        if rule.kind not in fetched:
            _require_tables(con, REQUIRED_TABLES[rule.kind])
            fetched[rule.kind] = fetch(con)
        for row in fetched[rule.kind]:
            alert = build(rule, row, ctx)
            if alert is not None:
                alerts.append(alert)
    return alerts


# --------------------------------------------------------------------------- state + dispatch

ALERTING_DDL = (
    "create schema if not exists alerting",
    """
    create table if not exists alerting.alert_state (
        fingerprint varchar primary key,
        rule varchar not null,
        kind varchar not null,
        subject varchar not null,
        department_id varchar,
        kpi_id varchar,
        severity varchar not null,
        state varchar not null,            -- firing | resolved
        summary varchar,                   -- the alert title, reused by the resolved notice
        labels_hash varchar not null,
        first_fired_at timestamp,
        last_seen_at timestamp,
        last_notified_at timestamp,
        resolved_at timestamp,
        channel varchar                    -- where it was sent; the resolved notice goes there too
    )
    """,
    """
    create table if not exists alerting.alert_log (
        run_id varchar,
        fingerprint varchar,
        rule varchar,
        event varchar,                     -- firing | resolved
        channel varchar,
        sink varchar,
        outcome varchar,                   -- sent | failed | skipped
        detail varchar,
        payload varchar,                   -- the notification as JSON
        logged_at timestamp,
        labels_hash varchar
    )
    """,
    # Tables created before these columns existed.
    "alter table alerting.alert_state add column if not exists channel varchar",
    "alter table alerting.alert_log add column if not exists labels_hash varchar",
)


def ensure_schema(con) -> None:
    """Create the ``alerting`` schema and tables if missing (idempotent)."""
    for statement in ALERTING_DDL:
        con.execute(statement)


@dataclass(frozen=True)
class DeliveryFailure:
    fingerprint: str
    rule: str
    event: str
    sink: str
    detail: str


@dataclass
class DispatchSummary:
    run_id: str
    fired: int = 0  # alerts found by evaluate (firing now)
    new: int = 0  # firing notices for alerts not firing before (new or re-opened)
    changed: int = 0  # firing notices because the state-defining labels changed
    unchanged: int = 0  # still firing, already notified: nothing sent
    resolved: int = 0  # resolved notices due
    sent: int = 0  # notices delivered (state recorded)
    failed: int = 0  # notices not delivered: kept pending, retried by the next run
    per_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    sent_notifications: list[Notification] = field(default_factory=list)
    failures: list[DeliveryFailure] = field(default_factory=list)

    @property
    def sent_alerts(self) -> list[Notification]:
        """Delivered notices (``.event`` firing/resolved, ``.alert``), for a CLI summary."""
        return self.sent_notifications

    def _bump(self, rule: str, key: str) -> None:
        setattr(self, key, getattr(self, key) + 1)
        counts = self.per_rule.setdefault(
            rule, {"fired": 0, "new": 0, "changed": 0, "unchanged": 0, "resolved": 0, "sent": 0, "failed": 0}
        )
        counts[key] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "fired": self.fired,
            "new": self.new,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "resolved": self.resolved,
            "sent": self.sent,
            "failed": self.failed,
            "per_rule": {rule: dict(counts) for rule, counts in sorted(self.per_rule.items())},
            "sent_alerts": [
                {"event": n.event, "fingerprint": n.alert.fingerprint, "rule": n.alert.rule,
                 "channel": n.channel, "title": n.alert.title}
                for n in self.sent_notifications
            ],
            "failures": [failure.__dict__ for failure in self.failures],
        }

    def __str__(self) -> str:
        return (
            f"{self.fired} firing ({self.new} new, {self.changed} changed, {self.unchanged} unchanged), "
            f"{self.resolved} resolved; {self.sent} sent, {self.failed} failed"
        )


def _utc_naive(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc).replace(tzinfo=None)
    if now.tzinfo is not None:
        return now.astimezone(timezone.utc).replace(tzinfo=None)
    return now


def _load_state(con) -> dict[str, dict[str, Any]]:
    return {row["fingerprint"]: row for row in _rows(con, "select * from alerting.alert_state")}


def _resolved_alert(row: dict[str, Any]) -> Alert:
    since = row.get("first_fired_at")
    since_text = f" (firing since {since:%Y-%m-%d %H:%M} UTC)" if isinstance(since, datetime) else ""
    return Alert(
        rule=row["rule"],
        kind=row["kind"],
        severity=row["severity"],
        subject=row["subject"],
        department_id=row.get("department_id"),
        kpi_id=row.get("kpi_id"),
        title=row.get("summary") or row["subject"],
        text=f"The condition no longer holds{since_text}.",
        channel=row.get("channel") or "",
        route="state",
    )


def _send(notification: Notification, sinks: Sequence[Sink]) -> list[tuple[Sink, str, str, str]]:
    """(sink, outcome, channel, detail) per sink. A failing sink never stops the others."""
    outcomes = []
    for sink in sinks:
        try:
            result = sink.send(notification)
            outcomes.append((sink, "sent", result.channel, result.detail))
        except SinkError as exc:
            outcomes.append((sink, "failed", notification.channel, str(exc)))
        except Exception as exc:  # a sink bug is logged like a delivery failure
            outcomes.append((sink, "failed", notification.channel, f"{type(exc).__name__}: {exc}"))
    return outcomes


def _sink_name(sink: Sink) -> str:
    return getattr(sink, "name", type(sink).__name__)


def _notify(
    con,
    notification: Notification,
    sinks: Sequence[Sink],
    previous: dict[str, Any] | None,
    labels_hash: str,
    summary: DispatchSummary,
) -> None:
    alert = notification.alert
    outcomes = _send(notification, sinks)
    delivering = [o for o in outcomes if getattr(o[0], "delivery", True)] or outcomes
    delivered = any(outcome == "sent" for _, outcome, _, _ in delivering)
    payload = json.dumps(notification.to_dict(), sort_keys=True, default=str)
    now = notification.at
    # A resolved notice updates the stored row, whatever fingerprint scheme wrote it.
    fp = previous["fingerprint"] if previous is not None and notification.event == "resolved" else alert.fingerprint

    con.begin()
    try:
        con.executemany(
            "insert into alerting.alert_log (run_id, fingerprint, rule, event, channel, sink, outcome, "
            "detail, payload, logged_at, labels_hash) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                [notification.run_id, fp, alert.rule, notification.event, channel, _sink_name(sink),
                 outcome, detail, payload, now, labels_hash]
                for sink, outcome, channel, detail in outcomes
            ],
        )
        if delivered and notification.event == "resolved":
            con.execute(
                "update alerting.alert_state set state = 'resolved', resolved_at = ?, last_notified_at = ? "
                "where fingerprint = ?",
                [now, now, fp],
            )
        elif delivered and previous is None:
            con.execute(
                "insert into alerting.alert_state (fingerprint, rule, kind, subject, department_id, kpi_id, "
                "severity, state, summary, labels_hash, first_fired_at, last_seen_at, last_notified_at, "
                "resolved_at, channel) values (?, ?, ?, ?, ?, ?, ?, 'firing', ?, ?, ?, ?, ?, null, ?)",
                [fp, alert.rule, alert.kind, alert.subject, alert.department_id, alert.kpi_id, alert.severity,
                 alert.title, labels_hash, now, now, now, alert.channel],
            )
        elif delivered:
            # Re-opened (was resolved) starts a new episode; a label change keeps first_fired_at.
            first_fired = previous["first_fired_at"] if previous["state"] == "firing" else now
            con.execute(
                "update alerting.alert_state set rule = ?, kind = ?, subject = ?, department_id = ?, kpi_id = ?, "
                "severity = ?, state = 'firing', summary = ?, labels_hash = ?, first_fired_at = ?, "
                "last_seen_at = ?, last_notified_at = ?, resolved_at = null, channel = ? where fingerprint = ?",
                [alert.rule, alert.kind, alert.subject, alert.department_id, alert.kpi_id, alert.severity,
                 alert.title, labels_hash, first_fired, now, now, alert.channel, fp],
            )
        con.commit()
    except Exception:
        con.rollback()
        raise

    for sink, outcome, _, detail in outcomes:
        if outcome == "failed":
            summary.failures.append(DeliveryFailure(fp, alert.rule, notification.event, _sink_name(sink), detail))
    if delivered:
        summary._bump(alert.rule, "sent")
        summary.sent_notifications.append(notification)
    else:
        summary._bump(alert.rule, "failed")


def dispatch(
    con,
    alerts: Iterable[Alert],
    sinks: Sequence[Sink],
    run_id: str,
    now: datetime | None = None,
) -> DispatchSummary:
    """Notify what changed since the stored state, log every attempt, update the state.

    `now` (UTC; naive or aware) stamps state and log rows; default: the current time.
    """
    sinks = list(sinks)
    if not sinks:
        raise ValueError("dispatch needs at least one sink")
    alerts = list(alerts)
    now = _utc_naive(now)
    ensure_schema(con)
    state = _load_state(con)
    summary = DispatchSummary(run_id=str(run_id))

    seen: dict[str, Alert] = {}
    still_firing: list[str] = []
    for alert in alerts:
        fp = alert.fingerprint
        if fp in seen:
            raise ValueError(f"two alerts share fingerprint {fp} (rule {alert.rule!r}, subject {alert.subject!r})")
        seen[fp] = alert
        summary._bump(alert.rule, "fired")
        previous = state.get(fp)
        if previous and previous["state"] == "firing" and previous["labels_hash"] == alert.labels_hash:
            summary._bump(alert.rule, "unchanged")
            still_firing.append(fp)
            continue
        summary._bump(alert.rule, "changed" if previous and previous["state"] == "firing" else "new")
        _notify(con, Notification("firing", alert, str(run_id), now), sinks, previous, alert.labels_hash, summary)

    if still_firing:
        con.executemany(
            "update alerting.alert_state set last_seen_at = ? where fingerprint = ?",
            [[now, fp] for fp in still_firing],
        )

    gone = [row for fp, row in state.items() if row["state"] == "firing" and fp not in seen]
    for row in sorted(gone, key=lambda r: (r["rule"], r["subject"])):
        summary._bump(row["rule"], "resolved")
        notification = Notification("resolved", _resolved_alert(row), str(run_id), now)
        _notify(con, notification, sinks, row, row["labels_hash"], summary)
    return summary
