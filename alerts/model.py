"""The platform-neutral alert model: what fired, for whom, and how it is identified.

- `Alert`: one firing condition found by `alerts.engine.evaluate` (or a pipeline failure),
  already routed: `recipients` lists where it goes (`alerts.routing`).
- `Notification`: one thing to tell one recipient about an alert — ``firing`` (new or
  changed), ``repeat`` (still firing after the repeat interval), ``escalated`` (not
  acknowledged in time) or ``resolved``.
- `Message`: what is actually posted: every notification for one recipient in one run
  (grouping), or a weekly digest. Its `key` is deterministic and is the idempotency key of the
  delivery outbox.

Nothing here knows about Slack; `alerts.formatting` turns a message into Block Kit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Mapping

EVENTS = ("firing", "repeat", "escalated", "resolved")

# An injectable clock: returns "now" as a naive UTC datetime. Tests pass a fake one.
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def as_utc_naive(value: datetime | None) -> datetime:
    """`value` as naive UTC (aware values converted); None -> now."""
    if value is None:
        return utc_now()
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _digest(text: str, length: int = 16) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def fingerprint(rule: str, subject: str) -> str:
    """Identity of an alert: the rule and its subject, never the values that made it fire."""
    return _digest(json.dumps([rule, subject]))


def labels_hash(labels: Mapping[str, Any]) -> str:
    """Hash of the state-defining values (e.g. ``{"status": "red"}``): a change re-notifies."""
    return _digest(json.dumps(labels, sort_keys=True, default=str))


@dataclass(frozen=True)
class Recipient:
    """One place an alert goes, as chosen by the routing tree.

    `how` says how `channel` was found: ``owner``, ``department``, ``department_head``,
    ``channel`` (a fixed channel of the receiver) or ``fallback`` (the wanted contact is not
    in the catalog, so the rules' `fallback_channel`)."""

    channel: str
    receiver: str
    how: str
    repeat_interval: timedelta | None = None
    group: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "receiver": self.receiver, "how": self.how}


@dataclass(frozen=True)
class Alert:
    rule: str
    kind: str
    severity: str  # info | warning | critical
    subject: str  # kpi_id, milestone_id, source_id or run id
    title: str
    text: str
    recipients: tuple[Recipient, ...] = ()
    department_id: str | None = None
    kpi_id: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)  # label -> formatted value, in order
    labels: Mapping[str, Any] = field(default_factory=dict)
    as_of: date | None = None
    tags: tuple[str, ...] = ()
    kpis: tuple[str, ...] = ()  # every KPI the subject concerns (a source: the KPIs it feeds)
    # Who to reach, from the catalog: owner / department / department_head -> Slack id or channel.
    contacts: Mapping[str, str] = field(default_factory=dict)
    # Link targets, resolved against the configured base URLs by the formatter:
    # the Dagster UI path (e.g. "assets/fct_kpi_progress") and the report anchor ("kpi-x").
    dagster_path: str | None = None
    report_anchor: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.subject)

    @property
    def labels_hash(self) -> str:
        return labels_hash(self.labels)

    @property
    def channel(self) -> str:
        """The first recipient's channel ("" when not routed)."""
        return self.recipients[0].channel if self.recipients else ""

    @property
    def route(self) -> str:
        return self.recipients[0].how if self.recipients else "unrouted"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "rule": self.rule,
            "kind": self.kind,
            "severity": self.severity,
            "subject": self.subject,
            "department_id": self.department_id,
            "kpi_id": self.kpi_id,
            "title": self.title,
            "text": self.text,
            "fields": dict(self.fields),
            "recipients": [r.to_dict() for r in self.recipients],
            "labels": dict(self.labels),
            "labels_hash": self.labels_hash,
            "as_of": self.as_of.isoformat() if self.as_of else None,
        }


@dataclass(frozen=True)
class Notification:
    """One thing to tell one recipient about an alert.

    `seq` numbers the alert's state changes (stored in ``alerting.alert_state.notify_seq``):
    with the fingerprint and event it makes `key`, unique per fingerprint and state change.
    """

    event: str  # firing | repeat | escalated | resolved
    alert: Alert
    run_id: str
    at: datetime
    channel: str = ""
    seq: int = 0
    previous_labels: Mapping[str, Any] | None = None
    since: datetime | None = None  # when this episode started firing
    note: str = ""  # e.g. why it was escalated, or "now green" for a resolved KPI
    ack_hint: bool = False  # the rule escalates: tell the reader how to acknowledge

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}; expected one of {EVENTS}")
        if not self.channel:
            object.__setattr__(self, "channel", self.alert.channel)

    @property
    def key(self) -> str:
        return _digest(json.dumps([self.alert.fingerprint, self.event, self.seq]))

    def to_dict(self) -> dict[str, Any]:
        return {
            "event": self.event,
            "run_id": self.run_id,
            "at": self.at.isoformat(),
            "seq": self.seq,
            "notification_key": self.key,
            **self.alert.to_dict(),
            "channel": self.channel,
        }


@dataclass(frozen=True)
class DigestKpi:
    kpi_id: str
    name: str
    status: str
    previous_status: str | None
    actual: str
    expected: str
    data_trust: str
    owner: str | None = None


@dataclass(frozen=True)
class DigestMilestone:
    milestone_id: str
    title: str
    due_date: date
    state: str
    days_to_due: int


@dataclass(frozen=True)
class Digest:
    """A weekly summary for one owner (``audience="owner"``) or one department."""

    audience: str  # owner | department
    channel: str
    name: str  # the owner's or the department's name
    department: str
    week: str  # ISO week, e.g. "2026-W47"
    as_of: date
    status_counts: Mapping[str, int]
    trust_counts: Mapping[str, int]
    kpis: tuple[DigestKpi, ...]
    changes: tuple[str, ...]
    upcoming: tuple[DigestMilestone, ...]
    alert_activity: Mapping[str, int] = field(default_factory=dict)  # event -> count this week
    overdue_sources: tuple[str, ...] = ()


@dataclass(frozen=True)
class Message:
    """What is posted to one channel: grouped notifications, or a digest."""

    channel: str
    notifications: tuple[Notification, ...] = ()
    digest: Digest | None = None

    @property
    def kind(self) -> str:
        return "digest" if self.digest is not None else "alerts"

    @property
    def key(self) -> str:
        """Deterministic idempotency key: the same decisions always give the same key."""
        if self.digest is not None:
            return "d-" + _digest(json.dumps(["digest", self.digest.audience, self.channel, self.digest.week]), 20)
        keys = sorted(n.key for n in self.notifications)
        return "m-" + _digest(json.dumps([self.channel, keys]), 20)


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_duration(text: str) -> timedelta | None:
    """``30m``, ``4h``, ``7d``, ``2w`` -> timedelta; ``never`` -> None. ValueError otherwise."""
    value = str(text).strip()
    if value == "never":
        return None
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    number, unit = value[:-1], value[-1:]
    if unit not in units or not number.isdigit():
        raise ValueError(f"{text!r} is not a duration like 30m, 4h, 7d, 2w or 'never'")
    return timedelta(**{units[unit]: int(number)})


def format_duration(delta: timedelta | None) -> str:
    if delta is None:
        return "never"
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"
