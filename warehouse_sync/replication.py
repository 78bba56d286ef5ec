"""Replication settings (taps/production.yaml) and the catalog built from them.

The catalog given to tap-postgres is made at every run from the tap's own
discovery plus the reviewed settings file, so a new source column is seen
at once and a secret column is deselected before anything is read.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from warehouse_sync.errors import ConfigError

REPLICATION_METHODS = ("INCREMENTAL", "FULL_TABLE")
TABLE_KEYS = {
    "replication_method",
    "replication_key",
    "secret_columns",
    "personal_columns",
    "allow_columns",
}
DEFAULT_SETTINGS_PATH = Path(__file__).resolve().parent.parent / "taps" / "production.yaml"


@dataclass(frozen=True)
class TableRule:
    """Replication rule of one source table."""

    name: str
    replication_method: str
    replication_key: str | None = None
    secret_columns: tuple[str, ...] = ()
    personal_columns: tuple[str, ...] = ()
    allow_columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReplicationSettings:
    """The parsed settings file."""

    source_schema: str
    secret_column_patterns: tuple[str, ...]
    tables: dict[str, TableRule]

    def is_secret(self, rule: TableRule, column: str) -> bool:
        """Tell whether a column is a secret under the table's rule and the name patterns."""
        if column in rule.secret_columns:
            return True
        if column in rule.allow_columns:
            return False
        return any(re.search(p, column, re.IGNORECASE) for p in self.secret_column_patterns)


@dataclass
class CatalogPlan:
    """A catalog for tap-postgres and what it leaves out or hashes, per table."""

    catalog: dict
    tables: list[str]
    source_schema: str = "public"
    excluded_columns: dict[str, list[str]] = field(default_factory=dict)
    hashed_columns: dict[str, list[str]] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)

    def transformations(self) -> list[dict]:
        """Return pipelinewise-transform-field rules for the personal columns."""
        return [
            {"tap_stream_name": stream_name(self.source_schema, table), "field_id": column, "type": "HASH"}
            for table, columns in self.hashed_columns.items()
            for column in columns
        ]


def stream_name(schema: str, table: str) -> str:
    """Return the stream name tap-postgres gives a table (``public-Users``)."""
    return f"{schema}-{table}"


def warehouse_table_name(table: str) -> str:
    """Return the table name pipelinewise targets create for a source table (lower case)."""
    return table.replace(".", "_").replace("-", "_").lower()


