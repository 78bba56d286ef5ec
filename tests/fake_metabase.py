"""A fake Metabase API for the tests: a threaded HTTP server on 127.0.0.1.

It serves the endpoints this project calls the way Metabase 0.48 and later
document them, with the quirks the client must handle:

- ``POST /api/session`` returns ``{"id": token}``; a bad password is a 401 with a
  JSON ``errors`` map. Other endpoints take ``X-Metabase-Session`` or
  ``x-api-key``, and without a valid one return 401 with the plain-text body
  ``Unauthenticated``. ``expire_session_after`` ends each session after that
  many requests, as an expired session would.
- 403 responses are plain text too (``forbid``).
- Lists: ``GET /api/database`` and collection items are wrapped in
  ``{"data": [...]}``, ``GET /api/collection`` is a bare list. ``wrap_lists``
  set to True or False wraps every list or none, so both shapes are tested.
- ``semantic_key="special_type"`` names fields' semantic types as before 0.39.
- The metadata of a database lacks its ``pending`` tables and columns until
  ``POST .../sync_schema`` and then ``sync_polls`` more metadata requests;
  ``never_sync`` ones never appear.
- ``POST /api/card/:id/query`` returns 202 whether or not the query worked, with
  ``status`` ``completed`` or ``failed`` and ``error``. ``query_runner`` runs the
  card's SQL (for example on a real PostgreSQL); ``failing_cards`` fails cards
  by name.
- ``PUT /api/dashboard/:id`` with ``dashcards`` replaces the dashboard's
  dashcards: new ones have negative ids, and existing ones left out are deleted.
  ``dashcards_key="ordered_cards"`` names them as the responses of 0.47 and earlier did.
- ``script`` queues responses (429 with ``Retry-After``, 500, ...) for the next
  matching requests, ahead of authentication, as a proxy would send them.

Every request is recorded in ``requests`` for assertions. Nothing here proves
how a real Metabase syncs, infers semantic types or runs queries.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg

# Metabase base types of the PostgreSQL types the warehouse uses.
BASE_TYPES = {
    "bigint": "type/BigInteger",
    "integer": "type/Integer",
    "smallint": "type/Integer",
    "character varying": "type/Text",
    "text": "type/Text",
    "boolean": "type/Boolean",
    "double precision": "type/Float",
    "numeric": "type/Decimal",
    "timestamp without time zone": "type/DateTime",
    "timestamp with time zone": "type/DateTimeWithLocalTZ",
    "date": "type/Date",
    "jsonb": "type/JSON",
    "json": "type/JSON",
}
UNAUTHENTICATED = "Unauthenticated"
FORBIDDEN = "You don't have permissions to do that."
NOT_FOUND = "Not found."

Column = tuple[str, str, str]


@dataclass
class RecordedRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict
    body: object
    headers: dict

    @property
    def is_write(self) -> bool:
        return self.method in ("POST", "PUT", "DELETE") and not self.path.endswith(("/query", "/sync_schema")) and self.path != "/api/session"


@dataclass
class ScriptedAnswer:
    method: str
    path: re.Pattern
    status: int
    body: object
    headers: dict
    times: int


@dataclass
class FakeDatabase:
    id: int
    name: str
    tables: list[dict]
    pending: set = field(default_factory=set)
    never_sync: set = field(default_factory=set)
    polls_until_synced: int | None = None


def tables_from_postgres(conninfo: dict, schemas: list[str]) -> dict[tuple[str, str], list[tuple[str, str, str | None]]]:
    """Read the tables and columns of a real PostgreSQL as Metabase's sync would find them.

    Returns {(schema, table): [(column, base type, semantic type)]}, with
    primary-key columns as ``type/PK``; the warehouse has no foreign keys.
    """
    with psycopg.connect(**conninfo) as conn:
        columns = conn.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ANY(%s) ORDER BY table_schema, table_name, ordinal_position",
            (schemas,),
        ).fetchall()
        keys = conn.execute(
            "SELECT k.table_schema, k.table_name, k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            " AND k.constraint_schema = c.constraint_schema AND k.table_name = c.table_name "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = ANY(%s)",
            (schemas,),
        ).fetchall()
    primary = set(keys)
    tables: dict[tuple[str, str], list] = {}
    for schema, table, column, data_type in columns:
        semantic = "type/PK" if (schema, table, column) in primary else None
        tables.setdefault((schema, table), []).append((column, BASE_TYPES.get(data_type, "type/*"), semantic))
    return tables


class FakeMetabase:
    """The fake server's state and behaviour; ``start`` serves it on 127.0.0.1."""

    def __init__(
        self,
        *,
        users: dict[str, str] | None = None,
        api_keys: tuple[str, ...] = (),
        wrap_lists: bool | None = None,
        semantic_key: str = "semantic_type",
        dashcards_key: str = "dashcards",
        expire_session_after: int | None = None,
        sync_polls: int = 0,
        query_runner: Callable[[str], tuple[list, list]] | None = None,
        failing_cards: dict[str, str] | None = None,
    ):
        self.users = users if users is not None else {"admin@example.com": "correct-horse-battery"}
        self.api_keys = set(api_keys)
        self.wrap_lists = wrap_lists
        self.semantic_key = semantic_key
        self.dashcards_key = dashcards_key
        self.expire_session_after = expire_session_after
        self.sync_polls = sync_polls
        self.query_runner = query_runner
        self.failing_cards = dict(failing_cards or {})
        self.forbidden: set[tuple[str, str]] = set()

        self.lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self.sessions: dict[str, int] = {}  # token -> requests served
        self.logins = 0
        self.databases: dict[int, FakeDatabase] = {}
        self.fields: dict[int, dict] = {}
        self.collections: dict[int, dict] = {}
        self.cards: dict[int, dict] = {}
        self.dashboards: dict[int, dict] = {}
        self._scripted: list[ScriptedAnswer] = []
        self._next_id = 1
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.add_collection("Admin's Personal Collection", personal_owner_id=1)

    # ------------------------------------------------------------------ set-up

    def start(self) -> FakeMetabase:
        fake = self

        class Handler(_Handler):
            metabase = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-metabase", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def new_id(self) -> int:
        with self.lock:
            value = self._next_id
            self._next_id += 1
            return value

    def add_database(
        self,
        name: str,
        tables: dict[tuple[str, str], list[tuple[str, str, str | None]]],
        pending: set | None = None,
        never_sync: set | None = None,
    ) -> FakeDatabase:
        """Add a database with its tables; ``pending`` lists (schema, table) or (schema, table, column) not synced yet."""
        database = FakeDatabase(self.new_id(), name, [], set(pending or ()), set(never_sync or ()))
        for (schema, table_name), columns in tables.items():
            table = {"id": self.new_id(), "db_id": database.id, "schema": schema, "name": table_name,
                     "display_name": table_name.replace("_", " ").title(), "visibility_type": None, "fields": []}
            for column, base_type, semantic in columns:
                field_id = self.new_id()
                self.fields[field_id] = {
                    "id": field_id, "table_id": table["id"], "name": column, "display_name": column,
                    "base_type": base_type, self.semantic_key: semantic, "fk_target_field_id": None,
                    "visibility_type": "normal", "description": None,
                }
                table["fields"].append(field_id)
            database.tables.append(table)
        self.databases[database.id] = database
        return database

    def add_collection(self, name: str, personal_owner_id: int | None = None) -> dict:
        collection = {"id": self.new_id(), "name": name, "archived": False, "personal_owner_id": personal_owner_id,
                      "location": "/", "description": None}
        self.collections[collection["id"]] = collection
        return collection

    def script(self, method: str, path: str, status: int, body: object = "", headers: dict | None = None, times: int = 1):
        """Respond to the next ``times`` requests matching ``method`` and the ``path`` pattern with this status."""
        with self.lock:
            self._scripted.append(ScriptedAnswer(method, re.compile(path), status, body, headers or {}, times))

    def forbid(self, method: str, path: str) -> None:
        self.forbidden.add((method, path))

    # ------------------------------------------------------------------ helpers for tests

    def field_by_name(self, schema: str, table: str, column: str) -> dict:
        for database in self.databases.values():
            for t in database.tables:
                if t["schema"] == schema and t["name"] == table:
                    for field_id in t["fields"]:
                        if self.fields[field_id]["name"] == column:
                            return self.fields[field_id]
        raise KeyError(f"{schema}.{table}.{column}")

    def writes(self) -> list[RecordedRequest]:
        """Return the requests that change something in Metabase."""
        return [r for r in self.requests if r.is_write]

    def requests_to(self, method: str, path_pattern: str) -> list[RecordedRequest]:
        pattern = re.compile(path_pattern)
        return [r for r in self.requests if r.method == method and pattern.fullmatch(r.path)]

    def dashboard_by_marker(self, key: str) -> dict | None:
        for dashboard in self.dashboards.values():
            if f"[warehouse-sync:{key}]" in (dashboard.get("description") or ""):
                return dashboard
        return None

    def card_by_marker(self, key: str) -> dict | None:
        for card in self.cards.values():
            if f"[warehouse-sync:{key}]" in (card.get("description") or ""):
                return card
        return None

    # ------------------------------------------------------------------ request handling

    def handle(self, method: str, path: str, query: dict, body, headers: dict) -> tuple[int, object, dict]:
        with self.lock:
            self.requests.append(RecordedRequest(method, path, query, body, dict(headers)))
            for answer in self._scripted:
                if answer.method == method and answer.path.fullmatch(path) and answer.times > 0:
                    answer.times -= 1
                    return answer.status, answer.body, answer.headers

            if method == "POST" and path == "/api/session":
                return self._login(body)
            if not self._authenticated(headers):
                return 401, UNAUTHENTICATED, {}
            if (method, path) in self.forbidden:
                return 403, FORBIDDEN, {}
            for route_method, pattern, handler in ROUTES:
                if route_method == method:
                    match = pattern.fullmatch(path)
                    if match:
                        return handler(self, *[int(g) for g in match.groups()], query=query, body=body)
            return 404, "API endpoint does not exist.", {}

    def _login(self, body) -> tuple[int, object, dict]:
        body = body if isinstance(body, dict) else {}
        if not body.get("username") or not body.get("password"):
            return 400, {"errors": {"username": "value must be a non-blank string."}}, {}
        if self.users.get(body["username"]) != body["password"]:
            return 401, {"errors": {"password": "did not match stored password"}}, {}
        token = secrets.token_hex(16)
        self.sessions[token] = 0
        self.logins += 1
        return 200, {"id": token}, {}

    def _authenticated(self, headers: dict) -> bool:
        lowered = {k.lower(): v for k, v in headers.items()}
        if lowered.get("x-api-key") in self.api_keys:
            return True
        token = lowered.get("x-metabase-session")
        if token not in self.sessions:
            return False
        if self.expire_session_after is not None and self.sessions[token] >= self.expire_session_after:
            del self.sessions[token]
            return False
        self.sessions[token] += 1
        return True

    def _list(self, items: list, wrapped_in_metabase: bool) -> object:
        wrap = wrapped_in_metabase if self.wrap_lists is None else self.wrap_lists
        return {"data": items, "total": len(items)} if wrap else items

    # ------------------------------------------------------------------ endpoints

    def get_databases(self, query, body):
        items = [{"id": d.id, "name": d.name, "engine": "postgres", "is_sample": False} for d in self.databases.values()]
        return 200, self._list(items, wrapped_in_metabase=True), {}

    def sync_schema(self, database_id, query, body):
        database = self.databases.get(database_id)
        if database is None:
            return 404, NOT_FOUND, {}
        database.polls_until_synced = self.sync_polls
        return 200, {"status": "ok"}, {}

    def get_metadata(self, database_id, query, body):
        database = self.databases.get(database_id)
        if database is None:
            return 404, NOT_FOUND, {}
        if database.polls_until_synced is not None:
            if database.polls_until_synced <= 0:
                database.pending = set(database.never_sync)
                database.polls_until_synced = None
            else:
                database.polls_until_synced -= 1
        tables = []
        for table in database.tables:
            if (table["schema"], table["name"]) in database.pending:
                continue
            fields = [
                dict(self.fields[f]) for f in table["fields"]
                if (table["schema"], table["name"], self.fields[f]["name"]) not in database.pending
            ]
            if fields:
                tables.append({**{k: v for k, v in table.items() if k != "fields"}, "fields": fields})
        return 200, {"id": database.id, "name": database.name, "engine": "postgres", "tables": tables}, {}

    def get_field(self, field_id, query, body):
        found = self.fields.get(field_id)
        return (200, dict(found), {}) if found else (404, NOT_FOUND, {})

    def update_field(self, field_id, query, body):
        found = self.fields.get(field_id)
        if found is None:
            return 404, NOT_FOUND, {}
        body = body or {}
        target = body.get("fk_target_field_id", found["fk_target_field_id"])
        if target is not None and target not in self.fields:
            return 400, {"message": f"fk_target_field_id {target} does not exist"}, {}
        # Metabase ignores keys it does not know, such as semantic_type before 0.39.
        for key in (self.semantic_key, "fk_target_field_id", "description", "display_name", "visibility_type"):
            if key in body:
                found[key] = body[key]
        return 200, dict(found), {}

    def get_collections(self, query, body):
        items = [{"id": "root", "name": "Our analytics", "archived": False, "personal_owner_id": None}]
        items += [dict(c) for c in self.collections.values()]
        return 200, self._list(items, wrapped_in_metabase=False), {}

    def create_collection(self, query, body):
        if not isinstance(body, dict) or not str(body.get("name") or "").strip():
            return 400, {"errors": {"name": "value must be a non-blank string."}}, {}
        return 200, dict(self.add_collection(body["name"])), {}

    def get_collection_items(self, collection_id, query, body):
        if collection_id not in self.collections:
            return 404, NOT_FOUND, {}
        models = query.get("models") or ["card", "dashboard"]
        items = []
        if "card" in models:
            items += [{"id": c["id"], "model": "card", "name": c["name"], "description": c["description"],
                       "display": c["display"], "collection_position": None}
                      for c in self.cards.values() if c["collection_id"] == collection_id and not c["archived"]]
        if "dashboard" in models:
            items += [{"id": d["id"], "model": "dashboard", "name": d["name"], "description": d["description"],
                       "collection_position": None}
                      for d in self.dashboards.values() if d["collection_id"] == collection_id and not d["archived"]]
        wrapped = self._list(items, wrapped_in_metabase=True)
        if isinstance(wrapped, dict):
            wrapped.update({"models": models, "limit": None, "offset": None})
        return 200, wrapped, {}

    def create_card(self, query, body):
        errors = _card_errors(body, creating=True)
        if errors:
            return 400, {"errors": errors}, {}
        card = {
            "id": self.new_id(), "name": body["name"], "description": body.get("description"),
            "display": body["display"], "collection_id": body.get("collection_id"),
            "dataset_query": body["dataset_query"], "visualization_settings": body["visualization_settings"],
            "archived": False, "type": "question", "entity_id": secrets.token_urlsafe(16)[:21],
        }
        self.cards[card["id"]] = card
        return 200, dict(card), {}

    def get_card(self, card_id, query, body):
        card = self.cards.get(card_id)
        return (200, dict(card), {}) if card else (404, NOT_FOUND, {})

    def update_card(self, card_id, query, body):
        card = self.cards.get(card_id)
        if card is None:
            return 404, NOT_FOUND, {}
        errors = _card_errors(body, creating=False)
        if errors:
            return 400, {"errors": errors}, {}
        for key in ("name", "description", "display", "collection_id", "dataset_query", "visualization_settings", "archived"):
            if key in body:
                card[key] = body[key]
        return 200, dict(card), {}

    def query_card(self, card_id, query, body):
        card = self.cards.get(card_id)
        if card is None:
            return 404, NOT_FOUND, {}
        started = time.monotonic()
        rows, columns, error = [], [], None
        if card["name"] in self.failing_cards:
            error = self.failing_cards[card["name"]]
        elif self.query_runner is not None:
            try:
                rows, columns = self.query_runner(card["dataset_query"]["native"]["query"])
            except Exception as exc:  # noqa: BLE001 - Metabase turns every query error into status "failed"
                error = str(exc)
        running_time = int((time.monotonic() - started) * 1000)
        data = {"rows": rows, "cols": [{"name": c, "display_name": c} for c in columns]}
        if error is not None:
            answer = {"status": "failed", "error": error, "error_type": "invalid-query", "row_count": 0,
                      "running_time": running_time, "data": {"rows": [], "cols": []}}
        else:
            answer = {"status": "completed", "row_count": len(rows), "running_time": running_time, "data": data,
                      "database_id": card["dataset_query"].get("database")}
        return 202, answer, {}

    def create_dashboard(self, query, body):
        if not isinstance(body, dict) or not str(body.get("name") or "").strip():
            return 400, {"errors": {"name": "value must be a non-blank string."}}, {}
        dashboard = {
            "id": self.new_id(), "name": body["name"], "description": body.get("description"),
            "collection_id": body.get("collection_id"), "archived": False, "parameters": [],
            "dashcards": [], "tabs": [],
        }
        self.dashboards[dashboard["id"]] = dashboard
        return 200, self._dashboard_answer(dashboard), {}

    def get_dashboard(self, dashboard_id, query, body):
        dashboard = self.dashboards.get(dashboard_id)
        return (200, self._dashboard_answer(dashboard), {}) if dashboard else (404, NOT_FOUND, {})

    def update_dashboard(self, dashboard_id, query, body):
        dashboard = self.dashboards.get(dashboard_id)
        if dashboard is None:
            return 404, NOT_FOUND, {}
        body = body or {}
        for key in ("name", "description", "collection_id", "archived", "parameters"):
            if key in body:
                dashboard[key] = body[key]
        if "tabs" in body:
            dashboard["tabs"] = [dict(t) for t in body["tabs"]]
        if "dashcards" in body:
            error = self._replace_dashcards(dashboard, body["dashcards"])
            if error:
                return 400, {"message": error}, {}
        return 200, self._dashboard_answer(dashboard), {}

    def _replace_dashcards(self, dashboard: dict, dashcards) -> str | None:
        if not isinstance(dashcards, list) or any(not isinstance(d, dict) for d in dashcards):
            return "dashcards must be a list of maps"
        ids = [d.get("id") for d in dashcards]
        if len(set(ids)) != len(ids) or any(not isinstance(i, int) for i in ids):
            return "value must be seq of maps in which ids are unique"
        existing = {d["id"]: d for d in dashboard["dashcards"]}
        replaced = []
        for dashcard in dashcards:
            if any(not isinstance(dashcard.get(k), int) for k in ("row", "col", "size_x", "size_y")):
                return f"dashcard {dashcard.get('id')} needs integer row, col, size_x and size_y"
            if dashcard.get("card_id") is not None and dashcard["card_id"] not in self.cards:
                return f"card {dashcard['card_id']} does not exist"
            if dashcard["id"] < 0:
                stored = {"id": self.new_id(), "dashboard_id": dashboard["id"]}
            elif dashcard["id"] in existing:
                stored = dict(existing[dashcard["id"]])
            else:
                return f"dashcard {dashcard['id']} is not on dashboard {dashboard['id']}"
            for key in ("card_id", "row", "col", "size_x", "size_y", "dashboard_tab_id", "series",
                        "parameter_mappings", "visualization_settings", "action_id"):
                if key in dashcard:
                    stored[key] = dashcard[key]
            replaced.append(stored)
        # Metabase deletes every dashcard the list leaves out.
        dashboard["dashcards"] = replaced
        return None

    def _dashboard_answer(self, dashboard: dict) -> dict:
        answer = {k: v for k, v in dashboard.items() if k != "dashcards"}
        answer[self.dashcards_key] = [
            {**d, "card": dict(self.cards[d["card_id"]]) if d.get("card_id") in self.cards else None}
            for d in dashboard["dashcards"]
        ]
        return answer

    # ------------------------------------------------------------------ test conveniences

    def add_hand_made_dashcard(self, dashboard_id: int, card_id: int | None, position: dict, text: str | None = None) -> dict:
        """Place a card (or, with ``card_id`` None, a text card) on a dashboard, as a person would."""
        dashcard = {"id": self.new_id(), "dashboard_id": dashboard_id, "card_id": card_id, **position,
                    "series": [], "parameter_mappings": [], "dashboard_tab_id": None,
                    "visualization_settings": {"text": text} if text else {}}
        self.dashboards[dashboard_id]["dashcards"].append(dashcard)
        return dashcard

    def add_hand_made_card(self, name: str, sql: str, database_id: int, collection_id: int | None) -> dict:
        _, card, _ = self.create_card({}, {
            "name": name, "display": "table", "collection_id": collection_id, "visualization_settings": {},
            "dataset_query": {"type": "native", "native": {"query": sql, "template-tags": {}}, "database": database_id},
        })
        return card


