"""The weekly digest: one message per KPI owner and one per department.

Each digest gives status counts, data trust, every KPI with its actual against expected, the
status changes of the latest period, the alerts sent that week, upcoming milestones and
overdue sources. Digests go through the same outbox as alerts, keyed by (audience, channel,
ISO week): running the digest twice in a week sends nothing the second time.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any

from alerts.conditions import AlertsError, _as_date, _num, _period, _require_tables, _settings_as_of
from alerts.formatting import LinkConfig, format_message
from alerts.model import Digest, DigestKpi, DigestMilestone, Message, as_utc_naive, iso_week
from alerts.rules import RuleSet
from alerts.store import ensure_schema, rows, table_exists

UPCOMING_DAYS = 90
DIGEST_TABLES = ("catalog.kpis", "catalog.departments", "marts.fct_kpi_progress", "marts.fct_milestones",
                 "marts.fct_source_freshness")


def _kpis(con) -> list[dict[str, Any]]:
    return rows(
        con,
        """
        select k.kpi_id, k.name, k.department_id, k.owner_name, k.owner_slack, k.unit, k.frequency,
               p.period, p.actual, p.expected_value, coalesce(p.status, 'grey') as status, p.previous_status,
               coalesce(p.data_trust, 'stale') as data_trust
        from catalog.kpis k
        left join marts.fct_kpi_progress p on p.kpi_id = k.kpi_id and p.is_latest
        order by k.department_id, k.kpi_id
        """,
    )


def _digest_kpi(row: dict[str, Any]) -> DigestKpi:
    return DigestKpi(
        kpi_id=row["kpi_id"],
        name=row["name"] or row["kpi_id"],
        status=row["status"],
        previous_status=row.get("previous_status"),
        actual=_num(row["actual"], row.get("unit")),
        expected=_num(row["expected_value"], row.get("unit")),
        data_trust=row["data_trust"],
        owner=row.get("owner_name"),
    )


def _changes(kpi_rows: list[dict[str, Any]]) -> tuple[str, ...]:
    out = []
    for row in kpi_rows:
        previous, status = row.get("previous_status"), row["status"]
        if previous and previous != status:
            out.append(f"{row['name']}: {previous} → {status} ({_period(row['period'], row.get('frequency'))})")
    return tuple(out)


def _activity(con, channel: str, since: datetime) -> dict[str, int]:
    if not table_exists(con, "alerting.alert_log"):
        return {}
    found = con.execute(
        "select event, count(distinct fingerprint) from alerting.alert_log "
        "where channel = ? and outcome = 'sent' and logged_at >= ? and event <> 'digest' group by event",
        [channel, since],
    ).fetchall()
    return {event: count for event, count in found}


def build_digests(
    con,
    rules: RuleSet,
    *,
    now: datetime | None = None,
    as_of: date | None = None,
    upcoming_days: int = UPCOMING_DAYS,
) -> list[Digest]:
    """Digests for every KPI owner with a Slack id and every department (reads only)."""
    missing = [t for t in DIGEST_TABLES if not table_exists(con, t)]
    if missing:
        raise AlertsError("cannot build digests: missing warehouse table(s) " + ", ".join(missing)
                          + " (run `kpiwatch run` first)")
    _require_tables(con, DIGEST_TABLES)
    now = as_utc_naive(now)
    day = _as_date(as_of) or _settings_as_of(con) or now.date()
    week = iso_week(now.date())
    since = now - timedelta(days=7)
    departments = {r["department_id"]: r for r in rows(con, "select * from catalog.departments order by department_id")}
    kpis = _kpis(con)
    milestones = rows(
        con,
        """
        select m.milestone_id, m.title, m.department_id, m.kpi_id, m.due_date, m.state, m.days_to_due,
               coalesce(m.owner_slack, k.owner_slack) as owner_slack
        from marts.fct_milestones m left join catalog.kpis k on k.kpi_id = m.kpi_id
        where m.state in ('upcoming', 'at_risk') and m.days_to_due between 0 and ?
        order by m.due_date, m.milestone_id
        """,
        [upcoming_days],
    )
    overdue = rows(con, "select source_id, department_id, periods_overdue from marts.fct_source_freshness "
                        "where is_overdue order by source_id")
    # a shared source (no department) is overdue for every department whose KPIs it feeds
    fed: dict[str, set[str]] = {}
    for r in rows(con, "select distinct source_id, department_id from catalog.kpis"):
        fed.setdefault(r["source_id"], set()).add(r["department_id"])

    def concerns(source: dict[str, Any], department_id: str) -> bool:
        if source["department_id"] is None:
            return department_id in fed.get(source["source_id"], set())
        return source["department_id"] == department_id

    def milestone(row) -> DigestMilestone:
        return DigestMilestone(row["milestone_id"], row["title"], _as_date(row["due_date"]), row["state"],
                               int(row["days_to_due"]))

    def digest(audience, channel, name, department, kpi_rows, ms_rows, sources) -> Digest:
        return Digest(
            audience=audience, channel=channel, name=name, department=department, week=week, as_of=day,
            status_counts=dict(Counter(r["status"] for r in kpi_rows)),
            trust_counts=dict(Counter(r["data_trust"] for r in kpi_rows)),
            kpis=tuple(_digest_kpi(r) for r in kpi_rows),
            changes=_changes(kpi_rows),
            upcoming=tuple(milestone(r) for r in ms_rows),
            alert_activity=_activity(con, channel, since),
            overdue_sources=tuple(f"{s['source_id']} ({s['periods_overdue']} period(s) overdue)" for s in sources),
        )

    out: list[Digest] = []
    owners: dict[str, list[dict[str, Any]]] = {}
    for row in kpis:
        if row.get("owner_slack"):
            owners.setdefault(row["owner_slack"], []).append(row)
    for slack_id, owned in sorted(owners.items()):
        owned_ids = {r["kpi_id"] for r in owned}
        names = sorted({departments.get(r["department_id"], {}).get("name") or r["department_id"] for r in owned})
        ms_rows = [m for m in milestones if m["owner_slack"] == slack_id or (not m["owner_slack"] and m["kpi_id"] in owned_ids)]
        out.append(digest("owner", slack_id, owned[0].get("owner_name") or slack_id, ", ".join(names), owned, ms_rows, []))
    for department_id, dept in departments.items():
        dept_kpis = [r for r in kpis if r["department_id"] == department_id]
        if not dept_kpis:
            continue
        channel = dept.get("channel") or rules.fallback_channel
        name = dept.get("name") or department_id
        out.append(digest("department", channel, name, name, dept_kpis,
                          [m for m in milestones if m["department_id"] == department_id],
                          [s for s in overdue if concerns(s, department_id)]))
    return out


def queue_digests(con, digests: list[Digest], *, run_id: str, now: datetime | None = None,
                  links: LinkConfig | None = None) -> list[Message]:
    """Put the digests in the outbox; returns the ones not already queued this week."""
    now = as_utc_naive(now)
    links = links or LinkConfig()
    ensure_schema(con)
    queued = []
    con.execute("begin")
    try:
        for item in digests:
            message = Message(item.channel, digest=item)
            payload = format_message(message, links)
            inserted = con.execute(
                "insert into alerting.outbox (outbox_id, message_type, run_id, created_at, channel, status, attempts, "
                "payload, notifications) values (?, 'digest', ?, ?, ?, 'pending', 0, ?, '[]') on conflict do nothing "
                "returning outbox_id",
                [message.key, str(run_id), now, item.channel, json.dumps(payload, sort_keys=True, default=str)],
            ).fetchall()
            if inserted:
                queued.append(message)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return queued
