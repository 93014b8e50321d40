"""Rules as data: the packaged rules file, and one clear error line per problem."""

from __future__ import annotations

import textwrap

import pytest

from datetime import timedelta

from alerts.model import Alert
from alerts.routing import Escalation
from alerts.rules import DEFAULT_RULES_PATH, Matchers, RulesError, load_rules, parse_rules


def write(tmp_path, body: str):
    path = tmp_path / "rules.yml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def problems_of(tmp_path, body: str) -> list[str]:
    path = write(tmp_path, body)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    lines = str(caught.value).splitlines()
    assert lines == caught.value.problems
    assert all(line.startswith(f"{path}: ") for line in lines), lines
    return [line[len(f"{path}: ") :] for line in lines]


def test_default_rules_cover_the_required_conditions():
    rules = load_rules()
    assert rules.path == str(DEFAULT_RULES_PATH)
    assert rules.fallback_channel
    by_kind = {}
    for rule in rules:
        by_kind.setdefault(rule.kind, []).append(rule)
    kpi = by_kind["kpi_status"][0]
    assert {"amber", "red"} <= set(kpi.condition["status_in"])  # KPI turned amber / red
    assert kpi.severity_for("red") == "critical" and kpi.severity_for("amber") == "warning"
    milestone = by_kind["milestone"][0]
    assert {"missed", "at_risk"} <= set(milestone.condition["state_in"])  # missed / forecast to miss
    assert milestone.severity_for("missed") == "critical"
    assert by_kind["source_overdue"]
    assert by_kind["check_failed"][0].condition["severities"] == ["critical"]
    assert by_kind["anomaly"]  # sudden jump
    assert milestone.condition["within_days"] == 180  # forecast to miss within N days
    assert milestone.escalation == Escalation(after=timedelta(days=3), receiver="department_head", states=("missed",))
    assert by_kind["pipeline_failure"][0].is_event
    # The data engineers' channel is configured in the rules file, reached by the failure route.
    assert rules.router.receivers["data_engineers"].channel == "#data-engineering"
    assert [r.receiver for r in rules.router.root.routes] == ["data_engineers", "department"]
    assert rules.router.root.repeat_interval == timedelta(days=7)


def test_defaults_and_matchers_are_filled_in(tmp_path):
    rules = load_rules(
        write(
            tmp_path,
            """
            fallback_channel: "#ops"
            rules:
              - {name: r1, kind: kpi_status, severity: info, matchers: {department: health, tags: [a, b]}}
              - {name: r2, kind: check_failed, severity: critical, enabled: false}
            """,
        )
    )
    r1, r2 = rules.rules
    assert r1.condition == {"status_in": ["amber", "red"]}
    assert r1.enabled and r1.escalation is None
    assert r1.matchers == Matchers(department=("health",), tags=("a", "b"))
    assert r2.condition == {"severities": ["critical"]} and not r2.enabled
    assert rules.get("r2") is r2
    # No route: the whole file routes to owners, weekly reminders.
    assert rules.router.root.receiver == "owner" and rules.router.root.routes == ()
    assert rules.router.root.repeat_interval == timedelta(days=7)


def test_unknown_kind(tmp_path):
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - {name: r1, kind: kpi_colour, severity: info}
        """,
    ) == [
        "rules[0].kind: 'kpi_colour' is not one of "
        "['kpi_status', 'milestone', 'source_overdue', 'check_failed', 'anomaly', 'drift', 'pipeline_failure']"
    ]


def test_missing_name(tmp_path):
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - {kind: anomaly, severity: info}
        """,
    ) == ["rules[0]: 'name' is a required property"]


def test_bad_severity(tmp_path):
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - {name: r1, kind: anomaly, severity: urgent}
        """,
    ) == ["rules[0].severity: 'urgent' is not one of ['info', 'warning', 'critical']"]


def test_duplicate_rule_name(tmp_path):
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - {name: same, kind: anomaly, severity: info}
          - {name: other, kind: anomaly, severity: info}
          - {name: same, kind: source_overdue, severity: info}
        """,
    ) == ["rules[2].name: duplicate rule name 'same' (first defined at rules[0])"]