def _card_errors(body, creating: bool) -> dict:
    if not isinstance(body, dict):
        return {"body": "value must be a map."}
    errors = {}
    required = ("name", "display", "dataset_query", "visualization_settings") if creating else ()
    for key in required:
        if key not in body:
            errors[key] = "value must be provided."
    if "name" in body and not str(body["name"] or "").strip():
        errors["name"] = "value must be a non-blank string."
    for key in ("dataset_query", "visualization_settings"):
        if key in body and not isinstance(body[key], dict):
            errors[key] = "value must be a map."
    return errors


ROUTES = [
    ("GET", re.compile(r"/api/database"), FakeMetabase.get_databases),
    ("POST", re.compile(r"/api/database/(\d+)/sync_schema"), FakeMetabase.sync_schema),
    ("GET", re.compile(r"/api/database/(\d+)/metadata"), FakeMetabase.get_metadata),
    ("GET", re.compile(r"/api/field/(\d+)"), FakeMetabase.get_field),
    ("PUT", re.compile(r"/api/field/(\d+)"), FakeMetabase.update_field),
    ("GET", re.compile(r"/api/collection"), FakeMetabase.get_collections),
    ("POST", re.compile(r"/api/collection"), FakeMetabase.create_collection),
    ("GET", re.compile(r"/api/collection/(\d+)/items"), FakeMetabase.get_collection_items),
    ("POST", re.compile(r"/api/card"), FakeMetabase.create_card),
    ("GET", re.compile(r"/api/card/(\d+)"), FakeMetabase.get_card),
    ("PUT", re.compile(r"/api/card/(\d+)"), FakeMetabase.update_card),
    ("POST", re.compile(r"/api/card/(\d+)/query"), FakeMetabase.query_card),
    ("POST", re.compile(r"/api/dashboard"), FakeMetabase.create_dashboard),
    ("GET", re.compile(r"/api/dashboard/(\d+)"), FakeMetabase.get_dashboard),
    ("PUT", re.compile(r"/api/dashboard/(\d+)"), FakeMetabase.update_dashboard),
]


def _json_value(value):
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


class _Handler(BaseHTTPRequestHandler):
    metabase: FakeMetabase
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Without this, Nagle's algorithm and delayed ACKs add about 40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args) -> None:
        pass

    def _serve(self, method: str) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status, answer, headers = self.metabase.handle(
            method, url.path.rstrip("/") or "/", parse_qs(url.query), body, dict(self.headers.items())
        )
        if isinstance(answer, (dict, list)):
            # Query rows can hold dates and decimals; Metabase sends them as strings and numbers.
            payload = json.dumps(answer, default=_json_value).encode()
            content_type = "application/json;charset=utf-8"
        else:
            payload = str(answer).encode()
            content_type = "text/plain;charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


class SleepRecorder:
    """Stands in for time.sleep so retry delays are checked without waiting."""

    def __init__(self):
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
