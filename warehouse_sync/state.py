"""State stores: where Singer state (the bookmarks) is kept between runs.

The state of one pipeline is one JSON document: ``{"bookmarks": {stream: {...}},
"currently_syncing": stream or null}``. It is saved every time the target
emits a STATE message, which the target does only after committing the rows
before it, so a saved bookmark never runs ahead of the warehouse.

Two stores:

* ``WarehouseStateStore`` (the default): a table in the warehouse, in its own
  schema (``_etl.singer_state``), so any worker can resume any pipeline. The
  JSON is kept in a text column because Redshift has no jsonb, and written
  with DELETE and INSERT in one transaction because Redshift has no upsert.
* ``FileStateStore``: a local JSON file, for development.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import psycopg
from psycopg import errors, sql

from warehouse_sync.config import DatabaseSettings

STATE_TABLE = "singer_state"
DDL_ATTEMPTS = 3


def run_ddl_once(conn: psycopg.Connection, statements: list) -> None:
    """Run IF NOT EXISTS statements in one transaction, tolerating a concurrent creator.

    Two processes that create the same schema or table at once can both pass
    PostgreSQL's IF NOT EXISTS check, and the second then fails with a
    unique violation. A second attempt finds the object and does nothing.
    """
    for attempt in range(DDL_ATTEMPTS):
        try:
            with conn.transaction():
                for statement in statements:
                    conn.execute(statement)
            return
        except (errors.UniqueViolation, errors.DuplicateSchema, errors.DuplicateTable, errors.DuplicateObject):
            if attempt == DDL_ATTEMPTS - 1:
                raise


class StateStore(Protocol):
    """Load and save the state document of a pipeline."""

    def load(self, pipeline: str) -> dict: ...

    def save(self, pipeline: str, state: dict) -> None: ...

    def pipelines(self) -> list[tuple[str, datetime | None]]: ...

    def close(self) -> None: ...


def empty_state() -> dict:
    return {"bookmarks": {}, "currently_syncing": None}


def reset_streams(state: dict, streams: list[str]) -> tuple[dict, list[str]]:
    """Return a copy of ``state`` without the bookmarks of ``streams``, and the ones removed."""
    bookmarks = dict(state.get("bookmarks") or {})
    removed = [s for s in streams if bookmarks.pop(s, None) is not None]
    currently_syncing = state.get("currently_syncing")
    if currently_syncing in streams:
        currently_syncing = None
    return {**state, "bookmarks": bookmarks, "currently_syncing": currently_syncing}, removed


class FileStateStore:
    """State documents in one local JSON file, replaced atomically on each save."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def _read_all(self) -> dict:
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text())

    def load(self, pipeline: str) -> dict:
        return self._read_all().get(pipeline, {}).get("state") or empty_state()

    def save(self, pipeline: str, state: dict) -> None:
        documents = self._read_all()
        documents[pipeline] = {"state": state, "updated_at": datetime.now(timezone.utc).isoformat()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name)
        with os.fdopen(handle, "w") as out:
            json.dump(documents, out, indent=2, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    def pipelines(self) -> list[tuple[str, datetime | None]]:
        return [
            (name, datetime.fromisoformat(doc["updated_at"]) if doc.get("updated_at") else None)
            for name, doc in sorted(self._read_all().items())
        ]

    def close(self) -> None:
        pass


class WarehouseStateStore:
    """State documents in ``<schema>.singer_state`` in the warehouse.

    The connection stays open for the whole run so each STATE message costs
    one short transaction.
    """

    def __init__(self, database: DatabaseSettings, schema: str = "_etl"):
        self.schema = schema
        self.table = sql.Identifier(schema, STATE_TABLE)
        self.conn = psycopg.connect(**database.conninfo(), connect_timeout=30)
        self._create_table()

    def _create_table(self) -> None:
        run_ddl_once(self.conn, [
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)),
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ("
                " pipeline VARCHAR(256) NOT NULL PRIMARY KEY,"
                " state VARCHAR(65535) NOT NULL,"
                " updated_at TIMESTAMP NOT NULL)"
            ).format(self.table),
        ])

    def load(self, pipeline: str) -> dict:
        row = self.conn.execute(
            sql.SQL("SELECT state FROM {} WHERE pipeline = %s").format(self.table), (pipeline,)
        ).fetchone()
        self.conn.commit()
        return json.loads(row[0]) if row else empty_state()

    def save(self, pipeline: str, state: dict) -> None:
        document = json.dumps(state, sort_keys=True)
        with self.conn.transaction():
            self.conn.execute(sql.SQL("DELETE FROM {} WHERE pipeline = %s").format(self.table), (pipeline,))
            self.conn.execute(
                sql.SQL("INSERT INTO {} (pipeline, state, updated_at) VALUES (%s, %s, %s)").format(self.table),
                (pipeline, document, datetime.now(timezone.utc).replace(tzinfo=None)),
            )

    def pipelines(self) -> list[tuple[str, datetime | None]]:
        rows = self.conn.execute(
            sql.SQL("SELECT pipeline, updated_at FROM {} ORDER BY pipeline").format(self.table)
        ).fetchall()
        self.conn.commit()
        return [(name, updated.replace(tzinfo=timezone.utc)) for name, updated in rows]

    def close(self) -> None:
        self.conn.close()
