"""Warehouse tables of one source: their columns, column types and names.

The registry is part of the tap's bookmark, so a column keeps its name and
type from run to run and the JSON schema of each stream is stable. Names are
given in order of first appearance, which is deterministic because files are
read in (LastModified, key) order and lines in file order:

* A message path (``properties.firstName``) whose converted name is already a
  column of the table gets the first free ``<name>_<n>``, n = 2, 3, ...
  Standard columns (``id``, ``user_id``, ``event``, ...) and
  ``properties_overflow`` are always taken, so ``properties.userId`` is stored
  in ``user_id_2``. Segment's own loader discards such properties, according
  to its Warehouse Schemas documentation.
* An event whose table name is a built-in table (``pages``, ``users``, ...)
  gets the first free ``<name>_<n>`` as well. Events whose names convert to
  the same table name share that table, because Segment names event tables
  by the converted name. The ``event_text`` column distinguishes them.
* Past ``max_property_columns`` columns from properties, traits and context,
  a table's new paths go to the JSON text column ``properties_overflow``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from tap_segment import naming
from tap_segment.values import STRING, TYPES, json_schema, merge_types

logger = logging.getLogger(__name__)

OVERFLOW_COLUMN = "properties_overflow"
# Overflowing paths logged by name per table and run; later ones are counted.
MAX_LOGGED_OVERFLOW_PATHS = 20


@dataclass(slots=True)
class Column:
    """A table column and the message path it is read from, which is None for standard columns."""

    name: str
    type: str
    path: tuple[str, ...] | None = None
    long_text: bool = False

    def to_state(self) -> dict:
        document: dict = {"type": self.type}
        if self.path is not None:
            document["path"] = list(self.path)
        if self.long_text:
            document["long_text"] = True
        return document


class Table:
    """One warehouse table: its columns in order of creation and the paths they are read from."""

    def __init__(self, name: str, standard_columns: dict[str, str], long_text_columns: frozenset[str] = frozenset()):
        self.name = name
        self.columns: dict[str, Column] = {}
        self.by_path: dict[tuple[str, ...], str] = {}
        self.taken_names = set(standard_columns) | {OVERFLOW_COLUMN}
        self.property_column_count = 0
        # Incremented whenever a column is added or widened, so the caller can
        # tell when a new SCHEMA message is due.
        self.version = 0
        # Column types as of the last commit(): the last SCHEMA message or the bookmark.
        self.committed_types: dict[str, str] = {}
        # Columns whose values in the current batch need values.convert before
        # they are written: a non-string value in a string column, or a
        # timestamp with an offset other than Z.
        self.columns_to_convert: set[str] = set()
        self.overflowed_paths: set[tuple[str, ...]] = set()
        for column_name, column_type in standard_columns.items():
            self.columns[column_name] = Column(column_name, column_type, long_text=column_name in long_text_columns)

    def add_path_column(self, path: tuple[str, ...], name: str, column_type: str, max_columns: int, max_bytes: int) -> str | None:
        """Create the column for ``path`` and return its name, or None when the table is full.

        ``name`` is the converted name. If it is taken, the column gets the first free numeric suffix.
        """
        if self.property_column_count >= max_columns:
            self._log_overflow(path, max_columns)
            return None
        column_name = naming.first_free_name(name, self.taken_names, max_bytes)
        if column_name != name:
            logger.warning(
                "Table %s: the name %s for %s is taken, so its values go to column %s",
                self.name, name, ".".join(path), column_name,
            )
        self.columns[column_name] = Column(column_name, column_type, path)
        self.taken_names.add(column_name)
        self.by_path[path] = column_name
        self.property_column_count += 1
        self.version += 1
        return column_name

    def add_overflow_column(self) -> None:
        if OVERFLOW_COLUMN not in self.columns:
            self.columns[OVERFLOW_COLUMN] = Column(OVERFLOW_COLUMN, STRING, long_text=True)
            self.version += 1

    def widen(self, column: Column, value_type: str) -> None:
        """Widen ``column`` so that it fits a value of ``value_type``."""
        widened = merge_types(column.type, value_type)
        # Values added before, in this batch, may be numbers or booleans too.
        if widened == STRING and (column.type != STRING or value_type != STRING):
            self.columns_to_convert.add(column.name)
        if widened != column.type:
            column.type = widened
            self.version += 1

    def commit(self) -> dict[str, tuple[str, str]]:
        """Record the current column types and return the columns widened since the last commit.

        The result maps a column name to (old type, new type). Columns created
        since the last commit are not in it, whatever their first values were.
        """
        changes = {}
        for column in self.columns.values():
            old_type = self.committed_types.get(column.name)
            if old_type is not None and old_type != column.type:
                changes[column.name] = (old_type, column.type)
        self.committed_types = self.column_types()
        return changes

    def schema(self) -> dict:
        """Return the stream's JSON schema, with the columns in order of creation."""
        return {
            "type": "object",
            "properties": {column.name: json_schema(column.type, column.long_text) for column in self.columns.values()},
        }

    def column_types(self) -> dict[str, str]:
        return {column.name: column.type for column in self.columns.values()}

    def to_state(self) -> dict:
        return {"columns": {column.name: column.to_state() for column in self.columns.values()}}

    def load_state(self, document: dict) -> None:
        """Restore the columns recorded in a bookmark, over the standard columns."""
        for column_name, column_document in document.get("columns", {}).items():
            column_type = column_document.get("type")
            if column_type not in TYPES:
                raise ValueError(f"column {column_name} of table {self.name} has the unknown type {column_type!r}")
            path = column_document.get("path")
            column = Column(column_name, column_type, tuple(path) if path is not None else None, bool(column_document.get("long_text")))
            self.columns[column_name] = column
            self.taken_names.add(column_name)
            if column.path is not None:
                self.by_path[column.path] = column_name
                self.property_column_count += 1
        self.committed_types = self.column_types()

    def _log_overflow(self, path: tuple[str, ...], max_columns: int) -> None:
        if path in self.overflowed_paths:
            return
        self.overflowed_paths.add(path)
        count = len(self.overflowed_paths)
        if count <= MAX_LOGGED_OVERFLOW_PATHS:
            logger.warning(
                "Table %s has %d property columns (max_property_columns), so %s goes to column %s",
                self.name, max_columns, ".".join(path), OVERFLOW_COLUMN,
            )
        elif count == MAX_LOGGED_OVERFLOW_PATHS + 1:
            logger.warning("Table %s: more paths go to column %s; the summary counts them", self.name, OVERFLOW_COLUMN)
