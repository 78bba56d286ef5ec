"""Foreign-key metadata in Metabase: which warehouse columns point at which.

The warehouse has no foreign-key constraints (the targets create none), so
Metabase cannot find the relationships itself. They come from two places:

- the foreign-key constraints of the production database, read from its
  catalog and mapped to warehouse names the way the targets name them
  (``"ProgramUpdates"."stackId"`` becomes ``pulumi.programupdates.stackid``);
- ``metabase/relationships.yaml``, a reviewed file for keys production does not
  enforce, such as Segment's ``user_id`` columns. A file entry replaces a
  production constraint on the same column.

For each relationship the column gets semantic type ``type/FK`` and
``fk_target_field_id``, and the target column ``type/PK`` if it lacks it. The
plan is computed first and logged field by field; only fields that differ are
sent with ``PUT /api/field/:id``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from warehouse_sync.config import Settings
from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.client import MetabaseClient, MetabaseError, semantic_type, semantic_type_key
from warehouse_sync.replication import ReplicationSettings, load_replication_settings, warehouse_table_name

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RELATIONSHIPS_PATH = PROJECT_ROOT / "metabase" / "relationships.yaml"
NAME_PATTERN = re.compile(r"^[a-z_][a-z0-9_$]*$")
PK = "type/PK"
FK = "type/FK"

log = logging.getLogger(__name__)

# Column types that join with each other, by Metabase base type and by
# information_schema data type (PostgreSQL and Redshift spell them alike).
TYPE_FAMILIES = {
    "type/Integer": "integer",
    "type/BigInteger": "integer",
    "smallint": "integer",
    "integer": "integer",
    "bigint": "integer",
    "type/Text": "text",
    "character varying": "text",
    "character": "text",
    "text": "text",
    "type/UUID": "uuid",
    "uuid": "uuid",
}

# The production database's single-column foreign keys within one schema, in
# key order. Composite keys come back with several columns and are skipped,
# because a Metabase field points at one field.
PRODUCTION_FOREIGN_KEYS_SQL = """
SELECT c.conname,
       source_table.relname,
       array_agg(source_column.attname ORDER BY k.position),
       target_table.relname,
       array_agg(target_column.attname ORDER BY k.position),
       target_schema.nspname
FROM pg_constraint c
JOIN pg_class source_table ON source_table.oid = c.conrelid
JOIN pg_namespace source_schema ON source_schema.oid = source_table.relnamespace
JOIN pg_class target_table ON target_table.oid = c.confrelid
JOIN pg_namespace target_schema ON target_schema.oid = target_table.relnamespace
CROSS JOIN LATERAL unnest(c.conkey, c.confkey) WITH ORDINALITY AS k(source_attnum, target_attnum, position)
JOIN pg_attribute source_column ON source_column.attrelid = c.conrelid AND source_column.attnum = k.source_attnum
JOIN pg_attribute target_column ON target_column.attrelid = c.confrelid AND target_column.attnum = k.target_attnum
WHERE c.contype = 'f' AND source_schema.nspname = %s
GROUP BY c.conname, source_table.relname, target_table.relname, target_schema.nspname
ORDER BY source_table.relname, c.conname
"""


@dataclass(frozen=True, order=True)
class ColumnRef:
    """A warehouse column by schema, table and column name, all lower case."""

    schema: str
    table: str
    column: str

    @classmethod
    def parse(cls, text: str) -> ColumnRef:
        """Parse ``schema.table.column``; raises ValueError naming the text when it has another form."""
        parts = str(text).strip().lower().split(".")
        if len(parts) != 3 or not all(NAME_PATTERN.match(p) for p in parts):
            raise ValueError(f"{text!r} is not schema.table.column in lower-case warehouse names")
        return cls(*parts)

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}.{self.column}"


@dataclass(frozen=True)
class Relationship:
    """A column that refers to another column, and where that was declared."""

    source: ColumnRef
    target: ColumnRef
    origin: str


@dataclass(frozen=True)
class FieldInfo:
    """One column as Metabase describes it, or the warehouse in a run without Metabase."""

    ref: ColumnRef
    field_id: int | None
    type_family: str
    semantic_type: str | None
    fk_target: ColumnRef | None
    semantic_key: str = "semantic_type"


@dataclass
class FieldChange:
    """The changes one field needs, as sent with ``PUT /api/field/:id``, and why."""

    ref: ColumnRef
    field_id: int | None
    changes: dict
    description: str
    reason: str
    status: str = "planned"  # "planned", "updated" or "failed"


@dataclass
class ForeignKeyPlan:
    """The field changes the relationships need, the fields already right, and what could not be planned."""

    changes: list[FieldChange] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class ForeignKeyReport:
    """The foreign-key step's plan and the changes it sent."""

    plan: ForeignKeyPlan
    relationships: int
    dry_run: bool
    applied: list[FieldChange] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    target: str = "Metabase"

    @property
    def problems(self) -> list[str]:
        return self.plan.problems + self.failures

    def headline(self) -> str:
        if self.dry_run:
            changed = f"{len(self.plan.changes)} field changes planned in {self.target}, none sent"
        else:
            changed = f"{len(self.applied)} of {len(self.plan.changes)} field changes sent"
        return (
            f"{self.relationships} relationships: {changed}; {len(self.plan.up_to_date)} foreign keys up to date; "
            f"{len(self.problems)} problems"
        )

    def rows_for_table(self) -> list[dict]:
        return [
            {"field": str(c.ref), "change": c.description, "from": c.reason, "status": c.status}
            for c in self.plan.changes
        ]


