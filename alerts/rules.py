"""Alert rules as data: load a YAML rules file, validate it, return typed rules.

Validation errors are collected (not raised one by one) and reported together as a
`RulesError` whose message has one line per problem: ``<file>: <key path>: <problem>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import jsonschema
import yaml

DEFAULT_RULES_PATH = Path(__file__).with_name("rules.yml")

KINDS = ("kpi_status", "milestone", "source_overdue", "check_failed", "anomaly")
SEVERITIES = ("info", "warning", "critical")
ROUTES = ("owner", "department")
KPI_STATUSES = ("green", "amber", "red", "grey")
MILESTONE_STATES = ("met", "missed", "at_risk", "upcoming")
CHECK_SEVERITIES = ("critical", "warn")

# Condition defaults per kind; also the keys each kind accepts.
CONDITION_DEFAULTS: dict[str, dict[str, list[str]]] = {
    "kpi_status": {"status_in": ["amber", "red"]},
    "milestone": {"state_in": ["missed", "at_risk"]},
    "source_overdue": {},
    "check_failed": {"severities": ["critical"]},
    "anomaly": {},
}
# Which value `severity_when` keys refer to, per kind (None: the kind has no states).
STATE_VALUES: dict[str, tuple[str, ...] | None] = {
    "kpi_status": KPI_STATUSES,
    "milestone": MILESTONE_STATES,
    "source_overdue": None,
    "check_failed": None,
    "anomaly": None,
}


def _string_or_list() -> dict[str, Any]:
    return {"type": ["string", "array"], "items": {"type": "string", "minLength": 1}, "minItems": 1}


def _enum_list(values: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "array", "items": {"enum": list(values)}, "minItems": 1, "uniqueItems": True}


def _kind_clause(kind: str) -> dict[str, Any]:
    condition_props = {
        "kpi_status": {"status_in": _enum_list(KPI_STATUSES)},
        "milestone": {"state_in": _enum_list(MILESTONE_STATES)},
        "check_failed": {"severities": _enum_list(CHECK_SEVERITIES)},
    }.get(kind, {})
    states = STATE_VALUES[kind]
    then: dict[str, Any] = {
        "properties": {
            "condition": {
                "type": "object",
                "properties": condition_props,
                "additionalProperties": False,
            },
        }
    }
    if states is None:
        then["properties"]["severity_when"] = {"type": "object", "maxProperties": 0}
    else:
        then["properties"]["severity_when"] = {
            "type": "object",
            "propertyNames": {"enum": list(states)},
            "additionalProperties": {"enum": list(SEVERITIES)},
        }
    return {"if": {"properties": {"kind": {"const": kind}}, "required": ["kind"]}, "then": then}


RULES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["fallback_channel", "rules"],
    "additionalProperties": False,
    "properties": {
        "version": {"const": 1},
        "fallback_channel": {"type": "string", "minLength": 1},
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
                    "matchers": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "department": _string_or_list(),
                            "kpi": _string_or_list(),
                            "tags": _string_or_list(),
                        },
                    },
                    "route": {"enum": list(ROUTES)},
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
class Matchers:
    """Empty tuple = no constraint. ``tags`` matches when the KPI has any of the tags."""

    department: tuple[str, ...] = ()
    kpi: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def matches(self, department_id: str | None, kpi_ids: set[str], tags: set[str]) -> bool:
        """`kpi_ids`/`tags` are those of the subject (a source's KPIs for source-level kinds)."""
        if self.department and department_id not in self.department:
            return False
        if self.kpi and not kpi_ids.intersection(self.kpi):
            return False
        if self.tags and not tags.intersection(self.tags):
            return False
        return True


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    severity: str
    condition: Mapping[str, list[str]] = field(default_factory=dict)
    severity_when: Mapping[str, str] = field(default_factory=dict)
    matchers: Matchers = Matchers()
    route: str = "owner"
    description: str = ""
    enabled: bool = True

    def severity_for(self, state: str | None) -> str:
        """The rule's severity, raised/lowered by `severity_when` for the subject's state."""
        return self.severity_when.get(state, self.severity) if state else self.severity


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    fallback_channel: str
    path: str = "<memory>"

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def get(self, name: str) -> Rule:
        for rule in self.rules:
            if rule.name == name:
                return rule
        raise KeyError(name)


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
    return [
        (_sort_key(error.absolute_path), _key_path(error.absolute_path), error.message)
        for error in validator.iter_errors(data)
    ]


def _as_tuple(value: str | list[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


def parse_rules(data: Any, source: str = "<memory>") -> RuleSet:
    """Validate an already-parsed rules document and build a `RuleSet`."""
    problems = _schema_problems(data)
    if isinstance(data, dict) and isinstance(data.get("rules"), list):
        first_seen: dict[str, int] = {}
        for index, raw in enumerate(data["rules"]):
            name = raw.get("name") if isinstance(raw, dict) else None
            if not isinstance(name, str):
                continue
            if name in first_seen:
                problems.append(
                    (
                        _sort_key(["rules", index, "name"]),
                        f"rules[{index}].name",
                        f"duplicate rule name {name!r} (first defined at rules[{first_seen[name]}])",
                    )
                )
            else:
                first_seen[name] = index
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
        matchers = raw.get("matchers") or {}
        rules.append(
            Rule(
                name=raw["name"],
                kind=kind,
                severity=raw["severity"],
                condition=condition,
                severity_when=dict(raw.get("severity_when") or {}),
                matchers=Matchers(
                    department=_as_tuple(matchers.get("department")),
                    kpi=_as_tuple(matchers.get("kpi")),
                    tags=_as_tuple(matchers.get("tags")),
                ),
                route=raw.get("route", "owner"),
                description=raw.get("description", ""),
                enabled=raw.get("enabled", True),
            )
        )
    return RuleSet(rules=tuple(rules), fallback_channel=data["fallback_channel"], path=source)


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
