"""Evaluate alert rules against the warehouse: which conditions hold now (reads only).

``evaluate(con, rules, as_of)`` reads catalog, raw, quality and marts tables and returns the
alerts firing now, each routed through the rules' routing tree (`Alert.recipients`). It keeps
no state: comparing with what recipients were already told is `alerts.engine.dispatch`'s job.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable, Iterable, Sequence

from alerts.model import Alert
from alerts.rules import Rule, RuleSet
from alerts.store import rows as _rows
from alerts.store import table_exists as _table_exists
from kpimodel import display, periods


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
    "drift": ("quality.drift_findings", "quality.drift_runs"),
}
CATALOG_TABLES = ("catalog.kpis", "catalog.departments")

MAX_LISTED_CHECKS = 5


# --------------------------------------------------------------------------- reading


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
    source_owner: dict[str, str | None] = field(default_factory=dict)  # source -> its department (None: shared)

    @classmethod
    def load(cls, con, fallback_channel: str, as_of: date) -> "_Context":
        _require_tables(con, CATALOG_TABLES)
        have = {r[0] for r in con.execute(
            "select column_name from information_schema.columns where table_schema = 'catalog' and table_name = 'kpis'"
        ).fetchall()}
        extra = "".join(f", {c}" if c in have else f", null as {c}"
                        for c in ("code", "fiscal_start_month", "tolerance", "tolerance_kind"))
        kpis = _rows(
            con,
            "select kpi_id, name, department_id, source_id, owner_name, owner_slack, unit, "
            f"direction, frequency, tags{extra} from catalog.kpis order by kpi_id",
        )
        for row in kpis:  # "CS01 Calls answered": the organisation's code beside the name
            row["display_name"] = display.kpi_title(row["kpi_id"], row.get("code"), row.get("name"))
        departments = _rows(con, "select department_id, name, channel, head_name, head_slack from catalog.departments")
        has_sources = _rows(con, "select count(*) as n from information_schema.tables "
                                 "where table_schema = 'catalog' and table_name = 'sources'")[0]["n"]
        sources = _rows(con, "select source_id, department_id from catalog.sources") if has_sources else []
        return cls(
            as_of=as_of,
            fallback_channel=fallback_channel,
            kpis={row["kpi_id"]: row for row in kpis},
            departments={row["department_id"]: row for row in departments},
            source_owner={row["source_id"]: row["department_id"] for row in sources},
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

    def source_department(self, source_id: str) -> str | None:
        """The department a source's alerts are routed by: its own; None for a shared source
        (no department: its source-level alerts concern every department it feeds, and go to
        the fallback channel)."""
        return self.source_owner.get(source_id)

    def source_department_name(self, source_id: str, department_id: str | None) -> str:
        """The department of a source, or for a shared source the departments it feeds
        (`department_id`: the one its row names, for a source not in catalog.sources)."""
        if source_id not in self.source_owner:
            return self.department_name(department_id)
        own = self.source_department(source_id)
        if own is not None:
            return self.department_name(own)
        fed = sorted({self.department_name(row.get("department_id")) for row in self.kpis.values()
                      if row.get("source_id") == source_id})
        return f"shared: {', '.join(fed)}" if fed else "shared"

    def department_name(self, department_id: str | None) -> str:
        row = self.departments.get(department_id) if department_id else None
        return (row or {}).get("name") or department_id or "unknown"

    def contacts(self, department_id: str | None, owner_slack: str | None = None) -> dict[str, str]:
        """Who can be reached about a subject: owner, department channel, department head."""
        department = self.departments.get(department_id) if department_id else None
        out = {
            "owner": owner_slack,
            "department": (department or {}).get("channel"),
            "department_head": (department or {}).get("head_slack"),
        }
        return {key: value for key, value in out.items() if value}


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
    return f"{text}%" if display.is_percent(unit) else f"{text} {unit}"


def _unit_suffix(text: str, unit: str | None) -> str:
    if not unit or display.is_percent(unit):
        return text
    return f"{text} {unit}"


def _judged(value: Any, others: Sequence[Any], unit: str | None = None) -> tuple[str, list[str]]:
    """A figure and the thresholds it is judged against (standard, expected value), readable
    as `_num` gives them when that already tells met from not met, otherwise all with the
    decimals needed (94.99% against 95.00%, never 95% against 95%)."""
    points = [float(o) for o in others if o is not None]
    texts = [_num(value, unit)] + [_num(o, unit) for o in others]
    if value is None:
        return texts[0], texts[1:]

    def parsed(text: str) -> float:
        return float(text.split(" ")[0].rstrip("%").replace(",", ""))

    shown = parsed(_num(value))
    if all(display.relation(shown, parsed(_num(p))) == display.relation(float(value), p) for p in points):
        return texts[0], texts[1:]
    decimals = display.decimals_against(float(value), points, base=0)
    out = [display.number(float(v), unit, decimals) if v is not None else "n/a" for v in [value, *others]]
    return _unit_suffix(out[0], unit), [_unit_suffix(t, unit) if t != "n/a" else t for t in out[1:]]


def _delta(delta: float, unit: str | None) -> str:
    """A change: in percentage points ("pp") for a percentage, else in the KPI's unit."""
    return display.change(delta, unit) if display.is_percent(unit) else _num(delta, unit, signed=True)


