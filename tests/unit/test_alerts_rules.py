"""Rules as data: the packaged rules file, and one clear error line per problem."""

from __future__ import annotations

import textwrap

import pytest

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


def test_defaults_and_matchers_are_filled_in(tmp_path):
    rules = load_rules(
        write(
            tmp_path,
            """
            fallback_channel: "#ops"
            rules:
              - {name: r1, kind: kpi_status, severity: info, matchers: {department: health, tags: [a, b]}}
              - {name: r2, kind: check_failed, severity: critical, route: department, enabled: false}
            """,
        )
    )
    r1, r2 = rules.rules
    assert r1.condition == {"status_in": ["amber", "red"]}
    assert r1.route == "owner" and r1.enabled
    assert r1.matchers == Matchers(department=("health",), tags=("a", "b"))
    assert r2.condition == {"severities": ["critical"]} and not r2.enabled
    assert rules.get("r2") is r2


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
        "['kpi_status', 'milestone', 'source_overdue', 'check_failed', 'anomaly']"
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
          - {name: r4, kind: anomaly, severity: info, route: everyone}
        """,
    ) == [
        "rules[0].condition: Additional properties are not allowed ('status_in' was unexpected)",
        "rules[1].condition.status_in[0]: 'purple' is not one of ['green', 'amber', 'red', 'grey']",
        "rules[2].severity_when: 'missed' is not one of ['green', 'amber', 'red', 'grey']",
        "rules[3].route: 'everyone' is not one of ['owner', 'department']",
    ]


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