def production_relationships(
    settings: Settings,
    replication: ReplicationSettings | None = None,
    warehouse_schema: str | None = None,
    logger: logging.Logger = log,
) -> list[Relationship]:
    """Read the production database's foreign keys and map them to warehouse columns.

    Only keys between replicated tables count, and a key on a secret column
    (never extracted) is skipped. Each skipped key is logged with its reason.
    """
    replication = replication or load_replication_settings()
    schema = warehouse_schema or settings.warehouse_schema
    with psycopg.connect(**settings.source.conninfo(), connect_timeout=30) as conn:
        rows = conn.execute(PRODUCTION_FOREIGN_KEYS_SQL, (replication.source_schema,)).fetchall()

    relationships = []
    for name, table, columns, target_table, target_columns, target_schema in rows:
        label = f'production constraint "{name}"'
        if len(columns) != 1:
            logger.info("%s on %s (%s) skipped: Metabase cannot show a composite key", label, table, ", ".join(columns))
            continue
        column, target_column = columns[0], target_columns[0]
        rule = replication.tables.get(table)
        target_rule = replication.tables.get(target_table)
        if target_schema != replication.source_schema or rule is None or target_rule is None:
            logger.info("%s on %s.%s skipped: %s.%s is not replicated", label, table, column, target_schema, target_table)
            continue
        if replication.is_secret(rule, column) or replication.is_secret(target_rule, target_column):
            logger.info("%s on %s.%s skipped: a secret column is never extracted", label, table, column)
            continue
        relationships.append(
            Relationship(
                source=ColumnRef(schema, warehouse_table_name(table), column.lower()),
                target=ColumnRef(schema, warehouse_table_name(target_table), target_column.lower()),
                origin=label,
            )
        )
    logger.info("production database: %d foreign keys between replicated tables", len(relationships))
    return relationships