def _period(value: Any, frequency: str | None, fiscal_start_month: int | None = 1) -> str:
    """The period's label: 2026-W14, 2026-03, 2026-Q3, 2014/15 Q2 (a quarter of an April year),
    2026, 2019/20 (kpimodel/periods.py)."""
    day = _as_date(value)
    if day is None:
        return "n/a"
    return periods.label(day, frequency, fiscal_start_month)


def _day(value: Any) -> str:
    day = _as_date(value)
    return day.isoformat() if day else "n/a"


def _short(value: Any, limit: int = 80) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fields(pairs: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Ordered label -> text, dropping empty values."""
    return {label: str(value) for label, value in pairs if value not in (None, "")}


def _days_text(days: int) -> str:
    if days == 0:
        return "today"
    unit = "day" if abs(days) == 1 else "days"
    return f"in {days} {unit}" if days > 0 else f"{-days} {unit} ago"


def _alert(
    rule: Rule,
    ctx: "_Context",
    *,
    severity: str,
    subject: str,
    department_id: str | None,
    kpi_ids: Sequence[str],
    owner_slack: str | None,
    title: str,
    text: str,
    fields: Iterable[tuple[str, Any]],
    labels: dict[str, Any],
    dagster_path: str | None,
    report_anchor: str | None,
) -> Alert | None:
    """An alert of `rule`, or None when the rule's matchers exclude it."""
    tags = ctx.tags(kpi_ids)
    if not rule.matchers.matches(department_id, kpi_ids, tags, severity=severity):
        return None
    return Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=severity,
        subject=subject,
        department_id=department_id,
        kpi_id=kpi_ids[0] if len(kpi_ids) == 1 and rule.kind in ("kpi_status", "milestone", "anomaly", "drift") else None,
        title=title,
        text=text,
        fields=_fields(fields),
        labels=labels,
        as_of=ctx.as_of,
        tags=tuple(sorted(tags)),
        kpis=tuple(kpi_ids),
        contacts=ctx.contacts(department_id, owner_slack),
        dagster_path=dagster_path,
        report_anchor=report_anchor,
    )


# --------------------------------------------------------------------------- kinds
# Each kind: a fetch (one query, shared by every rule of that kind) and a builder that
# applies one rule to one row and returns an Alert or None.


def _fetch_kpi_status(con) -> list[dict[str, Any]]:
    rows = _rows(
        con,
        """
        with progress as (
            select *,
                   lag(actual) over (partition by kpi_id order by period) as previous_actual,
                   lag(period) over (partition by kpi_id order by period) as previous_period
            from marts.fct_kpi_progress
        )
        select kpi_id, kpi_name, department_id, period, period_end, actual, expected_value,
               target_value, target_date, performance_gap, status, judged_by, standard_value,
               band_lower, band_upper,
               standard_met, periods_met_last_12, periods_judged_last_12, consecutive_misses,
               previous_status,
               forecast_value, forecast_status, data_trust, data_trust_reason,
               previous_actual, previous_period
        from progress
        where is_latest
        order by kpi_id
        """,
    )
    # Data trust as published (publication step: adds drift findings and blocked publications
    # to dbt's view of trust) where the publication step has run.
    if _table_exists(con, "publish.kpi_status"):
        published = {r["kpi_id"]: r for r in _rows(
            con, "select kpi_id, period, data_trust, data_trust_reason from publish.kpi_status")}
        for row in rows:
            pub = published.get(row["kpi_id"])
            if pub and pub["data_trust"] and (pub["period"] == row["period"] or pub["data_trust"] == "stale"):
                row["data_trust"], row["data_trust_reason"] = pub["data_trust"], pub["data_trust_reason"]
    return rows


