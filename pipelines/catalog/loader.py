"""Load and validate a KPI catalog directory.

Every problem is collected (not just the first) and reported with file, line, key path and
reason, so a user fixes a broken catalog in one pass.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, FormatChecker

from pipelines.catalog.schema import DEFS, FILES, OPTIONAL_FILES


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    path: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top)'}: {self.reason}"


class CatalogError(Exception):
    """A catalog that cannot be used; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class Catalog:
    directory: Path
    name: str
    as_of: dt.date | None
    data_dir: Path | None
    warehouse: Path | None
    departments: dict[str, dict[str, Any]]
    sources: dict[str, dict[str, Any]]
    kpis: dict[str, dict[str, Any]]
    milestones: dict[str, dict[str, Any]] = field(default_factory=dict)
    # kpiwatch.yml `defaults` (tolerance, allow_negative) and `rejection` (max_share, min_rows)
    defaults: dict[str, Any] = field(default_factory=dict)
    rejection: dict[str, Any] = field(default_factory=dict)

    def kpis_of_source(self, source_id: str) -> list[str]:
        return sorted(k for k, v in self.kpis.items() if v["source"] == source_id)

    def source_departments(self, source_id: str) -> list[str]:
        """The departments a source feeds: its own `department`, or for a shared source (no
        `department`) the departments of the KPIs it feeds, sorted."""
        own = self.sources[source_id].get("department")
        if own is not None:
            return [own]
        return sorted({self.kpis[k]["department"] for k in self.kpis_of_source(source_id)})


