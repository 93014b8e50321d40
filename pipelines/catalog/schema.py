"""JSON schemas of the catalog files. Each file holds one top-level list (or the settings map)."""

ID = {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,62}$"}
DATE = {"type": "string", "format": "date"}
SLACK = {"type": "string", "pattern": r"^([#@]?[A-Za-z0-9._-]+)$"}
PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "slack": SLACK,
        # shown as the Dagster asset owner of the department's ingest assets
        "email": {"type": "string", "pattern": r"^[^@\s]+@[^@\s]+\.[^@\s]+$"},
    },
}

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        # The reporting date ("today") of the catalog. The demo pins it so its stories read
        # the same on any day; leave it out to report as of the current date.
        "as_of": DATE,
        # Defaults for this catalog, relative to the catalog directory (flags and environment
        # variables win): where its sources' files are, and its own warehouse file.
        "data_dir": {"type": "string", "minLength": 1},
        "warehouse": {"type": "string", "minLength": 1},
        # Catalog-wide defaults of the per-KPI settings of the same names (a KPI's own wins).
        "defaults": {
            "type": "object", "additionalProperties": False,
            "properties": {"tolerance": {"$ref": "#/$defs/tolerance"},
                           "allow_negative": {"type": "boolean"}},
        },
        # When rejected rows block a department's publication: more than `max_share` of a
        # batch's rows rejected AND at least `min_rows` of them (one missing value in a
        # four-row return is not a broken feed). Per source too (sources.yml `rejection`).
        "rejection": {"$ref": "#/$defs/rejection"},
    },
}

DEPARTMENTS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["departments"],
    "properties": {
        "departments": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                # channel: where the department's alerts go on Slack (optional: without it they
                # reach the console and the alert file only)
                "required": ["id", "name"],
                "properties": {
                    "id": ID,
                    "name": {"type": "string", "minLength": 1},
                    "channel": SLACK,
                    "head": PERSON,
                },
            },
        }
    },
}

