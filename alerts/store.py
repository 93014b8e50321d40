"""The ``alerting`` schema in the warehouse: tables, silences and acknowledgements.

Every statement uses bound parameters; the only identifiers are fixed names in this module.
Callers hold a connection only for a block of statements (DuckDB allows one process per file).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Sequence

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
        state varchar not null,            -- firing | resolved: what recipients were last told
        summary varchar,                   -- the alert title, reused by the resolved notice
        labels_hash varchar not null,
        first_fired_at timestamp,
        last_seen_at timestamp,
        last_notified_at timestamp,
        resolved_at timestamp,
        channel varchar                    -- first recipient
    )
    """,
    """
    create table if not exists alerting.alert_log (
        run_id varchar,
        fingerprint varchar,
        rule varchar,
        event varchar,                     -- firing | repeat | escalated | resolved | digest
        channel varchar,
        sink varchar,                      -- slack | local
        outcome varchar,                   -- sent | failed | rerouted | held | silenced
        detail varchar,
        payload varchar,                   -- the notification as JSON
        logged_at timestamp,
        labels_hash varchar
    )
    """,
    # Columns added after the first release (existing warehouses are upgraded in place).
    "alter table alerting.alert_state add column if not exists channel varchar",
    "alter table alerting.alert_state add column if not exists labels varchar",
    "alter table alerting.alert_state add column if not exists recipients varchar",
    "alter table alerting.alert_state add column if not exists changed_at timestamp",
    "alter table alerting.alert_state add column if not exists notify_seq integer",
    "alter table alerting.alert_state add column if not exists escalated_at timestamp",
    "alter table alerting.alert_log add column if not exists labels_hash varchar",
    "alter table alerting.alert_log add column if not exists outbox_id varchar",
    "alter table alerting.alert_log add column if not exists silence_id integer",
    """
    create table if not exists alerting.outbox (
        outbox_id varchar primary key,     -- deterministic idempotency key (alerts.model.Message.key)
        message_type varchar not null,     -- alerts | digest
        run_id varchar,
        created_at timestamp not null,
        channel varchar not null,          -- where it is to be posted
        original_channel varchar,          -- set on a fallback copy: where it could not be delivered
        status varchar not null,           -- pending | sending | sent | rerouted | failed
        attempts integer not null,
        claimed_by varchar,                -- host:pid of the process that marked it sending
        attempted_at timestamp,
        sent_at timestamp,
        delivered_via varchar,             -- slack | local
        slack_channel varchar,             -- conversation id Slack answered with
        slack_ts varchar,                  -- the posted message's ts
        recovered boolean,                 -- found already delivered (no second post)
        possible_duplicate boolean,        -- re-posted without being able to check the first try
        last_error varchar,
        payload varchar not null,          -- chat.postMessage arguments (channel, text, blocks) as JSON
        notifications varchar not null     -- JSON list: fingerprint, rule, event, seq, key, ...
    )
    """,
    """
    create table if not exists alerting.silences (
        silence_id integer primary key,
        target_type varchar not null,      -- kpi | department | rule
        target varchar not null,
        reason varchar not null,
        created_by varchar,
        created_at timestamp not null,
        starts_at timestamp not null,
        ends_at timestamp not null,
        expired_at timestamp               -- set by `kpiwatch silence expire`
    )
    """,
    """
    create table if not exists alerting.acks (
        fingerprint varchar not null,
        labels_hash varchar not null,      -- the state acknowledged (a change needs a new ack)
        episode_started_at timestamp,      -- first_fired_at of the episode acknowledged
        acked_by varchar not null,
        note varchar,
        acked_at timestamp not null
    )
    """,
)

SILENCE_TARGETS = ("kpi", "department", "rule")


def ensure_schema(con) -> None:
    """Create the ``alerting`` schema and tables if missing, add new columns (idempotent)."""
    for statement in ALERTING_DDL:
        con.execute(statement)


