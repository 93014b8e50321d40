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
                "required": ["id", "name", "channel"],
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
                "required": ["id", "department", "kind", "cadence", "columns"],
                "properties": {
                    "id": ID,
                    "department": ID,
                    "kind": {"enum": ["csv", "excel", "parquet", "sql", "http"]},
                    "description": {"type": "string"},
                    # csv / excel / parquet: a glob relative to the data directory (the drop folder).
                    "path": {"type": "string", "minLength": 1},
                    # excel: a sheet name, or its 1-based position.
                    "sheet": {"type": ["string", "integer"], "minimum": 1},
                    # 1-based row holding the column names (rows above it are titles) ...
                    "header_row": {"type": "integer", "minimum": 1, "maximum": 1000},
                    # ... or the label of a cell in that row, searched in the first 50 rows.
                    "header_label": {"type": "string", "minLength": 1},
                    # csv: override the detected encoding / delimiter.
                    "encoding": {"enum": ["utf-8", "utf-8-sig", "cp1252", "latin-1"]},
                    "delimiter": {"type": "string", "minLength": 1, "maxLength": 1},
                    # Cell texts that mean "no value" (quarantined as missing_value, never a zero).
                    "missing_markers": {"type": "array", "items": {"type": "string"}},
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
                    "cadence": {"enum": ["monthly", "quarterly"]},
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

TARGET_POINT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["value", "due"],
    "properties": {
        "value": {"type": "number"},
        "due": DATE,
        "effective_from": DATE,
    },
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
                "required": [
                    "id", "name", "department", "source", "owner", "unit", "direction",
                    "frequency", "aggregation", "tolerance",
                ],
                "properties": {
                    "id": ID,
                    "name": {"type": "string", "minLength": 1},
                    "department": ID,
                    "source": ID,
                    "owner": PERSON,
                    "unit": {"type": "string", "minLength": 1},
                    "direction": {"enum": ["higher_is_better", "lower_is_better"]},
                    "frequency": {"enum": ["monthly", "quarterly"]},
                    "aggregation": {"enum": ["sum", "mean", "ratio"]},
                    "scale": {"type": "number", "exclusiveMinimum": 0},
                    "tolerance": {"type": "number", "minimum": 0},
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
                "required": ["id", "title", "kpi", "threshold", "due"],
                "properties": {
                    "id": ID,
                    "title": {"type": "string", "minLength": 1},
                    "kpi": ID,
                    "threshold": {"type": "number"},
                    "due": DATE,
                    "owner": PERSON,
                    "completed_on": DATE,
                },
            },
        }
    },
}

# file name -> schema; every catalog directory holds these files.
FILES = {
    "kpiwatch.yml": SETTINGS,
    "departments.yml": DEPARTMENTS,
    "sources.yml": SOURCES,
    "kpis.yml": KPIS,
    "milestones.yml": MILESTONES,
}
OPTIONAL_FILES = {"kpiwatch.yml", "milestones.yml"}