COLUMN = {"type": "string", "minLength": 1, "maxLength": 128}
# A mapped field: a column name, or a rule that derives the field from the record.
FIELD = {
    "oneOf": [
        COLUMN,
        {   # a column, optionally with a value map (e.g. indicator names -> KPI ids) and a unit
            "type": "object", "additionalProperties": False, "required": ["column"],
            "properties": {
                "column": COLUMN,
                "map": {"type": "object", "additionalProperties": {"type": ["string", "number"]}},
                # percent: "95%" / "95" -> 95; fraction_to_percent: 0.95 -> 95
                "unit": {"enum": ["number", "percent", "fraction_to_percent"]},
                "format": {"type": "string", "minLength": 2},  # period: a strptime format
            },
        },
        {"type": "object", "additionalProperties": False, "required": ["constant"],
         "properties": {"constant": {"type": ["string", "number"]}}},
        {"type": "object", "additionalProperties": False, "required": ["subtract"],
         "properties": {"subtract": {"type": "array", "items": COLUMN, "minItems": 2, "maxItems": 2}}},
        {"type": "object", "additionalProperties": False, "required": ["sum"],
         "properties": {"sum": {"type": "array", "items": COLUMN, "minItems": 2}}},
        # an id from several columns, joined with "|" (org_id "RF4|1" rolls up to "RF4")
        {"type": "object", "additionalProperties": False, "required": ["join"],
         "properties": {"join": {"type": "array", "items": COLUMN, "minItems": 2}}},
        {   # a period from separate year and month (or quarter) columns
            "type": "object", "additionalProperties": False, "required": ["year"],
            "properties": {"year": COLUMN, "month": COLUMN, "quarter": COLUMN},
        },
        # period only: one period for the whole batch, found outside the table --
        # the cell beside a title label (`Period:`) in the rows above the header,
        {"type": "object", "additionalProperties": False, "required": ["title"],
         "properties": {"title": COLUMN, "format": {"type": "string", "minLength": 2}}},
        # a fixed cell of the sheet (`C5`),
        {"type": "object", "additionalProperties": False, "required": ["cell"],
         "properties": {"cell": {"type": "string", "pattern": r"^[A-Za-z]{1,3}[1-9][0-9]{0,5}$"},
                        "format": {"type": "string", "minLength": 2}}},
        # the file name: a regular expression with named parts (year, month, quarter or period),
        {"type": "object", "additionalProperties": False, "required": ["file_name"],
         "properties": {"file_name": {"type": "string", "minLength": 1},
                        "format": {"type": "string", "minLength": 2}}},
        # the sheet's name (the whole name, or a regular expression with named parts).
        {"type": "object", "additionalProperties": False, "required": ["sheet_name"],
         "properties": {"sheet_name": {"type": ["string", "boolean"]},
                        "format": {"type": "string", "minLength": 2}}},
    ]
}
# A row rule: rows whose column value equals / is one of / matches a pattern (or is empty).
CONDITION = {
    "type": "object", "additionalProperties": False, "required": ["column"],
    "properties": {
        "column": COLUMN,
        "equals": {"type": ["string", "number"]},
        "in": {"type": "array", "items": {"type": ["string", "number"]}, "minItems": 1},
        "matches": {"type": "string", "minLength": 1},
        "empty": {"type": "boolean"},
    },
}
ROW_RULES = {
    "type": "array",
    "items": {
        "type": "object", "additionalProperties": False, "required": ["name"],
        "properties": {
            "name": ID,                    # excluded rows are counted per batch under this name
            "exclude": CONDITION,          # leave out the rows that match (subtotals, national rows)
            "include": CONDITION,          # keep only the rows that match
        },
    },
}
# excel: which sheet -- a name or 1-based position, a list of names (the first present), or
# {pattern: regex} (the first name that matches), or {header_contains: LABEL}.
SHEET = {
    "oneOf": [
        {"type": "string", "minLength": 1},
        {"type": "integer", "minimum": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
        {"type": "object", "additionalProperties": False, "required": ["pattern"],
         "properties": {"pattern": {"type": "string", "minLength": 1}}},
        {"type": "object", "additionalProperties": False, "required": ["header_contains"],
         "properties": {"header_contains": {"type": "string", "minLength": 1}}},
    ]
}
MAPPED = ["kpi_id", "period", "org_id", "value", "numerator", "denominator", "target"]
SOURCES = {
    "type": "object",
    "additionalProperties": False,
    "required": ["sources"],
    "properties": {
        "sources": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                # department: the department the source belongs to. Left out, the source is
                # shared (a corporate return): it feeds the KPIs of any department, and each
                # department's publication and freshness are judged on its own KPIs' rows.
                "required": ["id", "kind", "cadence", "columns"],
                "properties": {
                    "id": ID,
                    "department": ID,
                    "rejection": {"$ref": "#/$defs/rejection"},
                    "kind": {"enum": ["csv", "excel", "parquet", "sql", "http"]},
                    "description": {"type": "string"},
                    # csv / excel / parquet: a glob relative to the data directory (the drop folder).
                    "path": {"type": "string", "minLength": 1},
                    # excel: the sheet (see SHEET).
                    "sheet": SHEET,
                    # 1-based row holding the column names (rows above it are titles) ...
                    "header_row": {"type": "integer", "minimum": 1, "maximum": 1000},
                    # ... or the label of a cell in that row, searched in the first 50 rows.
                    "header_label": {"type": "string", "minLength": 1},
                    # excel: a header over several rows ending with that row; the rows above
                    # it are group headings, joined to the column's: "Group / Column".
                    "header_rows": {"type": "integer", "minimum": 1, "maximum": 5},
                    # rows left out by rule, counted per batch under the rule's name.
                    "row_rules": ROW_RULES,
                    # the layouts the source accepts over the years: the first whose header
                    # contains all its labels is used, with its own mapping and rules.
                    "layouts": {
                        "type": "array", "minItems": 1,
                        "items": {
                            "type": "object", "additionalProperties": False,
                            "required": ["name", "header_contains"],
                            "properties": {
                                "name": ID,
                                "header_contains": {"type": "array", "minItems": 1,
                                                    "items": {"type": "string", "minLength": 1}},
                                "columns": {"type": "object", "additionalProperties": False,
                                            "properties": {name: FIELD for name in MAPPED}},
                                "row_rules": ROW_RULES,
                            },
                        },
                    },
                    # csv: override the detected encoding / delimiter.
                    "encoding": {"enum": ["utf-8", "utf-8-sig", "cp1252", "latin-1"]},
                    "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
                    # Cell texts that mean "no value" (quarantined as missing_value, never a zero).
                    "missing_markers": {"type": "array", "items": {"type": "string"}},
                    # Values of the mapped `target` column that mean "no target set this
                    # period" (some publishers write 0); by default 0 is a target like any other.
                    "no_target_values": {"type": "array", "items": {"type": "number"}, "minItems": 1},
                    # Files over this size are quarantined whole (file_too_large).
                    "max_file_mb": {"type": "number", "exclusiveMinimum": 0},
                    # sql: a SQLite file under the data directory, or the name of an
                    # environment variable holding a SQLAlchemy URL (never the URL itself).
                    "sqlite_path": {"type": "string", "minLength": 1},
                    "url_env": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]*$"},
                    "table": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"},
                    # sql: a parameterised query instead of a table (`:name` parameters).
                    "query": {"type": "string", "minLength": 1},
                    "params": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]}},
                    # sql: read only rows whose column is above the last landed value.
                    "watermark_column": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"},
                    # http: an open-data endpoint (public URL, or url_env for one with a key).
                    "url": {"type": "string", "pattern": r"^https?://"},
                    "format": {"enum": ["csv", "json"]},
                    "paging": {
                        "type": "object", "additionalProperties": False, "required": ["style"],
                        "properties": {
                            "style": {"enum": ["none", "socrata", "ckan"]},
                            "page_size": {"type": "integer", "minimum": 1, "maximum": 50000},
                            "resource_id": {"type": "string", "minLength": 1},
                        },
                    },
                    "records_path": {"type": "string"},
                    "timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 600},
                    "retries": {"type": "integer", "minimum": 0, "maximum": 10},
                    # Bounds on what comes in (docs/sources.md, "Limits"): http response size,
                    # total time of one read, redirect hosts; sql statement time, fetch and batch size;
                    # a workbook's uncompressed sheet size and cells.
                    "max_response_mb": {"type": "number", "exclusiveMinimum": 0},
                    "deadline_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
                    "allow_redirect_hosts": {"type": "array", "items": {"type": "string", "pattern": r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$"}},
                    "statement_timeout_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400},
                    "fetch_rows": {"type": "integer", "minimum": 1, "maximum": 1000000},
                    "batch_rows": {"type": "integer", "minimum": 1, "maximum": 10000000},
                    "max_uncompressed_mb": {"type": "number", "exclusiveMinimum": 0},
                    "max_cells": {"type": "integer", "minimum": 1},
                    "cadence": {"enum": ["weekly", "monthly", "quarterly", "annual", "fiscal_year"]},
                    "lag_days": {"type": "integer", "minimum": 0, "maximum": 366},
                    "columns": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["period"],
                        "properties": {name: FIELD for name in MAPPED},
                    },
                    # Wide sources: one column per KPI ({column: kpi_id}); each cell is an
                    # observation and the unit of accounting (rows_in counts cells).
                    "wide": {
                        "type": "object", "additionalProperties": False, "required": ["kpi_columns"],
                        "properties": {
                            "kpi_columns": {"type": "object", "minProperties": 1, "additionalProperties": ID},
                            "unit": {"enum": ["number", "percent", "fraction_to_percent"]},
                        },
                    },
                },
            },
        }
    },
}