def rows(con, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cursor = con.execute(sql, list(params))
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def table_exists(con, qualified: str) -> bool:
    schema, table = qualified.split(".", 1)
    found = con.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchone()[0]
    return found > 0


class AlertingError(ValueError):
    """A user error about silences or acknowledgements; the message says what to do."""


# --------------------------------------------------------------------------- silences


@dataclass(frozen=True)
class Silence:
    silence_id: int
    target_type: str
    target: str
    reason: str
    created_by: str | None
    created_at: datetime
    starts_at: datetime
    ends_at: datetime
    expired_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        if self.expired_at is not None and self.expired_at <= now:
            return False
        return self.starts_at <= now < self.ends_at

    def matches(self, rule: str, department_id: str | None, kpi_id: str | None) -> bool:
        value = {"rule": rule, "department": department_id, "kpi": kpi_id}[self.target_type]
        return value == self.target

    def describe(self) -> str:
        return f"silence {self.silence_id} ({self.target_type} {self.target}, until {self.ends_at:%Y-%m-%d %H:%M} UTC)"


def _silence(row: dict[str, Any]) -> Silence:
    return Silence(**{key: row[key] for key in Silence.__dataclass_fields__})


def known_targets(con, target_type: str) -> list[str] | None:
    """Ids a silence may name (from the catalog tables), or None if the catalog is not loaded."""
    table, column = {"kpi": ("catalog.kpis", "kpi_id"), "department": ("catalog.departments", "department_id")}.get(
        target_type, (None, None)
    )
    if table is None or not table_exists(con, table):
        return None
    query = {
        "kpi": "select kpi_id from catalog.kpis order by 1",
        "department": "select department_id from catalog.departments order by 1",
    }[target_type]
    return [row[0] for row in con.execute(query).fetchall()]


def add_silence(
    con,
    target_type: str,
    target: str,
    ends_at: datetime,
    reason: str,
    now: datetime,
    created_by: str | None = None,
    known: Sequence[str] | None = None,
) -> Silence:
    """Record a silence from `now` until `ends_at`. `known`: valid targets, if known."""
    if target_type not in SILENCE_TARGETS:
        raise AlertingError(f"a silence targets one of {', '.join(SILENCE_TARGETS)}, not {target_type!r}")
    if not target or not target.strip():
        raise AlertingError(f"--{target_type} needs a value")
    if not reason or not reason.strip():
        raise AlertingError("--reason is required: say why the alerts are silenced")
    if ends_at <= now:
        raise AlertingError(f"--until {ends_at:%Y-%m-%d %H:%M} is not in the future (now {now:%Y-%m-%d %H:%M} UTC)")
    if known is not None and target not in known:
        listed = ", ".join(known[:20]) + (", ..." if len(known) > 20 else "")
        raise AlertingError(f"unknown {target_type} {target!r} (known: {listed or 'none'})")
    ensure_schema(con)
    con.execute("begin")
    try:
        next_id = con.execute("select coalesce(max(silence_id), 0) + 1 from alerting.silences").fetchone()[0]
        con.execute(
            "insert into alerting.silences (silence_id, target_type, target, reason, created_by, created_at, "
            "starts_at, ends_at, expired_at) values (?, ?, ?, ?, ?, ?, ?, ?, null)",
            [next_id, target_type, target.strip(), reason.strip(), created_by, now, now, ends_at],
        )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return get_silence(con, next_id)


def get_silence(con, silence_id: int) -> Silence:
    found = rows(con, "select * from alerting.silences where silence_id = ?", [silence_id])
    if not found:
        raise AlertingError(f"no silence with id {silence_id} (see `kpiwatch silence list --all`)")
    return _silence(found[0])


def list_silences(con, now: datetime, include_expired: bool = False) -> list[Silence]:
    if not table_exists(con, "alerting.silences"):
        return []
    found = [_silence(row) for row in rows(con, "select * from alerting.silences order by silence_id")]
    return found if include_expired else [s for s in found if s.is_active(now) or s.starts_at > now]


def active_silences(con, now: datetime) -> list[Silence]:
    return [s for s in list_silences(con, now) if s.is_active(now)]


def expire_silence(con, silence_id: int, now: datetime) -> Silence:
    ensure_schema(con)
    silence = get_silence(con, silence_id)
    if not silence.is_active(now) and silence.starts_at <= now:
        raise AlertingError(f"silence {silence_id} is not active (it ended {min(silence.ends_at, silence.expired_at or silence.ends_at):%Y-%m-%d %H:%M} UTC)")
    con.execute("update alerting.silences set expired_at = ? where silence_id = ?", [now, silence_id])
    return get_silence(con, silence_id)


def first_matching(silences: Sequence[Silence], rule: str, department_id: str | None, kpi_id: str | None) -> Silence | None:
    return next((s for s in silences if s.matches(rule, department_id, kpi_id)), None)


# --------------------------------------------------------------------------- acknowledgements


@dataclass(frozen=True)
class Ack:
    fingerprint: str
    rule: str
    summary: str
    acked_by: str
    note: str
    acked_at: datetime


def ack(con, fingerprint: str, acked_by: str, note: str, now: datetime) -> Ack:
    """Acknowledge the firing alert `fingerprint` (or a unique prefix of at least 6 characters).

    The acknowledgement covers the alert's current state and episode: it stops reminders and
    escalation until the state changes or the alert resolves and fires again."""
    fingerprint = (fingerprint or "").strip().lower()
    if len(fingerprint) < 6:
        raise AlertingError("give the alert's fingerprint (at least its first 6 characters)")
    if not acked_by or not acked_by.strip():
        raise AlertingError("--by is required: who acknowledges")
    ensure_schema(con)
    found = rows(
        con,
        "select fingerprint, rule, summary, state, labels_hash, first_fired_at from alerting.alert_state "
        "where starts_with(fingerprint, ?) order by fingerprint",
        [fingerprint],
    )
    if not found:
        raise AlertingError(f"no alert with fingerprint {fingerprint!r} (the fingerprint is shown in each alert message)")
    if len(found) > 1:
        raise AlertingError(f"fingerprint prefix {fingerprint!r} is ambiguous: " + ", ".join(r["fingerprint"] for r in found))
    row = found[0]
    if row["state"] != "firing":
        raise AlertingError(f"alert {row['fingerprint']} ({row['summary']}) is not firing; nothing to acknowledge")
    con.execute(
        "insert into alerting.acks (fingerprint, labels_hash, episode_started_at, acked_by, note, acked_at) "
        "values (?, ?, ?, ?, ?, ?)",
        [row["fingerprint"], row["labels_hash"], row["first_fired_at"], acked_by.strip(), (note or "").strip(), now],
    )
    return Ack(row["fingerprint"], row["rule"], row["summary"] or "", acked_by.strip(), (note or "").strip(), now)


def acked_states(con) -> set[tuple[str, str, Any]]:
    """(fingerprint, labels_hash, episode_started_at) of every acknowledgement."""
    if not table_exists(con, "alerting.acks"):
        return set()
    return {
        (row[0], row[1], row[2])
        for row in con.execute("select fingerprint, labels_hash, episode_started_at from alerting.acks").fetchall()
    }


def json_list(value: Any) -> list[Any]:
    if not value:
        return []
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return []
    return parsed if isinstance(parsed, list) else []


def json_dict(value: Any) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}
