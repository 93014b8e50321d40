"""The platform-neutral alert model: what fired, for whom, and how it is identified.

An `Alert` is one firing condition found by `alerts.engine.evaluate`; a `Notification` is one
message about it (event ``firing`` or ``resolved``) handed to the sinks. Formatters turn a
notification into Slack blocks or a console line; nothing here knows about Slack.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Mapping

EVENTS = ("firing", "resolved")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint(rule: str, subject: str) -> str:
    """Identity of an alert: the rule and its subject, never the values that made it fire."""
    return _digest(json.dumps([rule, subject]))


def labels_hash(labels: Mapping[str, Any]) -> str:
    """Hash of the state-defining values (e.g. ``{"status": "red"}``): a change re-notifies."""
    return _digest(json.dumps(labels, sort_keys=True, default=str))


@dataclass(frozen=True)
class Alert:
    rule: str
    kind: str
    severity: str  # info | warning | critical
    subject: str  # kpi_id, milestone_id or source_id
    title: str
    text: str
    channel: str  # Slack channel or user id (or "#name") the alert goes to
    route: str = "fallback"  # how `channel` was chosen: owner | department | fallback
    department_id: str | None = None
    kpi_id: str | None = None
    fields: Mapping[str, str] = field(default_factory=dict)  # label -> formatted value, in order
    labels: Mapping[str, Any] = field(default_factory=dict)
    as_of: date | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.rule, self.subject)

    @property
    def labels_hash(self) -> str:
        return labels_hash(self.labels)

    @property
    def recipient(self) -> str:
        return self.channel

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
            "channel": self.channel,
            "route": self.route,
            "labels": dict(self.labels),
            "labels_hash": self.labels_hash,
            "as_of": self.as_of.isoformat() if self.as_of else None,
        }


@dataclass(frozen=True)
class Notification:
    """One message about an alert. For ``resolved`` the alert is rebuilt from stored state."""

    event: str  # firing | resolved
    alert: Alert
    run_id: str
    at: datetime

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown event {self.event!r}; expected one of {EVENTS}")

    @property
    def channel(self) -> str:
        return self.alert.channel

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.event, "run_id": self.run_id, "at": self.at.isoformat(), **self.alert.to_dict()}