def _kpi_status_alert(rule: Rule, row: dict[str, Any], ctx: _Context) -> Alert | None:
    status = row["status"]
    if status not in rule.condition["status_in"]:
        return None
    kpi_id = row["kpi_id"]
    kpi = ctx.kpi(kpi_id)
    unit = kpi.get("unit")
    name = kpi.get("display_name") or row.get("kpi_name") or kpi_id
    period = _period(row["period"], kpi.get("frequency"), kpi.get("fiscal_start_month"))
    by_standard = row.get("judged_by") == "standard"
    previous = row.get("previous_status")
    actual, (expected, standard) = _judged(row["actual"], [row.get("expected_value"), row.get("standard_value")], unit)
    if row.get("judged_by") == "band":
        # a within_range KPI: inside its band, or how far outside
        actual, (lower, upper) = _judged(row["actual"], [row.get("band_lower"), row.get("band_upper")], unit)
        where = "within" if row.get("standard_met") else "outside"
        title = f"{name} is {where} its range ({status})"
        text = f"{period}: {actual} against the range {lower} to {upper}: {where}" + _standard_record(row) + "."
    elif by_standard:
        # a standard is met or not met: no amber, no trajectory, no deadline
        title = f"{name}: standard {'met' if row.get('standard_met') else 'not met'}"
        text = f"{period}: {actual} against the standard of {standard}: {'met' if row.get('standard_met') else 'not met'}"
        text += _standard_record(row) + "."
    else:
        title = f"{name} is {status}"
        tolerance = display.tolerance_text(kpi.get("tolerance"), kpi.get("tolerance_kind"), unit)
        if previous and previous != status:
            title += f" (was {previous})"
        text = f"{period}: actual {actual} against {expected} expected"
        if row.get("target_value") is not None:
            text += f" on the trajectory to {_num(row['target_value'], unit)} by {_day(row['target_date'])}"
        if tolerance and status == "amber":  # the tolerance as the catalog writes it
            text += f" ({status}: within {tolerance} of target)"
        elif tolerance and status == "red":
            text += f" ({status}: more than {tolerance} from target)"
        text += "."
        if row.get("standard_value") is not None:
            text += (f" Standard {standard}: {'met' if row.get('standard_met') else 'not met'}"
                     + _standard_record(row) + ".")
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
    change = f"{previous} → {status}" if previous and previous != status else f"still {status}"
    if row.get("previous_actual") is not None and row.get("actual") is not None:
        delta = float(row["actual"]) - float(row["previous_actual"])
        change += f"; {_delta(delta, unit)} since {_period(row['previous_period'], kpi.get('frequency'), kpi.get('fiscal_start_month'))}"
    return _alert(
        rule,
        ctx,
        severity=rule.severity_for(status),
        subject=kpi_id,
        department_id=row["department_id"],
        kpi_ids=[kpi_id],
        owner_slack=kpi.get("owner_slack"),
        title=title,
        text=text,
        fields=[
            ("KPI", name),
            ("Department", ctx.department_name(row["department_id"])),
            ("Status", status),
            ("Change", change),
            ("Actual", actual),
            ("Expected (trajectory)", expected if row.get("expected_value") is not None else None),
            ("Standard", f"{standard} ({'met' if row.get('standard_met') else 'not met'})"
             if row.get("standard_value") is not None else None),
            ("Target", _num(row["target_value"], unit) if row.get("target_value") is not None else None),
            ("Due date", _day(row["target_date"]) if row.get("target_date") is not None else None),
            ("Forecast", forecast),
            ("Data trust", trust),
            ("Owner", kpi.get("owner_name")),
            ("Period", period),
        ],
        labels={"status": status},
        dagster_path="assets/fct_kpi_progress",
        report_anchor=f"kpi-{kpi_id}",
    )