def load_relationships_file(path: str | Path = RELATIONSHIPS_PATH) -> list[Relationship]:
    """Read and check the relationships file, reporting every problem at once."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path} is missing; it lists the relationships production does not enforce") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    entries = raw.get("relationships") if isinstance(raw, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path} needs a top-level 'relationships:' list of entries with 'from' and 'to'")

    problems: list[str] = []
    relationships: list[Relationship] = []
    seen: dict[ColumnRef, int] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"{path.name} entry {number}"
        if not isinstance(entry, dict):
            problems.append(f"{where} is not a mapping with 'from' and 'to'")
            continue
        unknown = sorted(set(entry) - {"from", "to", "note"})
        if unknown:
            problems.append(f"{where} has unknown keys {', '.join(unknown)}; use from, to and note")
        try:
            source = ColumnRef.parse(entry.get("from", ""))
            target = ColumnRef.parse(entry.get("to", ""))
        except ValueError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if source == target:
            problems.append(f"{where}: {source} refers to itself")
            continue
        if source in seen:
            problems.append(f"{where}: {source} is already declared in entry {seen[source]}; a field has one target")
            continue
        seen[source] = number
        relationships.append(Relationship(source, target, origin=path.name))

    if problems:
        raise ConfigError(f"invalid relationships file {path}:\n  - " + "\n  - ".join(problems))
    return relationships


def merge_relationships(
    production: list[Relationship], declared: list[Relationship], logger: logging.Logger = log
) -> list[Relationship]:
    """Combine both lists; a declared relationship replaces a production one on the same column."""
    declared_sources = {r.source: r for r in declared}
    merged = []
    for relationship in production:
        replacement = declared_sources.get(relationship.source)
        if replacement is not None:
            logger.info(
                "%s: %s replaces %s (-> %s)", relationship.source, replacement.origin, relationship.origin, relationship.target
            )
            continue
        merged.append(relationship)
    return merged + declared


def type_family(type_name: str | None) -> str:
    return TYPE_FAMILIES.get(type_name or "", type_name or "unknown")


def catalog_from_metadata(metadata: dict) -> dict[ColumnRef, FieldInfo]:
    """Index the fields of a ``GET /api/database/:id/metadata`` response by column."""
    fields: list[tuple[ColumnRef, dict]] = []
    for table in metadata.get("tables") or []:
        for column in table.get("fields") or []:
            ref = ColumnRef(str(table.get("schema") or "").lower(), str(table["name"]).lower(), str(column["name"]).lower())
            fields.append((ref, column))
    refs_by_id = {column["id"]: ref for ref, column in fields}
    return {
        ref: FieldInfo(
            ref=ref,
            field_id=column["id"],
            type_family=type_family(column.get("base_type")),
            semantic_type=semantic_type(column),
            fk_target=refs_by_id.get(column.get("fk_target_field_id")),
            semantic_key=semantic_type_key(column),
        )
        for ref, column in fields
    }


def catalog_from_warehouse(settings: Settings, schemas: set[str]) -> dict[ColumnRef, FieldInfo]:
    """Index the warehouse's columns of ``schemas`` as Metabase would see them after a sync.

    Primary-key constraints become ``type/PK``, as Metabase's sync marks them.
    Fields have no ids because nothing was read from Metabase.
    """
    with psycopg.connect(**settings.warehouse.conninfo(), connect_timeout=30) as conn:
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ANY(%s)",
            (sorted(schemas),),
        ).fetchall()
        keys = conn.execute(
            "SELECT k.table_schema, k.table_name, k.column_name "
            "FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k "
            "  ON k.constraint_schema = c.constraint_schema AND k.constraint_name = c.constraint_name "
            " AND k.table_name = c.table_name "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = ANY(%s)",
            (sorted(schemas),),
        ).fetchall()
    primary = {ColumnRef(s.lower(), t.lower(), c.lower()) for s, t, c in keys}
    catalog = {}
    for schema, table, column, data_type in columns:
        ref = ColumnRef(schema.lower(), table.lower(), column.lower())
        catalog[ref] = FieldInfo(
            ref=ref,
            field_id=None,
            type_family=type_family(data_type),
            semantic_type=PK if ref in primary else None,
            fk_target=None,
        )
    return catalog


def plan_foreign_keys(
    relationships: list[Relationship],
    catalog: dict[ColumnRef, FieldInfo],
    where: str = "Metabase",
    logger: logging.Logger = log,
) -> ForeignKeyPlan:
    """Work out the field changes the relationships need and log each decision.

    A relationship with an unknown column, or with two columns whose types do
    not join, is a problem and is left out. The others are planned, with the
    primary-key changes first.
    """
    plan = ForeignKeyPlan()
    primary_keys: dict[ColumnRef, FieldChange] = {}
    foreign_keys: list[FieldChange] = []

    for relationship in relationships:
        source = catalog.get(relationship.source)
        target = catalog.get(relationship.target)
        label = f"{relationship.source} -> {relationship.target} ({relationship.origin})"
        unknown = [str(ref) for ref, info in ((relationship.source, source), (relationship.target, target)) if info is None]
        if unknown:
            plan.problems.append(f"{label} skipped: {' and '.join(unknown)} not found in {where}")
            continue
        if source.type_family != target.type_family:
            plan.problems.append(
                f"{label} skipped: the columns' types do not join ({source.type_family} and {target.type_family}); "
                "point the relationship at a column of the same type"
            )
            continue

        if target.semantic_type != PK and relationship.target not in primary_keys:
            primary_keys[relationship.target] = FieldChange(
                ref=relationship.target,
                field_id=target.field_id,
                changes={target.semantic_key: PK},
                description=f"{target.semantic_key}: {target.semantic_type} -> {PK}",
                reason=f"target of {relationship.source}",
            )

        changes, descriptions = {}, []
        if source.semantic_type != FK:
            changes[source.semantic_key] = FK
            descriptions.append(f"{source.semantic_key}: {source.semantic_type} -> {FK}")
        if source.fk_target != relationship.target:
            changes["fk_target_field_id"] = target.field_id
            descriptions.append(f"fk_target_field_id: {source.fk_target or 'none'} -> {relationship.target}")
        if changes:
            foreign_keys.append(
                FieldChange(relationship.source, source.field_id, changes, ", ".join(descriptions), relationship.origin)
            )
        else:
            plan.up_to_date.append(str(relationship.source))
            logger.info("field %s is up to date: %s -> %s", relationship.source, FK, relationship.target)

    plan.changes = list(primary_keys.values()) + foreign_keys
    for change in plan.changes:
        logger.info("field %s will be updated: %s", change.ref, change.description)
    for problem in plan.problems:
        logger.error("%s", problem)
    logger.info(
        "foreign-key plan: %d field changes, %d foreign keys up to date, %d problems",
        len(plan.changes), len(plan.up_to_date), len(plan.problems),
    )
    return plan


def apply_plan(client: MetabaseClient, plan: ForeignKeyPlan, logger: logging.Logger = log) -> tuple[list[FieldChange], list[str]]:
    """Send each planned change; a failed one is logged and collected, and the rest still go.

    Returns the applied changes and the failures.
    """
    applied, failures = [], []
    for change in plan.changes:
        try:
            client.update_field(change.field_id, change.changes)
        except MetabaseError as exc:
            change.status = "failed"
            failures.append(f"field {change.ref} was not updated: {exc}")
            logger.error("field %s was not updated: %s", change.ref, exc)
            continue
        change.status = "updated"
        applied.append(change)
        logger.info("field %s updated: %s", change.ref, change.description)
    return applied, failures


def desired_relationships(
    settings: Settings, relationships_path: str | Path = RELATIONSHIPS_PATH, logger: logging.Logger = log
) -> list[Relationship]:
    """Return the production database's foreign keys merged with the relationships file."""
    declared = load_relationships_file(relationships_path)
    return merge_relationships(production_relationships(settings, logger=logger), declared, logger)


