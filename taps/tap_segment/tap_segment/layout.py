"""Segment's warehouse layout: which tables a message goes to, and their columns.

Every message goes to the table of its type (``tracks``, ``pages``, ``screens``,
``identifies``, ``groups``, ``aliases``). A track also goes to the table of its
event, which has the ``tracks`` columns plus the event's properties. An
identify with a ``userId`` updates that user's row in ``users``.

Nested ``properties``, ``traits`` and ``context`` objects are flattened with
``_`` (``context.library.name`` becomes ``context_library_name``), arrays are
stored as JSON text, and nulls and empty objects make no column. Properties
and traits become columns under their own names, context fields under
``context_<name>``. These message fields are not stored: ``integrations``,
``_metadata``, ``channel``, ``projectId``, ``version``, ``type`` and
``writeKey``, which is a credential.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from tap_segment import naming
from tap_segment.tables import OVERFLOW_COLUMN, Table
from tap_segment.values import INTEGER, STRING, TIMESTAMP, parse_timestamp, text_form, value_type

logger = logging.getLogger(__name__)

MESSAGE_TYPES = ("track", "page", "screen", "identify", "group", "alias")
TYPE_TABLES = {
    "track": "tracks",
    "page": "pages",
    "screen": "screens",
    "identify": "identifies",
    "group": "groups",
    "alias": "aliases",
}
USERS_TABLE = "users"
REJECTS_TABLE = "rejects"

_COMMON_COLUMNS = {
    "id": STRING,
    "received_at": TIMESTAMP,
    "sent_at": TIMESTAMP,
    "timestamp": TIMESTAMP,
    "original_timestamp": TIMESTAMP,
    "anonymous_id": STRING,
    "user_id": STRING,
    "uuid_ts": TIMESTAMP,
}
# Standard columns of each built-in table and of every event table.
STANDARD_COLUMNS = {
    "tracks": {**_COMMON_COLUMNS, "event": STRING, "event_text": STRING},
    "pages": {**_COMMON_COLUMNS, "name": STRING, "category": STRING},
    "screens": {**_COMMON_COLUMNS, "name": STRING, "category": STRING},
    "identifies": dict(_COMMON_COLUMNS),
    "groups": {**_COMMON_COLUMNS, "group_id": STRING},
    "aliases": {**_COMMON_COLUMNS, "previous_id": STRING},
    USERS_TABLE: {"id": STRING, "received_at": TIMESTAMP, "uuid_ts": TIMESTAMP},
    REJECTS_TABLE: {
        "id": STRING,
        "file_key": STRING,
        "line_number": INTEGER,
        "reason": STRING,
        "detail": STRING,
        "raw": STRING,
        "uuid_ts": TIMESTAMP,
    },
}
EVENT_TABLE_COLUMNS = STANDARD_COLUMNS["tracks"]
BUILTIN_TABLES = frozenset(STANDARD_COLUMNS)
_LONG_TEXT_COLUMNS = {REJECTS_TABLE: frozenset({"raw"})}

# Message fields copied to the common columns.
_COMMON_FIELDS = (
    ("received_at", "receivedAt"),
    ("sent_at", "sentAt"),
    ("timestamp", "timestamp"),
    ("original_timestamp", "originalTimestamp"),
    ("anonymous_id", "anonymousId"),
    ("user_id", "userId"),
)
_TEXT_COLUMNS = frozenset({"anonymous_id", "user_id"})

# A flattened value: its path in the message, the value and its values.value_type.
Leaf = tuple[tuple[str, ...], object, str]
Row = dict[str, object]

# Objects nested deeper than this are rejected. Their column names would be
# longer than the 127-byte limit anyway, and Python's recursion limit (1,000
# frames by default) would stop the flattening soon after.
MAX_NESTING_DEPTH = 100


class NestingTooDeepError(ValueError):
    """A message contains objects or arrays nested too deeply to store."""


def validate_message(message: object) -> tuple[str, str] | None:
    """Return (reason, detail) if ``message`` cannot be loaded, else None.

    A ``type`` in upper or mixed case is lower-cased in place.
    """
    if type(message) is not dict:
        return "not_an_object", f"the line is a JSON {type(message).__name__}, not an object"
    if message.get("messageId") in (None, ""):
        return "missing_message_id", "the message has no messageId"
    message_type = message.get("type")
    if message_type in (None, ""):
        return "missing_type", "the message has no type"
    if type(message_type) is str and message_type not in MESSAGE_TYPES:
        message_type = message["type"] = message_type.lower()
    if message_type not in MESSAGE_TYPES:
        return "unsupported_type", f"type {message_type!r} is not one of {', '.join(MESSAGE_TYPES)}"
    if message_type == "track" and message.get("event") in (None, ""):
        return "missing_event", "the track message has no event name"
    return None


def flatten(document: dict, prefix: tuple[str, ...], leaves: list[Leaf]) -> None:
    """Append the leaves of ``document`` that are not null to ``leaves``.

    Arrays are leaves, stored as JSON text. Raises NestingTooDeepError past
    MAX_NESTING_DEPTH levels of objects, or for an array too deep to encode.
    """
    for key, value in document.items():
        if value is None:
            continue
        path = prefix + (key,)
        kind = type(value)
        if kind is dict:
            if len(path) > MAX_NESTING_DEPTH:
                raise NestingTooDeepError(f"{'.'.join(path[:3])}... is nested more than {MAX_NESTING_DEPTH} levels deep")
            flatten(value, path, leaves)
        elif kind is list:
            # Encoded here, so that an array too deep to encode rejects its message.
            try:
                text = json.dumps(value, ensure_ascii=False)
            except RecursionError as error:
                raise NestingTooDeepError(f"the array {'.'.join(path[:3])} is nested too deeply to encode") from error
            leaves.append((path, text, STRING))
        else:
            leaves.append((path, value, value_type(value)))


def _nest(leaves: list[Leaf]) -> dict:
    """Rebuild a nested object from leaves."""
    document: dict = {}
    for path, value, _ in leaves:
        node = document
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node[path[-1]] = value
    return document


class TableRegistry:
    """The tables of one source, created as messages arrive, and the event-to-table mapping."""

    def __init__(self, max_property_columns: int, max_identifier_bytes: int):
        self.max_property_columns = max_property_columns
        self.max_identifier_bytes = max_identifier_bytes
        self.tables: dict[str, Table] = {}
        # Converted event name -> table name.
        self.event_tables: dict[str, str] = {}
        self._tables_by_event_text: dict[str, Table] = {}

    def table(self, name: str) -> Table:
        """Return the built-in table ``name``, creating it on first use."""
        table = self.tables.get(name)
        if table is None:
            table = Table(name, STANDARD_COLUMNS[name], _LONG_TEXT_COLUMNS.get(name, frozenset()))
            self.tables[name] = table
        return table

    def event_table(self, event_text: str) -> Table:
        """Return the table of the track event ``event_text``, creating it on first use."""
        table = self._tables_by_event_text.get(event_text)
        if table is not None:
            return table

        converted = naming.identifier([event_text], "unnamed_event", self.max_identifier_bytes)
        name = self.event_tables.get(converted)
        if name is None:
            taken_names = BUILTIN_TABLES | set(self.event_tables.values())
            name = naming.first_free_name(converted, taken_names, self.max_identifier_bytes)
            if name != converted:
                logger.warning(
                    "Event %r converts to the table name %s, which is taken, so it goes to table %s",
                    event_text, converted, name,
                )
            self.event_tables[converted] = name

        table = self.tables.get(name)
        if table is None:
            table = Table(name, EVENT_TABLE_COLUMNS)
            self.tables[name] = table
        self._tables_by_event_text[event_text] = table
        return table

    def column_name(self, path: tuple[str, ...]) -> str:
        """Return the converted column name of a message path, before collisions are resolved.

        ``properties`` or ``traits`` that are not objects are stored under that word.
        """
        if path[0] == "context" or len(path) == 1:
            return naming.identifier(path, path[0], self.max_identifier_bytes)
        return naming.identifier(path[1:], "unnamed_property", self.max_identifier_bytes)

    def to_state(self) -> dict:
        return {
            "tables": {name: table.to_state() for name, table in self.tables.items()},
            "event_tables": dict(self.event_tables),
        }

    def load_state(self, document: dict) -> None:
        """Restore tables and event tables from a bookmark written by ``to_state``."""
        self.event_tables = dict(document.get("event_tables", {}))
        event_table_names = set(self.event_tables.values())
        for name, table_document in document.get("tables", {}).items():
            if name in BUILTIN_TABLES:
                table = Table(name, STANDARD_COLUMNS[name], _LONG_TEXT_COLUMNS.get(name, frozenset()))
            elif name in event_table_names:
                table = Table(name, EVENT_TABLE_COLUMNS)
            else:
                raise ValueError(f"table {name} in the bookmark is neither a built-in table nor in event_tables")
            table.load_state(table_document)
            self.tables[name] = table


@dataclass(slots=True)
class _UserTraits:
    """The traits of one user merged over the identifies read in this run."""

    timestamp: datetime | None
    received_at: object
    # Path -> (value, value type).
    traits: dict[tuple[str, ...], tuple[object, str]] = field(default_factory=dict)


class RowBuilder:
    """Turns valid Segment messages into table rows, creating columns and widening their types.

    A row maps column names to JSON values as they came in the message. Once a
    batch's types are final, the caller applies ``values.convert`` to the
    columns in ``Table.columns_to_convert``; every other value is already in
    its written form.
    """

    def __init__(self, registry: TableRegistry):
        self.registry = registry
        self._users: dict[str, _UserTraits] = {}
        self._changed_users: list[str] = []
        self.overflow_counts: dict[str, int] = {}

    def rows(self, message: dict, uuid_ts: str) -> list[tuple[Table, Row]]:
        """Return the rows of a message that ``validate_message`` accepted."""
        message_type = message["type"]
        message_id = message["messageId"]
        common: Row = {"id": message_id if type(message_id) is str else text_form(message_id)}
        for column_name, field_name in _COMMON_FIELDS:
            value = message.get(field_name)
            if value is not None:
                if column_name in _TEXT_COLUMNS and type(value) is not str:
                    value = text_form(value)
                common[column_name] = value
        common_types = {column_name: value_type(value) for column_name, value in common.items()}
        # uuid_ts is this tap's own UTC timestamp, so it needs no check.
        common["uuid_ts"] = uuid_ts
        common_types["uuid_ts"] = TIMESTAMP

        context_leaves: list[Leaf] = []
        context = message.get("context")
        if type(context) is dict:
            flatten(context, ("context",), context_leaves)

        if message_type == "track":
            return self._track_rows(message, common, common_types, context_leaves)

        table = self.registry.table(TYPE_TABLES[message_type])
        row = self._standard_row(table, common, common_types)
        if message_type in ("page", "screen"):
            self._add_page_fields(table, row, message)
        elif message_type == "identify":
            self._remember_traits(message)
        elif message_type == "group" and message.get("groupId") is not None:
            self._add(table, row, "group_id", text_form(message["groupId"]))
        elif message_type == "alias" and message.get("previousId") is not None:
            self._add(table, row, "previous_id", text_form(message["previousId"]))

        leaves = context_leaves
        if message_type in ("page", "screen"):
            self._flatten_object(message.get("properties"), "properties", leaves, skip=row)
        elif message_type in ("identify", "group"):
            self._flatten_object(message.get("traits"), "traits", leaves)
        self._add_leaves(table, row, leaves)
        return [(table, row)]

    def reject_row(self, file_key: str, line_number: int, reason: str, detail: str, raw: str, uuid_ts: str) -> tuple[Table, Row]:
        """Return the ``rejects`` row of a line. Its id is stable across runs, so a reload replaces the row."""
        table = self.registry.table(REJECTS_TABLE)
        row = {
            "id": f"{file_key}:{line_number}",
            "file_key": file_key,
            "line_number": line_number,
            "reason": reason,
            "detail": detail,
            "raw": raw,
            "uuid_ts": uuid_ts,
        }
        return table, row

    def changed_user_rows(self, uuid_ts: str) -> list[tuple[Table, Row]]:
        """Return a ``users`` row for every user identified since the last call."""
        if not self._changed_users:
            return []
        table = self.registry.table(USERS_TABLE)
        rows = []
        for user_id in self._changed_users:
            user = self._users[user_id]
            row: Row = {"id": user_id, "uuid_ts": uuid_ts}
            if user.received_at is not None:
                self._add(table, row, "received_at", user.received_at)
            self._add_leaves(table, row, [(path, value, kind) for path, (value, kind) in user.traits.items()])
            rows.append((table, row))
        self._changed_users.clear()
        return rows

    def _track_rows(self, message: dict, common: Row, common_types: dict[str, str], context_leaves: list[Leaf]) -> list[tuple[Table, Row]]:
        event_text = text_form(message["event"])
        event_table = self.registry.event_table(event_text)
        tracks = self.registry.table("tracks")

        tracks_row = self._standard_row(tracks, common, common_types)
        tracks_row["event"] = event_table.name
        tracks_row["event_text"] = event_text
        self._add_leaves(tracks, tracks_row, context_leaves)

        event_row = self._standard_row(event_table, common, common_types)
        event_row["event"] = event_table.name
        event_row["event_text"] = event_text
        leaves = list(context_leaves)
        self._flatten_object(message.get("properties"), "properties", leaves)
        self._add_leaves(event_table, event_row, leaves)
        return [(tracks, tracks_row), (event_table, event_row)]

    @staticmethod
    def _standard_row(table: Table, common: Row, common_types: dict[str, str]) -> Row:
        columns = table.columns
        for column_name, kind in common_types.items():
            column = columns[column_name]
            if kind != column.type:
                table.widen(column, kind)
            elif kind == TIMESTAMP and common[column_name][-1] != "Z":
                table.columns_to_convert.add(column_name)
        return dict(common)

    def _add_page_fields(self, table: Table, row: Row, message: dict) -> None:
        properties = message.get("properties")
        properties = properties if type(properties) is dict else {}
        for column_name in ("name", "category"):
            value = message.get(column_name)
            if value is None:
                value = properties.get(column_name)
            if value is not None:
                self._add(table, row, column_name, text_form(value))

    @staticmethod
    def _flatten_object(document: object, root: str, leaves: list[Leaf], skip: Row | None = None) -> None:
        """Flatten ``document`` under ``root``. A value that is not an object becomes the leaf ``root``.

        With ``skip``, a top-level ``name`` or ``category`` equal to the row's
        value of that column is left out, because analytics.js sends the page
        name both as ``name`` and as ``properties.name``.
        """
        if document is None:
            return
        if type(document) is not dict:
            flatten({root: document}, (), leaves)
            return
        if skip is not None:
            document = {
                key: value
                for key, value in document.items()
                if not (key in ("name", "category") and skip.get(key) == value)
            }
        flatten(document, (root,), leaves)

    def _remember_traits(self, message: dict) -> None:
        user_id = message.get("userId")
        if user_id is None:
            return
        user_id = text_form(user_id)
        traits = message.get("traits")
        leaves: list[Leaf] = []
        if type(traits) is dict:
            flatten(traits, ("traits",), leaves)
        moment = parse_timestamp(message["timestamp"]) if type(message.get("timestamp")) is str else None

        user = self._users.get(user_id)
        if user is None:
            user = _UserTraits(moment, message.get("receivedAt"))
            self._users[user_id] = user
        if user.timestamp is None or moment is None or moment >= user.timestamp:
            # The newest identify so far: its traits win.
            if moment is not None:
                user.timestamp = moment
                user.received_at = message.get("receivedAt")
            for path, value, kind in leaves:
                user.traits[path] = (value, kind)
        else:
            # An older identify read late: it only fills in traits not seen yet.
            for path, value, kind in leaves:
                user.traits.setdefault(path, (value, kind))
        if user_id not in self._changed_users:
            self._changed_users.append(user_id)

    @staticmethod
    def _add(table: Table, row: Row, column_name: str, value: object) -> None:
        column = table.columns[column_name]
        kind = value_type(value)
        if kind != column.type:
            table.widen(column, kind)
        elif kind == TIMESTAMP and value[-1] != "Z":
            table.columns_to_convert.add(column_name)
        row[column_name] = value

    def _add_leaves(self, table: Table, row: Row, leaves: list[Leaf]) -> None:
        overflow: list[Leaf] = []
        by_path = table.by_path
        columns = table.columns
        for leaf in leaves:
            path, value, kind = leaf
            column_name = by_path.get(path)
            if column_name is None:
                column_name = table.add_path_column(
                    path,
                    self.registry.column_name(path),
                    kind,
                    self.registry.max_property_columns,
                    self.registry.max_identifier_bytes,
                )
                if column_name is None:
                    overflow.append(leaf)
                    continue
            column = columns[column_name]
            if kind != column.type:
                table.widen(column, kind)
            elif kind == STRING:
                if type(value) is not str:
                    table.columns_to_convert.add(column_name)
            elif kind == TIMESTAMP and value[-1] != "Z":
                table.columns_to_convert.add(column_name)
            row[column_name] = value
        if overflow:
            table.add_overflow_column()
            row[OVERFLOW_COLUMN] = json.dumps(_nest(overflow), ensure_ascii=False)
            self.overflow_counts[table.name] = self.overflow_counts.get(table.name, 0) + len(overflow)