# A target point (`value` due on `due`), or a withdrawal: `{withdrawn: true, effective_from:
# DATE}` -- periods starting on or after that date have no target ("no target"). Which keys go
# together is checked by the loader (a clear message rather than a oneOf).
TARGET_POINT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "value": {"type": "number"},
        "due": DATE,
        "effective_from": DATE,
        "withdrawn": {"const": True},
    },
}
# A standing standard (95% of A&E patients seen within 4 hours): a threshold that applies to
# every period starting on or after its effective date, until a later change takes over.
STANDARD_POINT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["effective_from"],
    # a threshold (`value`), or for a within_range KPI a band (`lower` and `upper`, inclusive)
    "properties": {"value": {"type": "number"}, "lower": {"type": "number"}, "upper": {"type": "number"},
                   "effective_from": DATE},
}
KPIS = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kpis"],
    "properties": {
        "kpis": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                # tolerance may come from kpiwatch.yml `defaults` instead
                "required": [
                    "id", "name", "department", "source", "owner", "unit", "direction",
                    "frequency", "aggregation",
                ],
                "properties": {
                    "id": ID,
                    # the organisation's own code (`CS01`), shown beside the name and matched
                    # in a source's kpi_id column as written; the id stays the warehouse key
                    "code": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$"},
                    # value rules checked on every landed row of the KPI (docs/quality.md,
                    # "Value rules"): negatives refused (negative_value) unless allow_negative
                    # (default from kpiwatch.yml defaults, else false) or a negative min; min /
                    # max inclusive (out_of_range); a percent unit (percent, %, per cent,
                    # percentage, pct) is 0-100 unless min / max say otherwise
                    "allow_negative": {"type": "boolean"},
                    "min": {"type": "number"},
                    "max": {"type": "number"},
                    # decimals shown for values and targets; by default as many as the catalog's
                    # targets and standards are written with (3.15 -> 2)
                    "decimals": {"type": "integer", "minimum": 0, "maximum": 6},
                    "name": {"type": "string", "minLength": 1},
                    "department": ID,
                    "source": ID,
                    "owner": PERSON,
                    "unit": {"type": "string", "minLength": 1},
                    # within_range: met inside a band (`standard` with lower and upper), amber
                    # within `tolerance` outside it, red beyond (bed occupancy 85-92%)
                    "direction": {"enum": ["higher_is_better", "lower_is_better", "within_range"]},
                    # weekly (ISO weeks), monthly, quarterly, annual (calendar years) or
                    # fiscal_year (starting in fiscal_year_start_month, April by default)
                    "frequency": {"enum": ["weekly", "monthly", "quarterly", "annual", "fiscal_year"]},
                    "fiscal_year_start_month": {"type": "integer", "minimum": 1, "maximum": 12},
                    # A cumulative KPI, year to date (the year starting in fiscal_year_start_month,
                    # January by default): `computed` sums the year's periods so far (ratios from
                    # their summed parts); `delivered` means the data is year to date already and
                    # is used as delivered. Catalog targets of a computed KPI are annual: the
                    # expected value grows from 0 at the year's start to the target at its end.
                    "year_to_date": {"enum": ["computed", "delivered"]},
                    # latest: a stock at period end (staff in post), summed over organisations,
                    # never over periods; as_published: a figure that cannot be re-aggregated
                    # (a median, a 90th percentile): the whole's published figure is used as it
                    # is, never recomputed across organisations
                    "aggregation": {"enum": ["sum", "mean", "ratio", "latest", "as_published"]},
                    "scale": {"type": "number", "exclusiveMinimum": 0},
                    # amber within this distance of the target: an amount (0.5) or a share of
                    # the target ("10%")
                    "tolerance": {"$ref": "#/$defs/tolerance"},
                    "trajectory": {"enum": ["linear", "step"]},
                    "methodology": {"type": "string"},
                    "tags": {"type": "array", "items": ID},
                    "baseline": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["value", "date"],
                        "properties": {"value": {"type": "number"}, "date": DATE},
                    },
                    "targets": {"type": "array", "minItems": 1, "items": TARGET_POINT},
                    # One standard, or its dated changes as a list; met / not met every period.
                    # A KPI may carry a standard and a dated trajectory of targets beside it.
                    "standard": {"oneOf": [STANDARD_POINT,
                                           {"type": "array", "minItems": 1, "items": STANDARD_POINT}]},
                    # `source`: each period's target comes with the data (the source maps
                    # `target`); a target of 0 means no target was set (grey). `catalog`
                    # (default): the dated baseline and targets above.
                    "targets_from": {"enum": ["catalog", "source"]},
                },
            },
        }
    },
}