def sync_foreign_keys(
    client: MetabaseClient,
    database_id: int,
    relationships: list[Relationship],
    dry_run: bool = False,
    logger: logging.Logger = log,
) -> ForeignKeyReport:
    """Plan the relationships against Metabase's metadata and send the field changes (none with ``dry_run``)."""
    catalog = catalog_from_metadata(client.get_database_metadata(database_id))
    plan = plan_foreign_keys(relationships, catalog, "Metabase", logger)
    report = ForeignKeyReport(plan=plan, relationships=len(relationships), dry_run=dry_run)
    if dry_run:
        logger.info("dry run: %d field changes not sent", len(plan.changes))
        return report
    report.applied, report.failures = apply_plan(client, plan, logger)
    logger.info("foreign keys: %s", report.headline())
    return report


def plan_foreign_keys_in_warehouse(
    settings: Settings, relationships: list[Relationship], logger: logging.Logger = log
) -> ForeignKeyReport:
    """Plan the relationships against the warehouse's information_schema, for a run without Metabase."""
    schemas = {r.source.schema for r in relationships} | {r.target.schema for r in relationships}
    catalog = catalog_from_warehouse(settings, schemas)
    plan = plan_foreign_keys(relationships, catalog, "the warehouse", logger)
    return ForeignKeyReport(plan=plan, relationships=len(relationships), dry_run=True, target="the warehouse")
