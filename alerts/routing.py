"""The routing tree, in the spirit of Prometheus Alertmanager (pure: no I/O).

A route has optional `matchers`, a `receiver`, child `routes`, `continue`, a
`repeat_interval` and `group`. An alert enters at the root (which matches everything) and
walks down: children are tried in order; the first child that matches takes the alert —
unless it says ``continue: true``, in which case the following siblings are tried as well.
When no child matches, the node itself delivers. Children inherit `receiver`,
`repeat_interval` and `group` from their parent.

Receivers say who the alert goes to. Dynamic receivers use the contacts in the catalog, each
with its fallback chain, so an alert is never routed nowhere:

- ``owner``            -> the KPI's / milestone's owner -> the department channel -> fallback
- ``department``       -> the department channel -> fallback
- ``department_head``  -> the department head -> the department channel -> fallback
- a receiver with ``channel: "#x"`` -> that channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Iterable, Mapping, Sequence

from alerts.model import Alert, Recipient

DYNAMIC_TARGETS = ("owner", "department", "department_head")
FALLBACK_CHAIN: dict[str, tuple[str, ...]] = {
    "owner": ("owner", "department"),
    "department": ("department",),
    "department_head": ("department_head", "department"),
}
BUILTIN_RECEIVERS = ("owner", "department", "department_head", "fallback")


@dataclass(frozen=True)
class Receiver:
    name: str
    to: str | None = None  # owner | department | department_head (dynamic) ...
    channel: str | None = None  # ... or a fixed channel

    def resolve(self, contacts: Mapping[str, str], fallback_channel: str) -> tuple[str, str]:
        """(channel, how) for an alert with these `contacts`."""
        if self.channel:
            return self.channel, "channel"
        for contact in FALLBACK_CHAIN.get(self.to or "", ()):
            value = contacts.get(contact)
            if value:
                return value, contact
        return fallback_channel, "fallback"


def builtin_receivers(fallback_channel: str) -> dict[str, Receiver]:
    return {
        "owner": Receiver("owner", to="owner"),
        "department": Receiver("department", to="department"),
        "department_head": Receiver("department_head", to="department_head"),
        "fallback": Receiver("fallback", channel=fallback_channel),
    }


@dataclass(frozen=True)
class Matchers:
    """Empty tuple = no constraint; a constraint matches when the alert's value is listed.

    ``tags`` matches when the subject has any of the tags; ``kpi`` when any of the subject's
    KPIs is listed (a source's alerts concern every KPI fed by the source)."""

    department: tuple[str, ...] = ()
    kpi: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    severity: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    rule: tuple[str, ...] = ()

    def matches(
        self,
        department_id: str | None,
        kpi_ids: Iterable[str],
        tags: Iterable[str],
        severity: str | None = None,
        kind: str | None = None,
        rule: str | None = None,
    ) -> bool:
        if self.department and department_id not in self.department:
            return False
        if self.kpi and not set(kpi_ids).intersection(self.kpi):
            return False
        if self.tags and not set(tags).intersection(self.tags):
            return False
        if self.severity and severity not in self.severity:
            return False
        if self.kind and kind not in self.kind:
            return False
        if self.rule and rule not in self.rule:
            return False
        return True

    def matches_alert(self, alert: Alert) -> bool:
        ids = set(alert.kpis) | ({alert.kpi_id} if alert.kpi_id else set())
        return self.matches(alert.department_id, ids, alert.tags, alert.severity, alert.kind, alert.rule)


@dataclass(frozen=True)
class Route:
    receiver: str
    matchers: Matchers = Matchers()
    continue_: bool = False
    repeat_interval: timedelta | None = None
    group: bool = True
    routes: tuple["Route", ...] = ()
    path: str = "route"  # key path in the rules file, for error messages and debugging

    def match(self, alert: Alert, is_root: bool = True) -> list["Route"]:
        """The routes that deliver `alert` (Alertmanager semantics), in tree order."""
        if not is_root and not self.matchers.matches_alert(alert):
            return []
        found: list[Route] = []
        for child in self.routes:
            matched = child.match(alert, is_root=False)
            if matched:
                found.extend(matched)
                if not child.continue_:
                    break
        return found or [self]


@dataclass(frozen=True)
class Router:
    root: Route
    receivers: Mapping[str, Receiver]
    fallback_channel: str
    escalation: Mapping[str, "Escalation"] = field(default_factory=dict)  # rule name -> escalation

    def recipients(self, alert: Alert) -> tuple[Recipient, ...]:
        """Where `alert` goes: one recipient per distinct channel, in tree order."""
        out: list[Recipient] = []
        seen: set[str] = set()
        for route in self.root.match(alert):
            receiver = self.receivers[route.receiver]
            channel, how = receiver.resolve(alert.contacts, self.fallback_channel)
            if channel in seen:
                continue
            seen.add(channel)
            out.append(Recipient(channel, receiver.name, how, route.repeat_interval, route.group))
        return tuple(out)

    def receiver_recipient(self, name: str, alert: Alert) -> Recipient:
        """The recipient of a named receiver for `alert` (escalations)."""
        receiver = self.receivers[name]
        channel, how = receiver.resolve(alert.contacts, self.fallback_channel)
        return Recipient(channel, receiver.name, how, None, True)

    def fallback(self) -> Recipient:
        return Recipient(self.fallback_channel, "fallback", "fallback", None, True)


@dataclass(frozen=True)
class Escalation:
    """A firing alert of the rule, in one of `states`, not acknowledged `after` its state began,
    is sent once to `receiver` (e.g. the department head)."""

    after: timedelta
    receiver: str
    states: tuple[str, ...] = ()  # empty: any state

    def applies_to(self, labels: Mapping[str, object]) -> bool:
        if not self.states:
            return True
        state = labels.get("state", labels.get("status"))
        return state in self.states


def walk(route: Route) -> Sequence[Route]:
    out = [route]
    for child in route.routes:
        out.extend(walk(child))
    return out