def load_replication_settings(path: str | Path = DEFAULT_SETTINGS_PATH) -> ReplicationSettings:
    """Read and check the settings file, reporting every problem at once."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"replication settings file {path} not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"replication settings file {path} is not valid YAML: {exc}") from exc

    problems: list[str] = []
    if not isinstance(raw, dict) or not isinstance(raw.get("tables"), dict) or not raw["tables"]:
        raise ConfigError(f"{path}: expected a mapping with a non-empty 'tables' mapping")

    patterns = tuple(raw.get("secret_column_patterns") or ())
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            problems.append(f"secret_column_patterns: {pattern!r} is not a valid regular expression ({exc})")

    tables: dict[str, TableRule] = {}
    for name, entry in raw["tables"].items():
        entry = entry or {}
        unknown = set(entry) - TABLE_KEYS
        if unknown:
            problems.append(f"tables.{name}: unknown keys {sorted(unknown)}; allowed: {sorted(TABLE_KEYS)}")
        method = entry.get("replication_method")
        key = entry.get("replication_key")
        if method not in REPLICATION_METHODS:
            problems.append(
                f"tables.{name}.replication_method={method!r} is invalid; use INCREMENTAL or FULL_TABLE"
            )
        if method == "INCREMENTAL" and not key:
            problems.append(f"tables.{name}: INCREMENTAL needs replication_key (a last-modified column)")
        if method == "FULL_TABLE" and key:
            problems.append(f"tables.{name}: replication_key {key!r} is set but the method is FULL_TABLE")
        tables[name] = TableRule(
            name=name,
            replication_method=method,
            replication_key=key,
            secret_columns=tuple(entry.get("secret_columns") or ()),
            personal_columns=tuple(entry.get("personal_columns") or ()),
            allow_columns=tuple(entry.get("allow_columns") or ()),
        )

    if problems:
        raise ConfigError(f"{path} is invalid:\n  - " + "\n  - ".join(problems))
    return ReplicationSettings(
        source_schema=raw.get("source_schema", "public"),
        secret_column_patterns=patterns,
        tables=tables,
    )


def select_tables(settings: ReplicationSettings, names: list[str] | None) -> list[str]:
    """Return the table names to sync, matching ``names`` case-insensitively.

    Raises ConfigError naming every requested table that the settings do not list.
    """
    if not names:
        return list(settings.tables)
    by_lower = {t.lower(): t for t in settings.tables}
    unknown = [n for n in names if n.lower() not in by_lower]
    if unknown:
        raise ConfigError(
            f"tables not in the replication settings: {', '.join(unknown)}; "
            f"known tables: {', '.join(settings.tables)}"
        )
    return [by_lower[n.lower()] for n in names]


def build_catalog(
    discovered: dict,
    settings: ReplicationSettings,
    tables: list[str] | None = None,
) -> CatalogPlan:
    """Select the tables and columns of a discovered catalog according to the settings.

    Raises ConfigError naming every table or column that the settings mention but
    the source lacks.
    """
    chosen = select_tables(settings, tables)
    streams = {
        (_schema_of(s), s["table_name"]): s for s in discovered.get("streams", [])
    }

    problems: list[str] = []
    selected_streams = []
    plan = CatalogPlan(catalog={}, tables=chosen, source_schema=settings.source_schema)

    for table in chosen:
        rule = settings.tables[table]
        stream = streams.get((settings.source_schema, table))
        if stream is None:
            problems.append(f"table {settings.source_schema}.{table} not found in the source database")
            continue
        stream = copy.deepcopy(stream)
        columns = list(stream["schema"]["properties"])

        named = list(rule.secret_columns) + list(rule.personal_columns) + list(rule.allow_columns)
        if rule.replication_key:
            named.append(rule.replication_key)
        for column in named:
            if column not in columns:
                problems.append(f"column {table}.{column} not found in the source table")

        excluded = [c for c in columns if settings.is_secret(rule, c)]
        if rule.replication_key in excluded:
            problems.append(f"{table}.{rule.replication_key} is the replication key but is treated as a secret")
        for column in rule.personal_columns:
            if column in excluded:
                problems.append(f"{table}.{column} is listed as personal data but is treated as a secret")

        _select(stream, rule, excluded)
        selected_streams.append(stream)
        plan.methods[table] = rule.replication_method
        if excluded:
            plan.excluded_columns[table] = excluded
        hashed = [c for c in rule.personal_columns if c in columns and c not in excluded]
        if hashed:
            plan.hashed_columns[table] = hashed

    if problems:
        raise ConfigError("replication settings do not match the source:\n  - " + "\n  - ".join(problems))

    plan.catalog = {"streams": selected_streams}
    return plan


def _schema_of(stream: dict) -> str | None:
    for entry in stream.get("metadata", []):
        if entry["breadcrumb"] == []:
            return entry["metadata"].get("schema-name")
    return None


def _select(stream: dict, rule: TableRule, excluded: list[str]) -> None:
    for entry in stream["metadata"]:
        metadata = entry["metadata"]
        if entry["breadcrumb"] == []:
            metadata["selected"] = True
            metadata["replication-method"] = rule.replication_method
            if rule.replication_key:
                metadata["replication-key"] = rule.replication_key
            else:
                metadata.pop("replication-key", None)
        else:
            metadata["selected"] = entry["breadcrumb"][-1] not in excluded
    for column in excluded:
        stream["schema"]["properties"].pop(column, None)
