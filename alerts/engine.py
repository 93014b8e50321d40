"""Decide who must be told what, record it, and hand it to the delivery outbox.

``evaluate(con, rules, as_of)`` (alerts.conditions) finds the alerts firing now.
``dispatch(con, alerts, rules, run_id=..., now=...)`` compares them with
``alerting.alert_state`` — what recipients were last told — and decides, per alert:

- new, re-opened, or state changed (amber -> red)      -> ``firing`` to every routed recipient;
- unchanged, unacknowledged, `repeat_interval` passed  -> ``repeat`` (a reminder);
- unchanged, unacknowledged, escalation rule's `after`
  passed since the state began                         -> ``escalated``, once, to its receiver;
- firing before but not found any more                 -> ``resolved``, once, to where it went;
- matched by an active silence                         -> nothing is sent; the suppression is
  logged (``alert_log.outcome = 'silenced'``, with the silence id) and the state is left as it
  was, so the notice goes out once the silence expires if the condition still holds.

All notifications for one recipient in one run become one grouped `Message`. The messages,
the state changes and the log rows are committed in one transaction: a decision is never lost
and never taken twice. ``alerts.delivery.deliver`` then sends the outbox.
`run_alerts` does all three steps with short-lived connections.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

from alerts.conditions import AlertsError, current_states, evaluate, pipeline_failure_alert, route  # noqa: F401
from alerts.delivery import DeliverySummary, OpenWarehouse, deliver
from alerts.formatting import LinkConfig, format_message
from alerts.model import Alert, Clock, Message, Notification, Recipient, as_utc_naive, utc_now
from alerts.rules import CONDITION_KINDS, EVENT_KINDS, RuleSet
from alerts.sinks import Transport, notification_record
from alerts.store import (
    Silence,
    acked_states,
    active_silences,
    ensure_schema,
    first_matching,
    json_dict,
    json_list,
    rows,
)

__all__ = ["AlertsError", "DispatchSummary", "dispatch", "evaluate", "run_alerts", "ensure_schema"]


@dataclass
class DispatchSummary:
    run_id: str
    fired: int = 0  # alerts firing now
    new: int = 0  # firing notices for alerts not firing before (new or re-opened)
    changed: int = 0  # firing notices because the state-defining labels changed
    unchanged: int = 0  # still firing, nothing due
    repeated: int = 0  # reminders (repeat interval passed, not acknowledged)
    escalated: int = 0  # escalations (not acknowledged in time)
    resolved: int = 0  # resolved notices
    silenced: int = 0  # notices suppressed by a silence
    acknowledged: int = 0  # firing alerts whose current state is acknowledged
    notifications: int = 0  # notices queued (one per alert and recipient)
    messages: list[Message] = field(default_factory=list)  # queued messages (grouped)
    per_rule: dict[str, dict[str, int]] = field(default_factory=dict)
    silenced_by: dict[str, int] = field(default_factory=dict)  # fingerprint -> silence id

    def _bump(self, rule: str, key: str) -> None:
        setattr(self, key, getattr(self, key) + 1)
        counts = self.per_rule.setdefault(rule, {})
        counts[key] = counts.get(key, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            **{key: getattr(self, key) for key in ("fired", "new", "changed", "unchanged", "repeated", "escalated",
                                                   "resolved", "silenced", "acknowledged", "notifications")},
            "messages": [
                {"channel": m.channel, "key": m.key, "notifications": [
                    {"event": n.event, "fingerprint": n.alert.fingerprint, "rule": n.alert.rule, "title": n.alert.title}
                    for n in m.notifications]}
                for m in self.messages
            ],
            "per_rule": {rule: dict(counts) for rule, counts in sorted(self.per_rule.items())},
            "silenced_by": dict(self.silenced_by),
        }

    def __str__(self) -> str:
        return (
            f"{self.fired} firing ({self.new} new, {self.changed} changed, {self.unchanged} unchanged), "
            f"{self.repeated} reminders, {self.escalated} escalated, {self.resolved} resolved, "
            f"{self.silenced} silenced; {self.notifications} notices in {len(self.messages)} message(s)"
        )


@dataclass
class AlertRun:
    dispatch: DispatchSummary
    delivery: DeliverySummary
    alerts: list[Alert]

    def __str__(self) -> str:
        return f"{self.dispatch}; {self.delivery}"


# --------------------------------------------------------------------------- state


def _load_state(con) -> dict[str, dict[str, Any]]:
    out = {}
    for row in rows(con, "select * from alerting.alert_state"):
        row["labels"] = json_dict(row.get("labels"))
        row["recipients"] = json_list(row.get("recipients"))
        row["notify_seq"] = row.get("notify_seq") or 0
        out[row["fingerprint"]] = row
    return out


def _resolved_alert(row: dict[str, Any], now_state: str | None = None) -> Alert:
    """The alert a resolved notice is about, rebuilt from stored state."""
    since = row.get("first_fired_at")
    since_text = f" (firing since {since:%Y-%m-%d %H:%M} UTC)" if isinstance(since, datetime) else ""
    recipients = tuple(
        Recipient(r.get("channel", ""), r.get("receiver", "state"), r.get("how", "state"))
        for r in row.get("recipients") or []
        if r.get("channel")
    ) or ((Recipient(row["channel"], "state", "state"),) if row.get("channel") else ())
    text = f"The condition no longer holds{since_text}."
    if now_state:
        text = f"Now {now_state.replace('_', ' ')}: the condition no longer holds{since_text}."
    return Alert(
        rule=row["rule"],
        kind=row["kind"],
        severity=row["severity"],
        subject=row["subject"],
        department_id=row.get("department_id"),
        kpi_id=row.get("kpi_id"),
        title=row.get("summary") or row["subject"],
        text=text,
        recipients=recipients,
        labels=row.get("labels") or {},
    )


def _recipients_json(recipients: Iterable[Recipient]) -> str:
    return json.dumps([r.to_dict() for r in recipients], sort_keys=True)


def _silence_logged(con, fingerprint: str, silence: Silence, labels_hash: str, event: str) -> bool:
    return con.execute(
        "select count(*) from alerting.alert_log where fingerprint = ? and silence_id = ? and labels_hash = ? "
        "and event = ? and outcome = 'silenced'",
        [fingerprint, silence.silence_id, labels_hash, event],
    ).fetchone()[0] > 0


# --------------------------------------------------------------------------- dispatch


def dispatch(
    con,
    alerts: Iterable[Alert],
    rules: RuleSet,
    *,
    run_id: str,
    now: datetime | None = None,
    links: LinkConfig | None = None,
    resolve_kinds: Sequence[str] | None = CONDITION_KINDS,
) -> DispatchSummary:
    """Decide what to tell whom (see the module docstring), and commit state + outbox.

    `now` (UTC, naive or aware; default: the clock) drives repeat intervals, escalation and
    silence expiry. `resolve_kinds`: kinds whose stored alerts resolve when not in `alerts`
    (None or () for event alerts such as a pipeline failure, which never resolve).
    """
    alerts = list(alerts)
    now = as_utc_naive(now)
    links = links or LinkConfig()
    run_id = str(run_id)
    ensure_schema(con)
    state = _load_state(con)
    silences = active_silences(con, now)
    acks = acked_states(con)
    summary = DispatchSummary(run_id=run_id)
    router = rules.router

    notes: list[Notification] = []
    state_writes: list[tuple[str, list[Any]]] = []
    silenced_logs: list[list[Any]] = []
    seen_at: list[str] = []
    seen: set[str] = set()

    def escalation_of(rule_name: str):
        return router.escalation.get(rule_name)

    for alert in alerts:
        fp = alert.fingerprint
        if fp in seen:
            raise ValueError(f"two alerts share fingerprint {fp} (rule {alert.rule!r}, subject {alert.subject!r})")
        seen.add(fp)
        summary._bump(alert.rule, "fired")
        prev = state.get(fp)
        if alert.kind in EVENT_KINDS and prev is not None:
            summary._bump(alert.rule, "unchanged")  # an event (a failed run) is told once
            continue
        firing_before = prev is not None and prev["state"] == "firing"
        escalation = escalation_of(alert.rule)
        ack_hint = escalation is not None and escalation.applies_to(alert.labels)
        silence = first_matching(silences, alert.rule, alert.department_id, alert.kpi_id)

        planned: list[tuple[str, Recipient, int]] = []  # (event, recipient, seq)
        seq = prev["notify_seq"] if prev else 0
        if not firing_before or prev["labels_hash"] != alert.labels_hash:
            kind = "changed" if firing_before else "new"
            for recipient in alert.recipients:
                planned.append(("firing", recipient, seq + 1))
            event_kind = kind
        else:
            acked = (fp, prev["labels_hash"], prev["first_fired_at"]) in acks
            if acked:
                summary._bump(alert.rule, "acknowledged")
            event_kind = "unchanged"
            if not acked and escalation is not None and prev.get("escalated_at") is None \
                    and escalation.applies_to(alert.labels) \
                    and now - (prev.get("changed_at") or prev["first_fired_at"]) >= escalation.after:
                seq += 1
                planned.append(("escalated", router.receiver_recipient(escalation.receiver, alert), seq))
                event_kind = "escalated"
            last = prev.get("last_notified_at")
            due = [r for r in alert.recipients
                   if r.repeat_interval is not None and last is not None and now - last >= r.repeat_interval]
            if not acked and due:
                seq += 1
                planned.extend(("repeat", r, seq) for r in due)
                event_kind = "repeated" if event_kind == "unchanged" else event_kind

        if not planned:
            summary._bump(alert.rule, "unchanged")
            if prev is not None:
                seen_at.append(fp)
            continue

        if silence is not None:
            summary._bump(alert.rule, "silenced")
            summary.silenced_by[fp] = silence.silence_id
            for event in sorted({event for event, _, _ in planned}):
                if not _silence_logged(con, fp, silence, alert.labels_hash, event):
                    silenced_logs.append(
                        [run_id, fp, alert.rule, event, alert.channel, None, "silenced", silence.describe() +
                         f": {silence.reason}", json.dumps(alert.to_dict(), sort_keys=True, default=str), now,
                         alert.labels_hash, None, silence.silence_id]
                    )
            if prev is not None:
                seen_at.append(fp)
            continue

        if event_kind == "repeated":
            summary._bump(alert.rule, "repeated")
        elif event_kind == "escalated":
            summary._bump(alert.rule, "escalated")
            if any(event == "repeat" for event, _, _ in planned):
                summary._bump(alert.rule, "repeated")
        else:
            summary._bump(alert.rule, event_kind)

        since = prev["first_fired_at"] if firing_before else now
        for event, recipient, note_seq in planned:
            note = ""
            if event == "escalated":
                note = (f"Not acknowledged {_age(now - (prev.get('changed_at') or prev['first_fired_at']))} after it became "
                        f"{_state_word(alert.labels)}; escalated to {recipient.receiver.replace('_', ' ')}.")
                owner = alert.fields.get("Owner")
                if owner:
                    note += f" Owner: {owner}."
            notes.append(Notification(
                event=event, alert=alert, run_id=run_id, at=now, channel=recipient.channel, seq=note_seq,
                previous_labels=prev["labels"] if (firing_before and event == "firing") else None,
                since=since if event != "firing" else (since if firing_before else None),
                note=note, ack_hint=ack_hint,
            ))
        final_seq = max(s for _, _, s in planned)
        state_writes.append(_state_write(alert, prev, firing_before, planned, final_seq, now))

    # Resolved: stored as firing, of a kind evaluated now, not firing any more.
    resolve_kinds = set(resolve_kinds or ())
    gone = [row for fp, row in state.items() if row["state"] == "firing" and fp not in seen and row["kind"] in resolve_kinds]
    currently = current_states(con, {row["kind"] for row in gone}) if gone else {}
    for row in sorted(gone, key=lambda r: (r["rule"], r["subject"])):
        alert = _resolved_alert(row, currently.get((row["kind"], row["subject"])))
        silence = first_matching(silences, row["rule"], row.get("department_id"), row.get("kpi_id"))
        summary._bump(row["rule"], "resolved" if silence is None else "silenced")
        if silence is not None:
            summary.silenced_by[row["fingerprint"]] = silence.silence_id
            if not _silence_logged(con, row["fingerprint"], silence, row["labels_hash"], "resolved"):
                silenced_logs.append(
                    [run_id, row["fingerprint"], row["rule"], "resolved", row.get("channel"), None, "silenced",
                     silence.describe() + f": {silence.reason}", None, now, row["labels_hash"], None, silence.silence_id]
                )
            continue
        seq = row["notify_seq"] + 1
        for recipient in alert.recipients:
            notes.append(Notification("resolved", alert, run_id, now, channel=recipient.channel, seq=seq,
                                      since=row.get("first_fired_at")))
        state_writes.append((
            "update alerting.alert_state set state = 'resolved', resolved_at = ?, last_notified_at = ?, "
            "notify_seq = ? where fingerprint = ?",
            [now, now, seq, row["fingerprint"]],
        ))

    messages = _group(notes, alerts)
    summary.notifications = len(notes)
    summary.messages = messages

    con.execute("begin")
    try:
        for message in messages:
            payload = format_message(message, links)
            con.execute(
                "insert into alerting.outbox (outbox_id, message_type, run_id, created_at, channel, status, attempts, "
                "payload, notifications) values (?, ?, ?, ?, ?, 'pending', 0, ?, ?) on conflict do nothing",
                [message.key, message.kind, run_id, now, message.channel,
                 json.dumps(payload, sort_keys=True, default=str),
                 json.dumps([notification_record(n) for n in message.notifications], sort_keys=True, default=str)],
            )
        for sql, params in state_writes:
            con.execute(sql, params)
        if seen_at:
            con.executemany("update alerting.alert_state set last_seen_at = ? where fingerprint = ?",
                            [[now, fp] for fp in seen_at])
        if silenced_logs:
            con.executemany(
                "insert into alerting.alert_log (run_id, fingerprint, rule, event, channel, sink, outcome, detail, "
                "payload, logged_at, labels_hash, outbox_id, silence_id) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                silenced_logs,
            )
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return summary


def _age(delta: timedelta) -> str:
    days = delta.days
    if days >= 1:
        return f"{days} day{'s' if days != 1 else ''}"
    hours = int(delta.total_seconds() // 3600)
    return f"{hours} hour{'s' if hours != 1 else ''}"


def _state_word(labels) -> str:
    value = labels.get("state") or labels.get("status") or "firing"
    return str(value).replace("_", " ")


def _state_write(alert: Alert, prev, firing_before: bool, planned, seq: int, now: datetime) -> tuple[str, list[Any]]:
    events = {event for event, _, _ in planned}
    labels = json.dumps(dict(alert.labels), sort_keys=True, default=str)
    recipients = _recipients_json(alert.recipients)
    if "firing" in events:
        first_fired = prev["first_fired_at"] if firing_before else now
        if prev is None:
            # An event (a failed run) is over once told: stored as resolved, never re-told.
            is_event = alert.kind in EVENT_KINDS
            return (
                "insert into alerting.alert_state (fingerprint, rule, kind, subject, department_id, kpi_id, severity, "
                "state, summary, labels_hash, first_fired_at, last_seen_at, last_notified_at, resolved_at, channel, "
                "labels, recipients, changed_at, notify_seq, escalated_at) "
                "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, null)",
                [alert.fingerprint, alert.rule, alert.kind, alert.subject, alert.department_id, alert.kpi_id,
                 alert.severity, "resolved" if is_event else "firing", alert.title, alert.labels_hash, first_fired,
                 now, now, now if is_event else None, alert.channel, labels, recipients, now, seq],
            )
        return (
            "update alerting.alert_state set rule = ?, kind = ?, subject = ?, department_id = ?, kpi_id = ?, "
            "severity = ?, state = 'firing', summary = ?, labels_hash = ?, first_fired_at = ?, last_seen_at = ?, "
            "last_notified_at = ?, resolved_at = null, channel = ?, labels = ?, recipients = ?, changed_at = ?, "
            "notify_seq = ?, escalated_at = null where fingerprint = ?",
            [alert.rule, alert.kind, alert.subject, alert.department_id, alert.kpi_id, alert.severity, alert.title,
             alert.labels_hash, first_fired, now, now, alert.channel, labels, recipients, now, seq,
             alert.fingerprint],
        )
    # Reminder and/or escalation of an unchanged alert.
    sets = ["last_seen_at = ?", "notify_seq = ?", "recipients = ?", "summary = ?"]
    params: list[Any] = [now, seq, recipients, alert.title]
    if "repeat" in events:
        sets.append("last_notified_at = ?")
        params.append(now)
    if "escalated" in events:
        sets.append("escalated_at = ?")
        params.append(now)
    return f"update alerting.alert_state set {', '.join(sets)} where fingerprint = ?", params + [alert.fingerprint]


def _group(notes: list[Notification], alerts: list[Alert]) -> list[Message]:
    """One message per recipient channel (routes with ``group: false`` get one per notice),
    in the order recipients first appear."""
    ungrouped_channels = {
        (a.fingerprint, r.channel) for a in alerts for r in a.recipients if not r.group
    }
    groups: dict[str, list[Notification]] = {}
    singles: list[Message] = []
    for note in notes:
        if (note.alert.fingerprint, note.channel) in ungrouped_channels and note.event != "escalated":
            singles.append(Message(note.channel, (note,)))
        else:
            groups.setdefault(note.channel, []).append(note)
    return [Message(channel, tuple(group)) for channel, group in groups.items()] + singles


# --------------------------------------------------------------------------- one cycle


def run_alerts(
    open_warehouse: OpenWarehouse,
    rules: RuleSet,
    transport: Transport,
    *,
    run_id: str,
    clock: Clock = utc_now,
    as_of=None,
    links: LinkConfig | None = None,
    alerts: Sequence[Alert] | None = None,
    resolve_kinds: Sequence[str] | None = CONDITION_KINDS,
    after_send=None,
) -> AlertRun:
    """Evaluate (unless `alerts` are given), dispatch and deliver, each step with its own
    short-lived warehouse connection."""
    with open_warehouse() as con:
        found = list(alerts) if alerts is not None else evaluate(con, rules, as_of=as_of)
        planned = dispatch(con, found, rules, run_id=run_id, now=clock(), links=links, resolve_kinds=resolve_kinds)
    delivered = deliver(open_warehouse, transport, run_id=run_id, fallback_channel=rules.fallback_channel,
                        clock=clock, after_send=after_send)
    return AlertRun(planned, delivered, found)