def test_wrong_types(tmp_path):
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - name: r1
            kind: kpi_status
            severity: info
            condition: {status_in: red}
            matchers: {department: 5}
            enabled: "yes"
        """,
    ) == [
        "rules[0].condition.status_in: 'red' is not of type 'array'",
        "rules[0].enabled: 'yes' is not of type 'boolean'",
        "rules[0].matchers.department: 5 is not of type 'string', 'array'",
    ]


def test_condition_keys_and_states_depend_on_the_kind(tmp_path):
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - {name: r1, kind: milestone, severity: info, condition: {status_in: [red]}}
          - {name: r2, kind: kpi_status, severity: info, condition: {status_in: [purple]}}
          - {name: r3, kind: kpi_status, severity: info, severity_when: {missed: critical}}
          - {name: r4, kind: anomaly, severity: info, matchers: {kind: anomaly}}
          - {name: r5, kind: milestone, severity: info, condition: {within_days: -1}}
        """,
    ) == [
        "rules[0].condition: Additional properties are not allowed ('status_in' was unexpected)",
        "rules[1].condition.status_in[0]: 'purple' is not one of ['green', 'amber', 'red', 'grey']",
        "rules[2].severity_when: 'missed' is not one of ['green', 'amber', 'red', 'grey']",
        "rules[3].matchers: Additional properties are not allowed ('kind' was unexpected)",
        "rules[4].condition.within_days: -1 is less than the minimum of 0",
    ]


