"""JSON schemas of the catalog files. Each file holds one top-level list (or the settings map)."""

ID = {"type": "string", "pattern": r"^[a-z][a-z0-9_]{0,62}$"}
DATE = {"type": "string", "format": "date"}
SLACK = {"type": "string", "pattern": r"^([#@]?[A-Za-z0-9._-]+)$"}
PERSON = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {"name": {"type": "string", "minLength": 1}, "slack": SLACK},
}

SETTINGS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string"},
        # The reporting date ("today") of the catalog. The demo pins it so its stories read
        # the same on any day; leave it out to report as of the current date.
        "as_of": DATE,
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
                    "kind": {"enum": ["csv", "excel", "sql"]},
                    "description": {"type": "string"},
                    # csv / excel: a glob relative to the data directory (the drop folder).
                    "path": {"type": "string", "minLength": 1},
                    "sheet": {"type": "string"},
                    # 1-based row holding the column names (rows above it are titles).
                    "header_row": {"type": "integer", "minimum": 1, "maximum": 1000},
                    # sql: a SQLite file under the data directory, or the name of an
                    # environment variable holding a SQLAlchemy URL (never the URL itself).
                    "sqlite_path": {"type": "string", "minLength": 1},
                    "url_env": {"type": "string", "pattern": r"^[A-Z][A-Z0-9_]*$"},
                    "table": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"},
                    "cadence": {"enum": ["monthly", "quarterly"]},
                    "lag_days": {"type": "integer", "minimum": 0, "maximum": 366},
                    "columns": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["kpi_id", "period"],
                        "properties": {
                            "kpi_id": COLUMN,
                            "period": COLUMN,
                            "org_id": COLUMN,
                            "value": COLUMN,
                            "numerator": COLUMN,
                            "denominator": COLUMN,
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
                    "frequency", "aggregation", "tolerance", "baseline", "targets",
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
