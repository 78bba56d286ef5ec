"""Make Metabase see the warehouse's current tables and columns.

``POST /api/database/:id/sync_schema`` only starts Metabase's sync, which runs
in the background, so the step then polls ``GET /api/database/:id/metadata``
until every expected column is there or the time-out passes. Whatever is still
missing then is reported by name, and the later steps go on with what exists.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psycopg

from warehouse_sync.config import Settings
from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.client import MetabaseClient

# Missing names listed in a log line or a problem, at most.
LISTED_NAMES = 20

log = logging.getLogger(__name__)

Column = tuple[str, str, str]  # (schema, table, column), lower case


@dataclass
class SchemaSyncReport:
    """The schema sync step's outcome: the database, the polls and seconds it took, and what is still missing."""

    database_id: int
    database_name: str
    expected_columns: int
    triggered: bool
    polls: int = 0
    seconds: float = 0.0
    timeout_seconds: float = 0.0
    missing: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        if not self.missing:
            return []
        listed = ", ".join(self.missing[:LISTED_NAMES])
        more = f" and {len(self.missing) - LISTED_NAMES} more" if len(self.missing) > LISTED_NAMES else ""
        wait = f"after {self.timeout_seconds:g} s" if self.triggered else "(dry run: no sync was started)"
        problem = (
            f"Metabase database {self.database_name!r} still lacks {len(self.missing)} warehouse tables or "
            f"columns {wait}: {listed}{more}; check the database's schema filters in Metabase's admin "
            "settings, or raise METABASE_SYNC_TIMEOUT_SECONDS"
        )
        return [problem]

    def headline(self) -> str:
        if self.missing:
            state = f"{len(self.missing)} tables or columns still missing"
        else:
            state = f"all {self.expected_columns} warehouse columns present"
        started = "sync started" if self.triggered else "dry run, no sync started"
        return f"database {self.database_name!r} (id {self.database_id}): {started}; {state} after {self.polls} polls, {self.seconds:.1f} s"


def find_database(client: MetabaseClient, name_or_id: str) -> dict:
    """Return the Metabase database with this name (any case) or numeric id.

    Raises ConfigError naming the databases the user can see when there is no
    match, or several with that name.
    """
    databases = client.get_databases()
    if name_or_id.isdigit():
        matches = [d for d in databases if d.get("id") == int(name_or_id)]
    else:
        matches = [d for d in databases if d.get("name") == name_or_id]
        if not matches:
            matches = [d for d in databases if str(d.get("name", "")).lower() == name_or_id.lower()]
    if len(matches) == 1:
        return matches[0]
    visible = ", ".join(f"{d.get('name')!r} (id {d.get('id')})" for d in databases) or "none"
    if not matches:
        raise ConfigError(
            f"Metabase has no database {name_or_id!r}; databases this user can see: {visible}. "
            "Set METABASE_DATABASE to one of these names or ids."
        )
    ids = ", ".join(str(d.get("id")) for d in matches)
    raise ConfigError(f"Metabase has several databases named {name_or_id!r} (ids {ids}); set METABASE_DATABASE to the id")


def warehouse_columns(settings: Settings, schemas: Iterable[str]) -> set[Column]:
    """Return every (schema, table, column) of the given warehouse schemas, from information_schema."""
    with psycopg.connect(**settings.warehouse.conninfo(), connect_timeout=30) as conn:
        rows = conn.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = ANY(%s)",
            (list(schemas),),
        ).fetchall()
    return {(s.lower(), t.lower(), c.lower()) for s, t, c in rows}


def metadata_columns(metadata: dict) -> set[Column]:
    """Return every (schema, table, column) in a ``GET /api/database/:id/metadata`` response."""
    columns = set()
    for table in metadata.get("tables") or []:
        schema = str(table.get("schema") or "").lower()
        name = str(table.get("name") or "").lower()
        for column in table.get("fields") or []:
            columns.add((schema, name, str(column.get("name") or "").lower()))
    return columns


def missing_names(expected: set[Column], present: set[Column]) -> list[str]:
    """Name what ``present`` lacks: a whole table as ``schema.table``, else each ``schema.table.column``."""
    present_tables = {(s, t) for s, t, _ in present}
    missing_tables = sorted({(s, t) for s, t, _ in expected if (s, t) not in present_tables})
    missing_columns = sorted(c for c in expected - present if (c[0], c[1]) in present_tables)
    return [f"{s}.{t}" for s, t in missing_tables] + [".".join(c) for c in missing_columns]


def sync_schema(
    client: MetabaseClient,
    database: dict,
    expected: set[Column],
    timeout_seconds: float,
    poll_seconds: float,
    dry_run: bool = False,
    logger: logging.Logger = log,
    sleep: Callable[[float], None] = time.sleep,
) -> SchemaSyncReport:
    """Start Metabase's schema sync and wait until every expected column is in its metadata.

    With ``dry_run`` no sync is started and the metadata is read once.
    """
    report = SchemaSyncReport(
        database_id=database["id"],
        database_name=str(database.get("name")),
        expected_columns=len(expected),
        triggered=not dry_run,
        timeout_seconds=timeout_seconds,
    )
    started = time.monotonic()
    if dry_run:
        logger.info("dry run: not starting Metabase's schema sync of database %r", report.database_name)
    else:
        client.sync_database_schema(report.database_id)
        logger.info("started Metabase's schema sync of database %r (id %d)", report.database_name, report.database_id)

    deadline = started + timeout_seconds
    while True:
        metadata = client.get_database_metadata(report.database_id)
        report.polls += 1
        report.missing = missing_names(expected, metadata_columns(metadata))
        if not report.missing or dry_run or time.monotonic() + poll_seconds > deadline:
            break
        logger.info(
            "waiting %g s for Metabase to sync %d tables or columns, for example %s",
            poll_seconds, len(report.missing), ", ".join(report.missing[:5]),
        )
        sleep(poll_seconds)

    report.seconds = time.monotonic() - started
    logger.info("Metabase schema sync: %s", report.headline())
    for problem in report.problems:
        logger.error("%s", problem)
    return report