def test_a_rule_level_route_points_to_the_routing_tree(tmp_path):
    # Files written for the first release had `route: owner|department` on each rule.
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        rules:
          - {name: r1, kind: anomaly, severity: info, route: department}
        """,
    ) == [
        "rules[0].route: a rule no longer picks its route: use the routing tree (top-level 'route:' with "
        "matchers, e.g. {matchers: {rule: NAME}, receiver: department}); see docs/alerts.md"
    ]


def test_routing_tree_receivers_and_escalation_are_validated(tmp_path):
    assert problems_of(
        tmp_path,
        """
        fallback_channel: "#ops"
        receivers:
          owner: {channel: "#x"}
          both: {to: owner, channel: "#y"}
          odd: {to: everyone}
        route:
          receiver: nobody
          matchers: {kind: anomaly}
          repeat_interval: soon
          routes:
            - {matchers: {severity: urgent}, receiver: department}
            - {matchers: {kind: [kpi_status, colour]}, receiver: ghosts, continue: "yes"}
        rules:
          - name: r1
            kind: milestone
            severity: info
            escalate: {after: 0d, receiver: boss, states: [late]}
          - {name: r2, kind: anomaly, severity: info, escalate: {after: 3d, receiver: owner, states: [x]}}
          - {name: r3, kind: anomaly, severity: info, escalate: {receiver: owner}}
        """,
    ) == [
        "receivers.both: a receiver needs exactly one of 'to' (owner, department, department_head) or 'channel'",
        "receivers.odd.to: 'everyone' is not one of ['owner', 'department', 'department_head']",
        "receivers.owner: 'owner' is a built-in receiver and cannot be redefined",
        "route.matchers: the root route matches every alert; put matchers on its child routes",
        "route.receiver: unknown receiver 'nobody' (known: both, department, department_head, fallback, odd, owner)",
        "route.repeat_interval: 'soon' is not a duration like 30m, 4h, 7d, 2w or 'never'",
        "route.routes[0].matchers.severity: 'urgent' is not one of ['info', 'warning', 'critical']",
        "route.routes[1].continue: 'yes' is not of type 'boolean'",
        "route.routes[1].matchers.kind[1]: 'colour' is not one of "
        "['kpi_status', 'milestone', 'source_overdue', 'check_failed', 'anomaly', 'drift', 'pipeline_failure']",
        "route.routes[1].receiver: unknown receiver 'ghosts' (known: both, department, department_head, fallback, odd, owner)",
        "rules[0].escalate.after: must be a positive duration (e.g. 3d)",
        "rules[0].escalate.receiver: unknown receiver 'boss' (known: both, department, department_head, fallback, odd, owner)",
        "rules[0].escalate.states[0]: 'late' is not one of ['met', 'missed', 'no_data', 'at_risk', 'upcoming']",
        "rules[1].escalate.states: this kind has no states to escalate on; remove 'states'",
        "rules[2].escalate: 'after' is a required property",
    ]


def alert(**overrides) -> Alert:
    values = dict(rule="kpi_off_trajectory", kind="kpi_status", severity="warning", subject="k1", title="t",
                  text="x", department_id="health", kpi_id="k1", tags=("nhs",),
                  contacts={"owner": "U0OWN", "department": "#health", "department_head": "U0HEAD"})
    values.update(overrides)
    return Alert(**values)


def test_routing_tree_first_match_continue_and_fallback_chains(tmp_path):
    rules = load_rules(
        write(
            tmp_path,
            """
            fallback_channel: "#ops"
            receivers:
              oncall: {channel: "#oncall"}
            route:
              receiver: owner
              repeat_interval: 1d
              routes:
                - matchers: {severity: critical}
                  receiver: department
                  continue: true          # a copy for the department, then keep matching
                - matchers: {kind: source_overdue}
                  receiver: department
                  repeat_interval: never
                - matchers: {tags: nhs, severity: critical}
                  receiver: oncall
                  group: false
                - matchers: {department: health}
                  receiver: owner
                  repeat_interval: 4h
            rules:
              - {name: r, kind: kpi_status, severity: info}
            """,
        )
    )
    router = rules.router

    def where(a):
        return [(r.channel, r.receiver, r.how, r.repeat_interval, r.group) for r in router.recipients(a)]

    # Critical: the department copy (continue), then the first later match wins (oncall).
    assert where(alert(severity="critical")) == [
        ("#health", "department", "department", timedelta(days=1), True),
        ("#oncall", "oncall", "channel", timedelta(days=1), False),
    ]
    # Not critical: the health route (its own repeat interval).
    assert where(alert()) == [("U0OWN", "owner", "owner", timedelta(hours=4), True)]
    # Nothing matches: the root's receiver; an owner without a Slack id -> department -> fallback.
    assert where(alert(department_id="finance", contacts={"department": "#fin"})) == [
        ("#fin", "owner", "department", timedelta(days=1), True)]
    assert where(alert(department_id="finance", contacts={})) == [
        ("#ops", "owner", "fallback", timedelta(days=1), True)]
    assert where(alert(kind="source_overdue", kpi_id=None, tags=())) == [
        ("#health", "department", "department", None, True)]
    # Two routes resolving to the same channel give one recipient.
    same = alert(severity="critical", tags=(), contacts={"owner": "#health", "department": "#health"})
    assert [r.channel for r in router.recipients(same)] == ["#health"]
    # Escalation receivers: the head, else the department channel.
    assert router.receiver_recipient("department_head", alert()).channel == "U0HEAD"
    assert router.receiver_recipient("department_head", alert(contacts={"department": "#health"})).channel == "#health"


def test_all_problems_are_reported_together_in_order(tmp_path):
    rules = "\n".join(f"  - {{name: r{i}, kind: anomaly, severity: info}}" for i in range(11))
    lines = problems_of(tmp_path, "rules:\n" + rules.replace("r10, kind: anomaly", "r10, kind: nope") + "\n")
    assert lines[0] == "(top level): 'fallback_channel' is a required property"
    assert lines[1].startswith("rules[10].kind: 'nope'")


def test_invalid_yaml_names_the_line(tmp_path):
    path = write(tmp_path, "fallback_channel: '#ops'\nrules: [\n  {name: r1\n")
    with pytest.raises(RulesError, match=rf"^{path}: invalid YAML \(line \d+, column \d+\): "):
        load_rules(path)


def test_missing_file(tmp_path):
    with pytest.raises(RulesError, match="nope.yml: cannot read rules file"):
        load_rules(tmp_path / "nope.yml")


def test_parse_rules_names_its_source():
    with pytest.raises(RulesError, match=r"^inline: \(top level\): \[\] is not of type 'object'$"):
        parse_rules([], source="inline")


def test_yaml_1_1_booleans_are_plain_strings(tmp_path):
    # `name: off` would otherwise load as False ("False is not of type 'string'").
    rules = load_rules(
        write(
            tmp_path,
            """
            fallback_channel: "#ops"
            rules:
              - {name: off, kind: anomaly, severity: info, enabled: false}
              - {name: no, kind: source_overdue, severity: info, enabled: true}
            """,
        )
    )
    assert [(rule.name, rule.enabled) for rule in rules] == [("off", False), ("no", True)]