MILESTONES = {
    "type": "object",
    "additionalProperties": False,
    "required": ["milestones"],
    "properties": {
        "milestones": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "title", "due"],
                "properties": {
                    "id": ID,
                    "title": {"type": "string", "minLength": 1},
                    # How the milestone is met:
                    #   by_date (default): the KPI reaches `threshold` in any period ending on or
                    #     before `due` (and starting on or after `from`, when given);
                    #   in_period: the KPI reaches `threshold` in the period that contains `due`
                    #     ("76% in March 2024"), judged on that period alone;
                    #   manual: recorded as done (`completed_on`, `completed_by`); no KPI test.
                    "test": {"enum": ["by_date", "in_period", "manual"]},
                    "kpi": ID,
                    # a milestone without a KPI (test: manual) names its department
                    "department": ID,
                    "threshold": {"type": "number"},
                    "due": DATE,
                    "from": DATE,
                    "owner": PERSON,
                    "completed_on": DATE,
                    "completed_by": {"type": "string", "minLength": 1},
                },
            },
        }
    },
}

DEFS = {
    "tolerance": {"oneOf": [{"type": "number", "minimum": 0},
                            {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?%$"}]},
    "rejection": {
        "type": "object", "additionalProperties": False,
        "properties": {"max_share": {"type": "number", "minimum": 0, "maximum": 1},
                       "min_rows": {"type": "integer", "minimum": 1}},
    },
}
for _schema in (SETTINGS, SOURCES, KPIS):
    _schema["$defs"] = DEFS

# file name -> schema; every catalog directory holds these files.
FILES = {
    "kpiwatch.yml": SETTINGS,
    "departments.yml": DEPARTMENTS,
    "sources.yml": SOURCES,
    "kpis.yml": KPIS,
    "milestones.yml": MILESTONES,
}
OPTIONAL_FILES = {"kpiwatch.yml", "milestones.yml"}