def _standard_record(row: dict[str, Any]) -> str:
    """"; met in 7 of the last 12 periods, 3 misses in a row"."""
    text = ""
    if row.get("periods_judged_last_12"):
        text += f"; met in {row['periods_met_last_12']} of the last {row['periods_judged_last_12']} periods"
    if (row.get("consecutive_misses") or 0) > 1:
        text += f", {row['consecutive_misses']} misses in a row"
    return text


def _fetch_milestone(con) -> list[dict[str, Any]]:
    return _rows(
        con,
        """
        select milestone_id, title, department_id, kpi_id, test, threshold, due_date, owner_name,
               owner_slack, latest_actual, latest_period, judged_period, judged_actual,
               forecast_value, state, met_how, completed_on, completed_by, days_to_due
        from marts.fct_milestones
        order by milestone_id
        """,
    )


def _milestone_alert(rule: Rule, row: dict[str, Any], ctx: _Context) -> Alert | None:
    state = row["state"]
    if state not in rule.condition["state_in"]:
        return None
    kpi_id = row.get("kpi_id")
    kpi = ctx.kpi(kpi_id)
    unit = kpi.get("unit")
    kpi_name = kpi.get("display_name") or kpi_id or "the KPI"
    threshold = _num(row["threshold"], unit)
    due = _day(row["due_date"])
    days = row.get("days_to_due")
    if days is None and _as_date(row["due_date"]):
        days = (_as_date(row["due_date"]) - ctx.as_of).days
    within = rule.condition.get("within_days")
    if state == "at_risk" and within is not None and days is not None and days > within:
        return None  # forecast to miss, but not within the rule's horizon yet
    in_period = row.get("test") == "in_period"
    judged_value = row.get("judged_actual") if in_period else row.get("latest_actual")
    judged_text, (threshold,) = _judged(judged_value, [row["threshold"]], unit)
    latest = None
    if judged_value is not None:
        when = row.get("judged_period") if in_period else row.get("latest_period")
        latest = f"{judged_text} ({_period(when, kpi.get('frequency'), kpi.get('fiscal_start_month'))})"
    label = {"missed": "Milestone missed", "at_risk": "Milestone at risk",
             "no_data": "Milestone without data"}.get(state, f"Milestone {state}")
    title = f"{label}: {row['title']}"
    if state == "missed" and row.get("test") == "manual":
        text = f"Due {due}: no completion was recorded by the due date."
    elif state == "missed" and in_period:
        text = f"Due {due}: {kpi_name} was {latest} in the due date's period, short of {threshold}."
    elif state == "missed":
        text = f"Due {due}: {kpi_name} had not reached {threshold}"
        text += f"; latest {latest}." if latest else "."
    elif state == "no_data":
        text = (f"Due {due}: no figure of {kpi_name} arrived for the period that decides it, so it can be "
                "judged neither met nor missed.")
    elif state == "at_risk":
        text = (
            f"Due {due} (in {days} days): the forecast for {kpi_name} at the due date is "
            f"{_num(row.get('forecast_value'), unit)}, short of {threshold}."
        )
    else:
        text = f"Due {due}: {kpi_name} to reach {threshold}; state {state}."
    owner_slack = row.get("owner_slack") or kpi.get("owner_slack")
    return _alert(
        rule,
        ctx,
        severity=rule.severity_for(state),
        subject=row["milestone_id"],
        department_id=row["department_id"],
        kpi_ids=[kpi_id] if kpi_id else [],
        owner_slack=owner_slack,
        title=title,
        text=text,
        fields=[
            ("Milestone", row["title"]),
            ("KPI", kpi_name if kpi_id else None),
            ("Department", ctx.department_name(row["department_id"])),
            ("State", state.replace("_", " ")),
            ("Threshold (target)", threshold),
            ("Value in the due date's period" if in_period else "Latest actual", latest),
            ("Forecast at due date", _num(row["forecast_value"], unit) if row.get("forecast_value") is not None else None),
            ("Due date", f"{due} ({_days_text(days)})" if days is not None else due),
            ("Owner", row.get("owner_name") or kpi.get("owner_name")),
        ],
        labels={"state": state},
        dagster_path="assets/fct_milestones",
        report_anchor=f"milestone-{row['milestone_id']}",
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
    cadence = row.get("cadence")
    # the year start of its KPIs (as int_source_freshness): a fiscal quarter reads "2014/15 Q2"
    fiscal = min((ctx.kpi(k).get("fiscal_start_month") or 1 for k in kpi_ids), default=1)
    expected = _period(row["expected_period"], cadence, fiscal)
    latest = _period(row["latest_period"], cadence, fiscal) if row.get("latest_period") else "none yet"
    overdue = row.get("periods_overdue")
    text = f"Data for {expected} is due (lag {row.get('lag_days')} days) but the latest period delivered is {latest}"
    text += f" ({overdue} period{'s' if overdue != 1 else ''} overdue)." if overdue is not None else "."
    kpi_names = ", ".join(ctx.kpi(kpi_id).get("display_name") or kpi_id for kpi_id in kpi_ids)
    return _alert(
        rule,
        ctx,
        severity=rule.severity_for(None),
        subject=source_id,
        department_id=row["department_id"],
        kpi_ids=kpi_ids,
        owner_slack=None,
        title=f"Source overdue: {source_id}",
        text=text,
        fields=[
            ("Source", source_id),
            ("Department", ctx.source_department_name(source_id, row["department_id"])),
            ("Cadence", cadence),
            ("Latest period", latest),
            ("Expected period", expected),
            ("Periods overdue", overdue),
            ("Last loaded", str(row["last_loaded_at"])[:16] if row.get("last_loaded_at") else "never"),
            ("KPIs affected", _short(kpi_names, 200) if kpi_names else None),
        ],
        labels={"state": "overdue"},
        dagster_path=f"assets/ingest/{source_id}",
        report_anchor=f"source-{source_id}",
    )


def _fetch_check_failed(con) -> list[dict[str, Any]]:
    # The latest batch per source; the latest result per check (a batch may be re-checked).
    rows = _rows(
        con,
        """
        with latest_batch as (
            select source_id, batch_id, source_file, loaded_at
            from (select source_id, batch_id, source_file, loaded_at,
                         row_number() over (partition by source_id
                                            order by loaded_at desc nulls last, batch_id desc nulls last) as pick
                  from raw.batches) b
            where pick = 1
        ),
        results as (
            select source_id, department_id, batch_id, suite, check_name, expectation_type, column_name,
                   severity, success, observed, expected, unexpected_count
            from (select c.*,
                         row_number() over (partition by batch_id, suite, check_name, coalesce(column_name, ''), coalesce(department_id, '')
                                            order by checked_at desc nulls last) as pick
                  from quality.check_results c) c
            where pick = 1
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
    shown = "; ".join(_check_label(check) for check in checks[:MAX_LISTED_CHECKS])
    if len(checks) > MAX_LISTED_CHECKS:
        shown += f"; and {len(checks) - MAX_LISTED_CHECKS} more"
    which = "/".join(severities)
    text = (
        f"{len(checks)} {which} check{'s' if len(checks) != 1 else ''} failed on the latest batch "
        f"{group['batch_id']} of {source_id}: {shown}."
    )
    kpi_names = ", ".join(ctx.kpi(kpi_id).get("display_name") or kpi_id for kpi_id in kpi_ids)
    return _alert(
        rule,
        ctx,
        severity=rule.severity_for(None),
        subject=source_id,
        department_id=ctx.source_department(source_id) if source_id in ctx.source_owner else group["department_id"],
        kpi_ids=kpi_ids,
        owner_slack=None,
        title=f"Data checks failed: {source_id}",
        text=text,
        fields=[
            ("Source", source_id),
            ("Department", ctx.source_department_name(source_id, group["department_id"])),
            ("Batch", group["batch_id"]),
            ("File", _short(group.get("source_file") or "", 120)),
            ("Failed checks", len(checks)),
            ("KPIs affected", _short(kpi_names, 200) if kpi_names else None),
            ("Data trust", "failed_checks (KPIs fed by this batch)"),
        ],
        labels={
            "batch_id": str(group["batch_id"]),
            "checks": sorted(f"{c['suite']}.{c['check_name']}.{c.get('column_name') or ''}" for c in checks),
        },
        dagster_path=f"assets/ingest/{source_id}?view=checks",
        report_anchor=f"source-{source_id}",
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
    kpi = ctx.kpi(kpi_id)
    unit = kpi.get("unit")
    name = kpi.get("display_name") or kpi_id
    period = _period(row["period"], kpi.get("frequency"), kpi.get("fiscal_start_month"))
    z = row.get("robust_z")
    z_text = f"{float(z):+.1f}" if z is not None else "n/a"
    text = (
        f"{period}: {name} changed by {_num(row['change'], unit, signed=True)} to {_num(row['actual'], unit)}; "
        f"its typical change is {_num(row['median_change'], unit, signed=True)} (robust z {z_text})."
    )
    return _alert(
        rule,
        ctx,
        severity=rule.severity_for(None),
        subject=kpi_id,
        department_id=row["department_id"],
        kpi_ids=[kpi_id],
        owner_slack=kpi.get("owner_slack"),
        title=f"Sudden jump: {name}",
        text=text,
        fields=[
            ("KPI", name),
            ("Department", ctx.department_name(row["department_id"])),
            ("Period", period),
            ("Actual", _num(row["actual"], unit)),
            ("Change", _num(row["change"], unit, signed=True)),
            ("Typical change", _num(row["median_change"], unit, signed=True)),
            ("Robust z", z_text),
            ("Owner", kpi.get("owner_name")),
        ],
        labels={"period": _day(row["period"])},
        dagster_path="assets/fct_kpi_anomalies",
        report_anchor=f"kpi-{kpi_id}",
    )


def _fetch_drift(con) -> list[dict[str, Any]]:
    """The findings of the latest drift evaluation about the latest period of their KPI or
    source (quality.drift_runs also records evaluations that found nothing, so cleared findings
    resolve)."""
    return _rows(
        con,
        """
        with latest as (select run_id from quality.drift_runs order by detected_at desc nulls last limit 1)
        select f.finding_key, f.kind as finding_kind, f.severity as finding_severity, f.department_id,
               f.source_id, f.kpi_id, f.period, f.observed, f.expected, f.lower_bound, f.upper_bound,
               f.score, f.threshold, f.method, f.detail
        from quality.drift_findings f join latest using (run_id)
        where f.is_latest
        order by f.finding_key
        """,
    )


DRIFT_TITLES = {"kpi_outlier": "Unusual value", "level_shift": "Level shift", "volume": "Unusual volume",
                "missing_submission": "Missing submission"}


def _drift_alert(rule: Rule, row: dict[str, Any], ctx: _Context) -> Alert | None:
    if row["finding_kind"] not in rule.condition["finding_kinds"] or row["finding_severity"] not in rule.condition["severities"]:
        return None
    kpi_id = row.get("kpi_id")
    kpi = ctx.kpi(kpi_id) if kpi_id else {}
    unit = None if row["finding_kind"] in ("volume", "missing_submission") else kpi.get("unit")  # rows, not the KPI's unit
    about = (kpi.get("display_name") or kpi_id) if kpi_id else f"source {row['source_id']}"
    period = _period(row["period"], kpi.get("frequency"), kpi.get("fiscal_start_month"))
    bounds = ""
    if row.get("lower_bound") is not None and row.get("upper_bound") is not None:
        bounds = f" (expected range {_num(row['lower_bound'], unit)} to {_num(row['upper_bound'], unit)})"
    text = f"{period}: {row['detail']}{bounds}. Method: {row['method']}."
    return _alert(
        rule,
        ctx,
        severity=rule.severity_for(row["finding_severity"]),
        subject=row["finding_key"],
        department_id=row.get("department_id"),
        kpi_ids=[kpi_id] if kpi_id else [],
        owner_slack=kpi.get("owner_slack"),
        title=f"{DRIFT_TITLES.get(row['finding_kind'], row['finding_kind'])}: {about}",
        text=text,
        fields=[
            ("KPI" if kpi_id else "Source", about),
            ("Department", ctx.department_name(row.get("department_id"))),
            ("Period", period),
            ("Observed", _num(row["observed"], unit)),
            ("Expected", _num(row["expected"], unit)),
            ("Finding", f"{row['finding_kind'].replace('_', ' ')} ({row['finding_severity']})"),
            ("Owner", kpi.get("owner_name")),
        ],
        labels={"period": _day(row["period"]), "finding": row["finding_kind"]},
        dagster_path="assets/quality/drift_findings",
        report_anchor=f"kpi-{kpi_id}" if kpi_id else None,
    )


_KINDS: dict[str, tuple[Callable[[Any], list[dict[str, Any]]], Callable[[Rule, dict, _Context], Alert | None]]] = {
    "kpi_status": (_fetch_kpi_status, _kpi_status_alert),
    "milestone": (_fetch_milestone, _milestone_alert),
    "source_overdue": (_fetch_source_overdue, _source_overdue_alert),
    "check_failed": (_fetch_check_failed, _check_failed_alert),
    "anomaly": (_fetch_anomaly, _anomaly_alert),
    "drift": (_fetch_drift, _drift_alert),
}


def evaluate(con, rules: RuleSet, as_of: date | datetime | str | None = None) -> list[Alert]:
    """The alerts firing now, in rule order then subject order, each routed. Reads only.

    `as_of` defaults to ``catalog.settings.as_of`` (else today); it is used in texts and for
    milestone days-to-due when the mart has none. Raises `AlertsError` if a table is missing.
    Event kinds (pipeline failures) are not conditions of the warehouse and are skipped.
    """
    day = _as_date(as_of) or _settings_as_of(con) or date.today()
    ctx = _Context.load(con, rules.fallback_channel, day)
    fetched: dict[str, list[dict[str, Any]]] = {}
    alerts: list[Alert] = []
    for rule in rules:
        if not rule.enabled or rule.kind not in _KINDS:
            continue
        fetch, build = _KINDS[rule.kind]
        if rule.kind not in fetched:
            _require_tables(con, REQUIRED_TABLES[rule.kind])
            fetched[rule.kind] = fetch(con)
        for row in fetched[rule.kind]:
            alert = build(rule, row, ctx)
            if alert is not None:
                alerts.append(route(alert, rules))
    return alerts


def route(alert: Alert, rules: RuleSet) -> Alert:
    """`alert` with its recipients from the rules' routing tree."""
    return dataclasses.replace(alert, recipients=rules.router.recipients(alert))


def current_states(con, kinds: Iterable[str]) -> dict[tuple[str, str], str]:
    """(kind, subject) -> the subject's state now (KPI status, milestone state), for the
    wording of resolved notices ("back to green")."""
    out: dict[tuple[str, str], str] = {}
    kinds = set(kinds)
    if "kpi_status" in kinds and _table_exists(con, "marts.fct_kpi_progress"):
        for kpi_id, status in con.execute(
            "select kpi_id, status from marts.fct_kpi_progress where is_latest"
        ).fetchall():
            out[("kpi_status", kpi_id)] = status
    if "milestone" in kinds and _table_exists(con, "marts.fct_milestones"):
        for milestone_id, state in con.execute("select milestone_id, state from marts.fct_milestones").fetchall():
            out[("milestone", milestone_id)] = state
    return out


def pipeline_failure_alert(
    rules: RuleSet,
    *,
    job_name: str,
    run_id: str,
    failed_steps: Sequence[str] = (),
    error: str = "",
    started_at: datetime | None = None,
) -> Alert | None:
    """The alert for a failed pipeline run (subject: the run id), routed; None when the rules
    have no enabled ``pipeline_failure`` rule."""
    rule = rules.first_of_kind("pipeline_failure")
    if rule is None:
        return None
    steps = ", ".join(failed_steps) if failed_steps else "(no step failed: the run failed to start or was stopped)"
    error_line = _short(error, 600) if error else "no error message recorded"
    alert = Alert(
        rule=rule.name,
        kind=rule.kind,
        severity=rule.severity_for(None),
        subject=run_id,
        title=f"Pipeline run failed: {job_name}",
        text=f"Run {run_id[:8]} of {job_name} failed in {steps}: {error_line}",
        fields=_fields(
            [
                ("Job", job_name),
                ("Run", run_id),
                ("Failed steps", _short(steps, 300)),
                ("Started", f"{started_at:%Y-%m-%d %H:%M} UTC" if started_at else None),
            ]
        ),
        labels={"run_id": run_id},
        dagster_path=f"runs/{run_id}",
    )
    if not rule.matchers.matches(None, (), (), severity=alert.severity):
        return None
    return route(alert, rules)
