"""Alert rules as data: load a YAML rules file, validate it, return typed rules and a router.

Validation errors are collected (not raised one by one) and reported together as a
`RulesError` whose message has one line per problem: ``<file>: <key path>: <problem>``.
The file has four parts (docs/alerts.md is the reference):

- ``fallback_channel``: where anything goes that has nowhere better to go;
- ``receivers``: named places to send to (built in: owner, department, department_head,
  fallback), each either a dynamic contact (``to:``) or a fixed ``channel:``;
- ``route``: the routing tree (alerts.routing), with repeat intervals and grouping;
- ``rules``: what fires — kind, condition, matchers, severity, optional escalation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
import yaml

from alerts.model import parse_duration
from alerts.routing import (
    BUILTIN_RECEIVERS,
    DYNAMIC_TARGETS,
    Escalation,
    Matchers,
    Receiver,
    Route,
    Router,
    builtin_receivers,
)

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yml")

# Condition kinds are evaluated against the warehouse; event kinds are raised by the pipeline
# (a failed run) and never "resolve".
CONDITION_KINDS = ("kpi_status", "milestone", "source_overdue", "check_failed", "anomaly", "drift")
EVENT_KINDS = ("pipeline_failure",)
KINDS = CONDITION_KINDS + EVENT_KINDS
SEVERITIES = ("info", "warning", "critical")
KPI_STATUSES = ("green", "amber", "red", "grey")
MILESTONE_STATES = ("met", "missed", "no_data", "at_risk", "upcoming")
CHECK_SEVERITIES = ("critical", "warn")
DRIFT_KINDS = ("kpi_outlier", "level_shift", "volume", "missing_submission")
DRIFT_SEVERITIES = ("info", "warning", "critical")
DEFAULT_REPEAT_INTERVAL = "7d"
DURATION_PATTERN = r"^(never|[0-9]+[mhdw])$"

# Condition defaults per kind; also the keys each kind accepts.
CONDITION_DEFAULTS: dict[str, dict[str, Any]] = {
    "kpi_status": {"status_in": ["amber", "red"]},
    "milestone": {"state_in": ["missed", "at_risk"], "within_days": None},
    "source_overdue": {},
    "check_failed": {"severities": ["critical"]},
    "anomaly": {},
    "drift": {"finding_kinds": ["kpi_outlier", "level_shift", "volume"], "severities": ["warning", "critical"]},
    "pipeline_failure": {},
}
# Which value `severity_when` and `escalate.states` refer to, per kind (None: no states).
STATE_VALUES: dict[str, tuple[str, ...] | None] = {
    "kpi_status": KPI_STATUSES,
    "milestone": MILESTONE_STATES,
    "source_overdue": None,
    "check_failed": None,
    "anomaly": None,
    "drift": DRIFT_SEVERITIES,  # the finding's own severity
    "pipeline_failure": None,
}


def _string_or_list(values: tuple[str, ...] | None = None) -> dict[str, Any]:
    """A string or a non-empty list of strings; with `values`, each must be one of them."""
    if not values:
        return {"type": ["string", "array"], "items": {"type": "string", "minLength": 1}, "minItems": 1}
    return {
        "type": ["string", "array"],
        "items": {"enum": list(values)},
        "minItems": 1,
        "if": {"type": "string"},
        "then": {"enum": list(values)},
    }


def _enum_list(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "array", "items": {"enum": list(values)}, "minItems": 1, "uniqueItems": True}


DURATION = {"type": "string", "pattern": DURATION_PATTERN}


def _matchers_schema(keys: tuple[str, ...]) -> dict[str, Any]:
    props = {
        "department": _string_or_list(),
        "kpi": _string_or_list(),
        "tags": _string_or_list(),
        "severity": _string_or_list(SEVERITIES),
        "kind": _string_or_list(KINDS),
        "rule": _string_or_list(),
    }
    return {"type": "object", "additionalProperties": False, "properties": {k: props[k] for k in keys}}


RULE_MATCHERS = ("department", "kpi", "tags", "severity")
ROUTE_MATCHERS = ("department", "kpi", "tags", "severity", "kind", "rule")


def _kind_clause(kind: str) -> dict[str, Any]:
    condition_props = {
        "kpi_status": {"status_in": _enum_list(KPI_STATUSES)},
        "milestone": {"state_in": _enum_list(MILESTONE_STATES), "within_days": {"type": "integer", "minimum": 0}},
        "check_failed": {"severities": _enum_list(CHECK_SEVERITIES)},
        "drift": {"finding_kinds": _enum_list(DRIFT_KINDS), "severities": _enum_list(DRIFT_SEVERITIES)},
    }.get(kind, {})
    states = STATE_VALUES[kind]
    then: dict[str, Any] = {
        "properties": {
            "condition": {"type": "object", "properties": condition_props, "additionalProperties": False},
        }
    }
    if states is None:
        then["properties"]["severity_when"] = {"type": "object", "maxProperties": 0}
        then["properties"]["escalate"] = {"properties": {"states": {"maxItems": 0}}}
    else:
        then["properties"]["severity_when"] = {
            "type": "object",
            "propertyNames": {"enum": list(states)},
            "additionalProperties": {"enum": list(SEVERITIES)},
        }
        then["properties"]["escalate"] = {"properties": {"states": {"items": {"enum": list(states)}}}}
    return {"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]}, "then": then}


RULES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["fallback_channel", "rules"],
    "additionalProperties": False,
    "$defs": {
        "route": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "receiver": {"type": "string", "minLength": 1},
                "matchers": _matchers_schema(ROUTE_MATCHERS),
                "continue": {"type": "boolean"},
                "repeat_interval": DURATION,
                "group": {"type": "boolean"},
                "routes": {"type": "array", "items": {"$ref": "#/$defs/route"}},
            },
        },
    },
    "properties": {
        "version": {"const": 1},
        "fallback_channel": {"type": "string", "minLength": 1},
        "receivers": {
            "type": "object",
            "propertyNames": {"pattern": "^[A-Za-z0-9_.-]+$"},
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "to": {"enum": list(DYNAMIC_TARGETS)},
                    "channel": {"type": "string", "minLength": 1},
                },
                "oneOf": [{"required": ["to"]}, {"required": ["channel"]}],
            },
        },
        "route": {"$ref": "#/$defs/route"},
        "rules": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "kind", "severity"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
                    "description": {"type": "string"},
                    "kind": {"enum": list(KINDS)},
                    "enabled": {"type": "boolean"},
                    "severity": {"enum": list(SEVERITIES)},
                    "severity_when": {"type": "object"},
                    "condition": {"type": "object"},
                    "matchers": _matchers_schema(RULE_MATCHERS),
                    "escalate": {
                        "type": "object",
                        "required": ["after", "receiver"],
                        "additionalProperties": False,
                        "properties": {
                            "after": DURATION,
                            "receiver": {"type": "string", "minLength": 1},
                            "states": {"type": "array", "uniqueItems": True},
                        },
                    },
                    # Not allowed any more; kept in the schema so the error can say why.
                    "route": {},
                },
                "allOf": [_kind_clause(kind) for kind in KINDS],
            },
        },
    },
}


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false. YAML 1.1 would read a rule named `off` or `no`
    as False and report a baffling type error."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


class RulesError(ValueError):
    """An invalid rules file. ``str(err)`` is one line per problem; ``err.problems`` the list."""

    def __init__(self, message: str, problems: list[str] | None = None):
        super().__init__(message)
        self.problems = problems if problems is not None else message.splitlines()


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    severity: str
    condition: Mapping[str, Any] = field(default_factory=dict)
    severity_when: Mapping[str, str] = field(default_factory=dict)
    matchers: Matchers = Matchers()
    description: str = ""
    enabled: bool = True
    escalation: Escalation | None = None

    def severity_for(self, state: str | None) -> str:
        """The rule's severity, raised/lowered by `severity_when` for the subject's state."""
        return self.severity_when.get(state, self.severity) if state else self.severity

    @property
    def is_event(self) -> bool:
        return self.kind in EVENT_KINDS


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    fallback_channel: str
    path: str = "<memory>"
    router: Router | None = None

    def __post_init__(self) -> None:
        if self.router is None:  # a RuleSet built in code: the default tree
            object.__setattr__(self, "router", default_router(self.fallback_channel, self.rules))

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)

    def first_of_kind(self, kind: str) -> Rule | None:
        return next((rule for rule in self.rules if rule.kind == kind and rule.enabled), None)


def default_router(fallback_channel: str, rules: tuple[Rule, ...] = ()) -> Router:
    return Router(
        root=Route(receiver="owner", repeat_interval=parse_duration(DEFAULT_REPEAT_INTERVAL)),
        receivers=builtin_receivers(fallback_channel),
        fallback_channel=fallback_channel,
        escalation={rule.name: rule.escalation for rule in rules if rule.escalation},
    )


def _key_path(parts) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _sort_key(parts) -> tuple:
    # rules[2] before rules[10]: compare indexes as numbers, keys as text.
    return tuple((0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in parts)


def _schema_problems(data: Any) -> list[tuple[tuple, str, str]]:
    validator = jsonschema.Draft202012Validator(RULES_SCHEMA)
    out = []
    for error in validator.iter_errors(data):
        path = list(error.absolute_path)
        message = error.message
        if error.validator == "pattern" and error.schema.get("pattern") == DURATION_PATTERN:
            message = f"{error.instance!r} is not a duration like 30m, 4h, 7d, 2w or 'never'"
        elif error.validator == "oneOf" and len(path) == 2 and path[0] == "receivers":
            message = "a receiver needs exactly one of 'to' (owner, department, department_head) or 'channel'"
        elif error.validator == "maxItems" and path[-1:] == ["states"]:
            message = "this kind has no states to escalate on; remove 'states'"
        out.append((_sort_key(path), _key_path(path), message))
    return out


def _as_tuple(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def _matchers(raw: Mapping[str, Any] | None) -> Matchers:
    raw = raw or {}
    return Matchers(**{key: _as_tuple(raw.get(key)) for key in ROUTE_MATCHERS if key in raw})


def _semantic_problems(data: dict) -> list[tuple[tuple, str, str]]:
    """Cross-references the schema cannot check: names, receivers, durations."""
    problems: list[tuple[tuple, str, str]] = []

    def add(path: list, message: str) -> None:
        problems.append((_sort_key(path), _key_path(path), message))

    receivers = data.get("receivers") if isinstance(data.get("receivers"), dict) else {}
    for name in receivers:
        if name in BUILTIN_RECEIVERS:
            add(["receivers", name], f"'{name}' is a built-in receiver and cannot be redefined")
    known = sorted(set(BUILTIN_RECEIVERS) | set(receivers))

    def check_receiver(path: list, name: Any) -> None:
        if isinstance(name, str) and name not in known:
            add(path, f"unknown receiver {name!r} (known: {', '.join(known)})")

    def check_route(node: Any, path: list, is_root: bool) -> None:
        if not isinstance(node, dict):
            return
        if is_root and node.get("matchers"):
            add(path + ["matchers"], "the root route matches every alert; put matchers on its child routes")
        if is_root and node.get("continue"):
            add(path + ["continue"], "the root route has no siblings; 'continue' only applies to child routes")
        check_receiver(path + ["receiver"], node.get("receiver"))
        for index, child in enumerate(node.get("routes") or []):
            check_route(child, path + ["routes", index], False)

    check_route(data.get("route"), ["route"], True)

    rules = data.get("rules")
    if isinstance(rules, list):
        first_seen: dict[str, int] = {}
        for index, raw in enumerate(rules):
            if not isinstance(raw, dict):
                continue
            name = raw.get("name")
            if isinstance(name, str):
                if name in first_seen:
                    add(["rules", index, "name"],
                        f"duplicate rule name {name!r} (first defined at rules[{first_seen[name]}])")
                else:
                    first_seen[name] = index
            if "route" in raw:
                add(["rules", index, "route"],
                    "a rule no longer picks its route: use the routing tree (top-level 'route:' with "
                    "matchers, e.g. {matchers: {rule: NAME}, receiver: department}); see docs/alerts.md")
            escalate = raw.get("escalate")
            if isinstance(escalate, dict):
                check_receiver(["rules", index, "escalate", "receiver"], escalate.get("receiver"))
                after = escalate.get("after")
                if after == "never" or (isinstance(after, str) and re.fullmatch(r"0+[mhdw]", after)):
                    add(["rules", index, "escalate", "after"], "must be a positive duration (e.g. 3d)")
    return problems


def _build_route(raw: Mapping[str, Any], parent: Route | None, path: str) -> Route:
    receiver = raw.get("receiver") or (parent.receiver if parent else "owner")
    if "repeat_interval" in raw:
        repeat = parse_duration(raw["repeat_interval"])
    elif parent is not None:
        repeat = parent.repeat_interval
    else:
        repeat = parse_duration(DEFAULT_REPEAT_INTERVAL)
    group = raw.get("group", parent.group if parent else True)
    node = Route(
        receiver=receiver,
        matchers=_matchers(raw.get("matchers")),
        continue_=bool(raw.get("continue", False)),
        repeat_interval=repeat,
        group=group,
        path=path,
    )
    children = tuple(
        _build_route(child, node, f"{path}.routes[{index}]") for index, child in enumerate(raw.get("routes") or [])
    )
    return Route(**{**node.__dict__, "routes": children})


def parse_rules(data: Any, source: str = "<memory>") -> RuleSet:
    """Validate an already-parsed rules document and build a `RuleSet` (with its router)."""
    problems = _schema_problems(data)
    if isinstance(data, dict):
        problems += _semantic_problems(data)
    if problems:
        lines = []
        for _, path, message in sorted(problems, key=lambda problem: (problem[0], problem[2])):
            line = f"{source}: {path}: {message}"
            if line not in lines:
                lines.append(line)
        raise RulesError("\n".join(lines), lines)

    rules = []
    for raw in data["rules"]:
        kind = raw["kind"]
        condition = {**CONDITION_DEFAULTS[kind], **(raw.get("condition") or {})}
        escalation = None
        if raw.get("escalate"):
            esc = raw["escalate"]
            escalation = Escalation(
                after=parse_duration(esc["after"]) or timedelta(0),
                receiver=esc["receiver"],
                states=tuple(esc.get("states") or ()),
            )
        rules.append(
            Rule(
                name=raw["name"],
                kind=kind,
                severity=raw["severity"],
                condition=condition,
                severity_when=dict(raw.get("severity_when") or {}),
                matchers=_matchers(raw.get("matchers")),
                description=raw.get("description", ""),
                enabled=raw.get("enabled", True),
                escalation=escalation,
            )
        )
    fallback = data["fallback_channel"]
    receivers: dict[str, Receiver] = builtin_receivers(fallback)
    for name, spec in (data.get("receivers") or {}).items():
        receivers[name] = Receiver(name, to=spec.get("to"), channel=spec.get("channel"))
    root = _build_route(data.get("route") or {}, None, "route")
    router = Router(
        root=root,
        receivers=receivers,
        fallback_channel=fallback,
        escalation={rule.name: rule.escalation for rule in rules if rule.escalation},
    )
    return RuleSet(rules=tuple(rules), fallback_channel=fallback, path=source, router=router)


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load and validate a rules file (default: the packaged ``alerts/rules.yml``)."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read rules file: {exc.strerror or exc}") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulesError(f"{path}: invalid YAML{where}: {problem}") from None
    return parse_rules(data, source=str(path))