def _path_str(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _line_of(node: yaml.Node | None, parts) -> int | None:
    """1-based line of the YAML node at a key path, or of its deepest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in parts:
        if isinstance(node, yaml.MappingNode):
            nxt = next((v for k, v in node.value if k.value == part), None)
            if nxt is None:
                break
            node = nxt
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
        else:
            break
        line = node.start_mark.line + 1
    return line


class _UniqueKeyLoader(yaml.SafeLoader):
    pass


def _no_duplicate_keys(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


# Bounds on a catalog file: its size, and the size of its YAML once aliases are expanded (nine
# levels of nine aliases in 1 KB expand to 387 million nodes, which the schema validator and its
# error messages would otherwise walk and print).
MAX_CATALOG_FILE_BYTES = 5 * 1024 * 1024
MAX_EXPANDED_NODES = 200_000


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return node.value
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _expanded_nodes(root: yaml.Node | None, limit: int) -> int:
    """Nodes in the document with every alias expanded, counted without expanding (each shared
    node's size computed once); counts stop just past `limit`."""
    if root is None:
        return 0
    sizes: dict[int, int | None] = {}
    stack = [(root, False)]
    while stack:  # iterative post-order: a node's size once all its children's are known
        node, done = stack.pop()
        if done:
            sizes[id(node)] = min(limit + 1, 1 + sum(sizes[id(k)] or limit + 1 for k in _children(node)))
            continue
        if id(node) in sizes:
            continue
        sizes[id(node)] = None  # in progress (an alias back to it would be a cycle: counted as over)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in sizes)
    return sizes[id(root)] or limit + 1


def _load_file(path: Path, problems: list[Problem]) -> tuple[Any, yaml.Node | None]:
    size = path.stat().st_size
    if size > MAX_CATALOG_FILE_BYTES:
        problems.append(Problem(path.name, None, "", f"file is {size:,} bytes, over the catalog limit of "
                                                     f"{MAX_CATALOG_FILE_BYTES:,} bytes"))
        return None, None
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        problems.append(Problem(path.name, None, "", "file is not UTF-8 text"))
        return None, None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if _expanded_nodes(node, MAX_EXPANDED_NODES) > MAX_EXPANDED_NODES:
            problems.append(Problem(path.name, None, "", f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} "
                                                         "nodes (an alias bomb?); not loaded"))
            return None, None
        # Dates stay strings: the schema checks their format, the loader converts them.
        data = yaml.load(text, Loader=_StringDateLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or str(exc)
        problems.append(Problem(path.name, mark.line + 1 if mark else None, "", f"invalid YAML: {reason}"))
        return None, None
    return data, node


class _StringDateLoader(_UniqueKeyLoader):
    pass


# Keep YAML timestamps as strings so `format: date` is checked by the schema.
_StringDateLoader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def standard_points(kpi: dict) -> list[dict]:
    """A KPI's standard as a list of dated points (one point, or its dated changes)."""
    std = kpi.get("standard")
    if std is None:
        return []
    return list(std) if isinstance(std, list) else [std]


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _regex_problem(pattern: str) -> str | None:
    import re

    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{pattern!r} is not a valid regular expression ({exc})"
    return None


BATCH_PERIOD_FORMS = ("title", "cell", "file_name", "sheet_name")


def _check_reading(src: dict, base: list, add) -> None:
    """How a file source's batches are read: batch-level periods, sheets, row rules, layouts."""
    kind = src["kind"]
    fields = [(base + ["columns"], src["columns"])]
    fields += [(base + ["layouts", j, "columns"], lay.get("columns", {})) for j, lay in enumerate(src.get("layouts", []))]
    for parts, cols in fields:
        for name, spec in cols.items():
            forms = [f for f in BATCH_PERIOD_FORMS if isinstance(spec, dict) and f in spec]
            if forms and name != "period":
                add(parts + [name], f"{forms[0]!r} gives a batch's period: map it under 'period' only")
            elif forms and forms[0] in ("title", "cell", "sheet_name") and kind != "excel":
                add(parts + [name], f"a period from a {forms[0].replace('_', ' ')} needs an excel source")
            elif forms and forms[0] == "file_name" and kind not in ("csv", "excel", "parquet"):
                add(parts + [name], "a period from the file name needs a file source")
            for key in ("file_name", "sheet_name"):
                if isinstance(spec, dict) and isinstance(spec.get(key), str) and (p := _regex_problem(spec[key])):
                    add(parts + [name, key], p)
    sheet = src.get("sheet")
    if sheet is not None and kind != "excel":
        add(base + ["sheet"], "only excel sources have sheets")
    if isinstance(sheet, dict) and "pattern" in sheet and (p := _regex_problem(sheet["pattern"])):
        add(base + ["sheet", "pattern"], p)
    if "header_rows" in src and kind != "excel":
        add(base + ["header_rows"], "only excel sources have a header of several rows")
    rule_sets = [(base + ["row_rules"], src.get("row_rules", []))]
    rule_sets += [(base + ["layouts", j, "row_rules"], lay.get("row_rules", [])) for j, lay in enumerate(src.get("layouts", []))]
    for parts, rules in rule_sets:
        names = [r["name"] for r in rules]
        for j, rule in enumerate(rules):
            kinds = [k for k in ("exclude", "include") if k in rule]
            if len(kinds) != 1:
                add(parts + [j], "a row rule has exactly one of 'exclude' or 'include'")
                continue
            cond = rule[kinds[0]]
            tests = [k for k in ("equals", "in", "matches", "empty") if k in cond]
            if len(tests) != 1:
                add(parts + [j, kinds[0]], "a row rule's condition has exactly one of 'equals', 'in', 'matches' or 'empty'")
            if "matches" in cond and (p := _regex_problem(cond["matches"])):
                add(parts + [j, kinds[0], "matches"], p)
            if names.count(rule["name"]) > 1 and names.index(rule["name"]) != j:
                add(parts + [j, "name"], f"duplicate row rule name {rule['name']!r}")
    layout_names = [lay["name"] for lay in src.get("layouts", [])]
    for j, name in enumerate(layout_names):
        if layout_names.index(name) != j:
            add(base + ["layouts", j, "name"], f"duplicate layout name {name!r}")


def load_catalog(directory: str | Path) -> Catalog:
    """Load, validate and cross-check a catalog directory; raise CatalogError listing every problem."""
    directory = Path(directory)
    problems: list[Problem] = []
    if not directory.is_dir():
        raise CatalogError([Problem(str(directory), None, "", "catalog directory not found")])

    docs: dict[str, tuple[Any, yaml.Node | None]] = {}
    for name, schema in FILES.items():
        path = directory / name
        if not path.exists():
            if name not in OPTIONAL_FILES:
                problems.append(Problem(name, None, "", "required catalog file is missing"))
            continue
        data, node = _load_file(path, problems)
        if data is None and node is None:
            continue
        if data is None:
            data = {}
        validator = Draft202012Validator(schema, format_checker=FormatChecker())
        for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
            parts = list(err.absolute_path)
            reason, extra = err.message, []
            if err.validator == "additionalProperties":
                extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
                reason = f"unknown key(s) {', '.join(map(repr, extra))} (allowed: {', '.join(err.schema.get('properties', {}))})"
            elif err.validator == "format" and err.validator_value == "date":
                reason = f"{err.instance!r} is not a date (YYYY-MM-DD)"
            elif err.validator == "oneOf" and err.schema is DEFS["tolerance"]:
                reason = f"{err.instance!r} is not an amount (0.5) or a share of the target ('10%')"
            elif err.validator == "pattern":
                reason = f"{err.instance!r} is not a valid identifier or name (pattern {err.validator_value})"
            if len(reason) > 300:  # a schema message quotes the value it rejects: keep it one readable line
                reason = reason[:300] + f"… ({len(reason) - 300:,} more characters)"
            line_parts = parts + extra[:1] if err.validator == "additionalProperties" else parts
            problems.append(Problem(name, _line_of(node, line_parts), _path_str(parts), reason))
        docs[name] = (data, node)

    if problems:
        raise CatalogError(sorted(problems, key=lambda p: (p.file, p.line or 0)))

    def items(file: str, key: str):
        data, node = docs.get(file, ({}, None))
        return [(i, item, node) for i, item in enumerate(data.get(key) or [])]

    def add(file, node, parts, reason):
        problems.append(Problem(file, _line_of(node, parts), _path_str(parts), reason))

    def index(file: str, key: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for i, item, node in items(file, key):
            if item["id"] in out:
                add(file, node, [key, i, "id"], f"duplicate id {item['id']!r}")
            out[item["id"]] = item
        return out

    departments = index("departments.yml", "departments")
    sources = index("sources.yml", "sources")
    kpis = index("kpis.yml", "kpis")
    milestones = index("milestones.yml", "milestones")

    for i, src, node in items("sources.yml", "sources"):
        if "department" in src and src["department"] not in departments:
            add("sources.yml", node, ["sources", i, "department"], f"unknown department {src['department']!r}")
        kind = src["kind"]
        if kind == "http" and ("url" in src) == ("url_env" in src):
            add("sources.yml", node, ["sources", i], "an http source needs exactly one of 'url' or 'url_env'")
        if kind == "http" and (src.get("paging") or {}).get("style") == "ckan" and "resource_id" not in src["paging"]:
            add("sources.yml", node, ["sources", i, "paging"], "ckan paging needs 'resource_id'")
        if "watermark_column" in src and kind != "sql":
            add("sources.yml", node, ["sources", i, "watermark_column"], "only sql sources have a watermark")
        if kind == "sql" and "query" in src and "table" in src:
            add("sources.yml", node, ["sources", i], "a sql source has 'table' or 'query', not both")
        if kind in ("csv", "excel", "parquet") and "path" not in src:
            add("sources.yml", node, ["sources", i], f"a {kind} source needs 'path' (a glob under the data directory)")
        if kind == "sql":
            if "url" in src:
                add("sources.yml", node, ["sources", i, "url"], "a database URL may hold a password: give the name of an environment variable in 'url_env' instead")
            if ("sqlite_path" in src) == ("url_env" in src):
                add("sources.yml", node, ["sources", i], "a sql source needs exactly one of 'sqlite_path' or 'url_env'")
            if "table" not in src and "query" not in src:
                add("sources.yml", node, ["sources", i], "a sql source needs 'table' or 'query'")
        for key in ("path", "sqlite_path"):
            value = src.get(key)
            if value and (value.startswith(("/", "\\")) or ".." in Path(value).parts):
                add("sources.yml", node, ["sources", i, key], "must be a relative path inside the data directory")
        _check_reading(src, ["sources", i], lambda parts, reason: add("sources.yml", node, parts, reason))
        cols = src["columns"]
        if "wide" in src:
            for key in ("kpi_id", "value", "numerator", "denominator"):
                if key in cols:
                    add("sources.yml", node, ["sources", i, "columns", key], "a wide source takes KPI ids and values from wide.kpi_columns")
        else:
            if "kpi_id" not in cols:
                add("sources.yml", node, ["sources", i, "columns"], "map 'kpi_id' (or use 'wide' with one column per KPI)")
            if "value" not in cols and not ("numerator" in cols and "denominator" in cols):
                add("sources.yml", node, ["sources", i, "columns"], "map 'value', or both 'numerator' and 'denominator'")

    # A source's kpi_id column may hold a KPI's id or its `code` (as the organisation writes it):
    # each must name one KPI only.
    names: dict[str, str] = {k: k for k in kpis}
    for i, kpi, node in items("kpis.yml", "kpis"):
        code = kpi.get("code")
        if code is None or code == kpi["id"]:
            continue
        other = names.get(code)
        if other is not None and other != kpi["id"]:
            what = "the id" if code in kpis else "the code"
            add("kpis.yml", node, ["kpis", i, "code"], f"code {code!r} is already {what} of KPI {other!r}")
        else:
            names[code] = kpi["id"]

    settings_doc = docs.get("kpiwatch.yml", ({}, None))[0] or {}
    default_tolerance = (settings_doc.get("defaults") or {}).get("tolerance")
    for i, kpi, node in items("kpis.yml", "kpis"):
        base = ["kpis", i]
        if "tolerance" not in kpi and default_tolerance is None:
            add("kpis.yml", node, base, "give the KPI a 'tolerance' (or set defaults.tolerance in kpiwatch.yml)")
        if "min" in kpi and "max" in kpi and kpi["min"] > kpi["max"]:
            add("kpis.yml", node, base + ["min"], f"min {kpi['min']} is above max {kpi['max']}")
        if kpi["department"] not in departments:
            add("kpis.yml", node, base + ["department"], f"unknown department {kpi['department']!r}")
        src = sources.get(kpi["source"])
        if src is None:
            add("kpis.yml", node, base + ["source"], f"unknown source {kpi['source']!r}")
        else:
            if "department" in src and src["department"] != kpi["department"]:
                add("kpis.yml", node, base + ["source"],
                    f"source {kpi['source']!r} belongs to department {src['department']!r}, not {kpi['department']!r} "
                    f"(leave out the source's 'department' to make it shared: a shared source feeds KPIs of any department)")
            cols = dict(src["columns"], **({"value": "(wide)"} if "wide" in src else {}))
            if kpi["aggregation"] == "ratio" and not ("numerator" in cols and "denominator" in cols):
                add("kpis.yml", node, base + ["aggregation"], f"ratio KPI needs source {kpi['source']!r} to map 'numerator' and 'denominator'")
            if kpi["aggregation"] != "ratio" and "value" not in cols:
                add("kpis.yml", node, base + ["aggregation"], f"source {kpi['source']!r} maps no 'value' column for a {kpi['aggregation']} KPI")
        if "fiscal_year_start_month" in kpi and kpi["frequency"] not in ("fiscal_year", "quarterly") \
                and "year_to_date" not in kpi:
            add("kpis.yml", node, base + ["fiscal_year_start_month"],
                "fiscal_year_start_month applies to fiscal_year, fiscal quarterly and year_to_date KPIs only")
        if kpi.get("year_to_date") == "computed":
            if kpi["aggregation"] not in ("sum", "ratio"):
                add("kpis.yml", node, base + ["year_to_date"],
                    f"a {kpi['aggregation']} KPI cannot be added up over the year: year_to_date computed needs sum or ratio")
            if kpi["frequency"] in ("annual", "fiscal_year"):
                add("kpis.yml", node, base + ["year_to_date"], "a yearly KPI is its own year to date")
        if "scale" in kpi and kpi["aggregation"] != "ratio":
            add("kpis.yml", node, base + ["scale"], "scale applies to ratio KPIs only")
        seen_from: set[str] = set()
        band = kpi["direction"] == "within_range"
        for j, point in enumerate(standard_points(kpi)):
            at = base + ["standard"] + ([j] if isinstance(kpi["standard"], list) else [])
            if point["effective_from"] in seen_from:
                add("kpis.yml", node, at + ["effective_from"], f"two standards take effect on {point['effective_from']}")
            seen_from.add(point["effective_from"])
            if band and ("lower" not in point or "upper" not in point or "value" in point):
                add("kpis.yml", node, at, "a within_range KPI's standard is a band: give 'lower' and 'upper' (no 'value')")
            elif band and point["lower"] > point["upper"]:
                add("kpis.yml", node, at, f"band lower {point['lower']} is above upper {point['upper']}")
            elif not band and ("value" not in point or "lower" in point or "upper" in point):
                add("kpis.yml", node, at, "a standard has a 'value' ('lower' and 'upper' are for within_range KPIs)")
        if band and "standard" not in kpi:
            add("kpis.yml", node, base + ["direction"], "a within_range KPI needs its band as 'standard' (lower, upper)")
        if band and ("targets" in kpi or kpi.get("targets_from") == "source"):
            add("kpis.yml", node, base + ["direction"], "a within_range KPI is judged against its band, not targets")
        if kpi.get("targets_from", "catalog") == "source":
            if src is not None and "target" not in src["columns"]:
                add("kpis.yml", node, base + ["targets_from"], f"source {kpi['source']!r} maps no 'target' column")
            continue
        withdrawals = 0
        for j, tgt in enumerate(kpi.get("targets", [])):
            at = base + ["targets", j]
            if tgt.get("withdrawn"):
                withdrawals += 1
                if "effective_from" not in tgt or "value" in tgt or "due" in tgt:
                    add("kpis.yml", node, at, "a withdrawn target is {withdrawn: true, effective_from: DATE} "
                        "(no 'value' or 'due'): periods from that date have no target")
            elif "value" not in tgt or "due" not in tgt:
                add("kpis.yml", node, at, "a target needs 'value' and 'due' (or withdrawn: true and effective_from)")
        if withdrawals > 1:
            add("kpis.yml", node, base + ["targets"], "a KPI's targets are withdrawn once")
        if withdrawals and withdrawals == len(kpi.get("targets", [])):
            add("kpis.yml", node, base + ["targets"], "only a withdrawal: give the targets it withdraws, or no targets")
        if kpi.get("year_to_date") == "computed" and "targets" in kpi and "baseline" not in kpi:
            continue  # annual targets: the year-to-date trajectory starts from 0 each year
        if ("baseline" in kpi) != ("targets" in kpi):
            add("kpis.yml", node, base, "a trajectory needs both a dated 'baseline' and 'targets'")
            continue
        if "baseline" not in kpi:
            # without a standard either: a data-only indicator (status "no target": its value
            # and trend are shown, never judged)
            continue
        baseline = _date(kpi["baseline"]["date"])
        for j, tgt in enumerate(kpi["targets"]):
            if "due" in tgt and _date(tgt["due"]) <= baseline:
                add("kpis.yml", node, base + ["targets", j, "due"], f"target due {tgt['due']} is not after the baseline date {kpi['baseline']['date']}")

    for i, ms, node in items("milestones.yml", "milestones"):
        base = ["milestones", i]
        test = ms.get("test", "by_date")
        if "kpi" in ms and ms["kpi"] not in kpis:
            add("milestones.yml", node, base + ["kpi"], f"unknown KPI {ms['kpi']!r}")
        if "department" in ms and ms["department"] not in departments:
            add("milestones.yml", node, base + ["department"], f"unknown department {ms['department']!r}")
        if "kpi" in ms and "department" in ms and ms["kpi"] in kpis and kpis[ms["kpi"]]["department"] != ms["department"]:
            add("milestones.yml", node, base + ["department"],
                f"KPI {ms['kpi']!r} belongs to department {kpis[ms['kpi']]['department']!r}")
        if test == "manual":
            if "kpi" not in ms and "department" not in ms:
                add("milestones.yml", node, base, "a manual milestone names its 'kpi' or its 'department'")
            if "completed_on" in ms and "completed_by" not in ms:
                add("milestones.yml", node, base + ["completed_on"], "say who recorded the completion in 'completed_by'")
        else:
            for key in ("kpi", "threshold"):
                if key not in ms:
                    add("milestones.yml", node, base, f"a {test} milestone needs '{key}' (or test: manual)")
        if "from" in ms and test != "by_date":
            add("milestones.yml", node, base + ["from"], "'from' applies to by_date milestones only")
        elif "from" in ms and ms["from"] >= ms["due"]:
            add("milestones.yml", node, base + ["from"], f"'from' {ms['from']} is not before 'due' {ms['due']}")
        if "completed_by" in ms and "completed_on" not in ms:
            add("milestones.yml", node, base + ["completed_by"], "'completed_by' needs 'completed_on'")

    if problems:
        raise CatalogError(problems)

    settings = docs.get("kpiwatch.yml", ({}, None))[0] or {}
    return Catalog(
        directory=directory,
        name=settings.get("name", directory.name),
        as_of=_date(settings.get("as_of")),
        data_dir=(directory / settings["data_dir"]).resolve() if settings.get("data_dir") else None,
        warehouse=(directory / settings["warehouse"]).resolve() if settings.get("warehouse") else None,
        departments=departments,
        sources=sources,
        kpis=kpis,
        milestones=milestones,
        defaults=settings.get("defaults") or {},
        rejection=settings.get("rejection") or {},
    )
