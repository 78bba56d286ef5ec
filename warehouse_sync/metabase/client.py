"""Metabase REST API client on ``requests``.

One private method, ``MetabaseClient._request``, owns authentication, time-outs,
retries and error text. Every endpoint wrapper below it is one line.

Authentication is either an API key (header ``x-api-key``, Metabase 0.49 and
later) or a user. For a user, ``POST /api/session`` returns a session token,
which is sent as ``X-Metabase-Session`` and reused. When Metabase rejects it
with 401, the client logs in once more and repeats the request once.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import requests

from warehouse_sync.runner import Redactor

SESSION_PATH = "/api/session"
# (connect, read) seconds; a card query gets its own, longer read time-out.
DEFAULT_TIMEOUT = (10.0, 60.0)
DEFAULT_MAX_RETRIES = 4
DEFAULT_BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 120.0
# NOTE: a POST that fails with 500 is sent again too. If Metabase had created
# the card or dashboard before failing, the retry makes a copy with the same
# marker. The next run then warns about the copy and keeps the older one.
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# A dropped connection is retried only where sending the request twice is harmless.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
ERROR_TEXT_LIMIT = 500

log = logging.getLogger(__name__)


class MetabaseError(RuntimeError):
    """A Metabase API request failed; the message names the method, endpoint, status and Metabase's message."""

    def __init__(self, method: str, path: str, status: int | None, message: str):
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        where = f"Metabase {method} {path}"
        super().__init__(f"{where} failed with HTTP {status}: {message}" if status else f"{where} failed: {message}")


def list_items(payload: Any, method: str, path: str) -> list[dict]:
    """Return the items of a list response.

    Depending on the endpoint and version Metabase returns a bare list or
    ``{"data": [...], "total": N}`` (``GET /api/database`` and collection items
    in current versions), so both are accepted.
    """
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("data"), list):
        return payload["data"]
    raise MetabaseError(method, path, None, f"expected a list or {{'data': [...]}}, got {type(payload).__name__}")


def semantic_type_key(field: dict) -> str:
    """Return the key a field's semantic type is stored under: ``special_type`` before Metabase 0.39."""
    return "special_type" if "special_type" in field and "semantic_type" not in field else "semantic_type"


def semantic_type(field: dict) -> str | None:
    """Return a field's semantic type (``type/PK``, ``type/FK``, ...) under either key."""
    return field.get(semantic_type_key(field))


class MetabaseClient:
    """A Metabase API session: authentication, retries and one method per endpoint."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        api_key: str | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        backoff_seconds: float = DEFAULT_BACKOFF_SECONDS,
        logger: logging.Logger = log,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not api_key and not (username and password):
            raise ValueError("MetabaseClient needs api_key, or username and password")
        self.url = url.rstrip("/")
        self.username = username
        self._password = password
        self._api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_seconds = backoff_seconds
        self.logger = logger
        self._sleep = sleep
        self._session_token: str | None = None
        self._http = requests.Session()
        self._http.headers.update({"Accept": "application/json", "User-Agent": "warehouse-sync"})

    @classmethod
    def from_settings(cls, settings, **kwargs) -> MetabaseClient:
        """Build a client from ``MetabaseSettings``."""
        return cls(
            settings.url, username=settings.username, password=settings.password, api_key=settings.api_key, **kwargs
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> MetabaseClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ------------------------------------------------------------------ endpoints

    def login(self) -> None:
        """Open a session with the configured user; the token is kept for later requests."""
        response = self._request("POST", SESSION_PATH, json=self._credentials(), authenticate=False)
        if not isinstance(response, dict) or not response.get("id"):
            raise MetabaseError("POST", SESSION_PATH, None, "the response contains no session id")
        self._session_token = response["id"]

    def get_databases(self) -> list[dict]:
        return list_items(self._request("GET", "/api/database"), "GET", "/api/database")

    def sync_database_schema(self, database_id: int) -> Any:
        return self._request("POST", f"/api/database/{database_id}/sync_schema")

    def get_database_metadata(self, database_id: int) -> dict:
        return self._request("GET", f"/api/database/{database_id}/metadata", params={"include_hidden": "true"})

    def get_field(self, field_id: int) -> dict:
        return self._request("GET", f"/api/field/{field_id}")

    def update_field(self, field_id: int, changes: dict) -> dict:
        return self._request("PUT", f"/api/field/{field_id}", json=changes)

    def get_collections(self) -> list[dict]:
        return list_items(self._request("GET", "/api/collection"), "GET", "/api/collection")

    def create_collection(self, body: dict) -> dict:
        return self._request("POST", "/api/collection", json=body)

    def get_collection_items(self, collection_id: int, models: Sequence[str]) -> list[dict]:
        path = f"/api/collection/{collection_id}/items"
        return list_items(self._request("GET", path, params={"models": list(models)}), "GET", path)

    def get_card(self, card_id: int) -> dict:
        return self._request("GET", f"/api/card/{card_id}")

    def create_card(self, body: dict) -> dict:
        return self._request("POST", "/api/card", json=body)

    def update_card(self, card_id: int, changes: dict) -> dict:
        return self._request("PUT", f"/api/card/{card_id}", json=changes)

    def query_card(self, card_id: int, timeout_seconds: float) -> dict:
        return self._request(
            "POST", f"/api/card/{card_id}/query", json={"ignore_cache": True}, timeout=(self.timeout[0], timeout_seconds)
        )

    def get_dashboard(self, dashboard_id: int) -> dict:
        return self._request("GET", f"/api/dashboard/{dashboard_id}")

    def create_dashboard(self, body: dict) -> dict:
        return self._request("POST", "/api/dashboard", json=body)

    def update_dashboard(self, dashboard_id: int, changes: dict) -> dict:
        return self._request("PUT", f"/api/dashboard/{dashboard_id}", json=changes)

    # ------------------------------------------------------------------ mechanics

    def _credentials(self) -> dict:
        return {"username": self.username, "password": self._password}

    def _auth_headers(self) -> dict:
        if self._api_key:
            return {"x-api-key": self._api_key}
        if self._session_token is None:
            self.logger.info("logging in to Metabase at %s as %s", self.url, self.username)
            self.login()
        return {"X-Metabase-Session": self._session_token}

    def _redact(self, text: str) -> str:
        return Redactor([self._password or "", self._api_key or "", self._session_token or ""])(text)

    def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict | None = None,
        timeout: tuple[float, float] | None = None,
        authenticate: bool = True,
    ) -> Any:
        """Send one request: authenticate, retry 429, 5xx and dropped connections, raise MetabaseError on failure.

        Returns the decoded JSON body, or None for an empty one.
        """
        attempt = 0
        logged_in_again = False
        while True:
            headers = self._auth_headers() if authenticate else {}
            started = time.monotonic()
            try:
                response = self._http.request(
                    method, self.url + path, json=json, params=params, headers=headers, timeout=timeout or self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                reason = self._redact(f"{type(exc).__name__}: {exc}")
                if method in IDEMPOTENT_METHODS and attempt < self.max_retries:
                    attempt += 1
                    delay = self._backoff(attempt)
                    self.logger.warning(
                        "Metabase %s %s failed (%s); retry %d of %d in %.1f s",
                        method, path, reason, attempt, self.max_retries, delay,
                    )
                    self._sleep(delay)
                    continue
                raise MetabaseError(method, path, None, f"{reason}; check METABASE_URL and that Metabase is up") from exc

            status = response.status_code
            self.logger.debug("Metabase %s %s: HTTP %d in %.2f s", method, path, status, time.monotonic() - started)

            if status == 401 and authenticate and not self._api_key and not logged_in_again:
                # Sessions expire (MAX_SESSION_AGE, 14 days by default) or are ended by an admin.
                self.logger.info("Metabase rejected the session on %s %s; logging in again", method, path)
                self._session_token = None
                logged_in_again = True
                continue

            if status in RETRY_STATUSES and attempt < self.max_retries:
                attempt += 1
                delay = self._retry_delay(response, attempt)
                self.logger.warning(
                    "Metabase %s %s returned HTTP %d; retry %d of %d in %.1f s",
                    method, path, status, attempt, self.max_retries, delay,
                )
                self._sleep(delay)
                continue

            if status >= 400:
                raise MetabaseError(method, path, status, self._error_text(response))
            if not response.content:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise MetabaseError(
                    method, path, status, f"the response is not JSON: {self._redact(response.text[:ERROR_TEXT_LIMIT])!r}"
                ) from exc

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)

    def _retry_delay(self, response: requests.Response, attempt: int) -> float:
        """Return the seconds to wait: ``Retry-After`` (seconds or an HTTP date) if given, else exponential backoff."""
        header = response.headers.get("Retry-After", "").strip()
        if header:
            try:
                return min(max(float(header), 0.0), MAX_BACKOFF_SECONDS)
            except ValueError:
                pass
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=timezone.utc)
                wait = (when - datetime.now(timezone.utc)).total_seconds()
                return min(max(wait, 0.0), MAX_BACKOFF_SECONDS)
        return self._backoff(attempt)

    def _error_text(self, response: requests.Response) -> str:
        """Return Metabase's error message plus a hint for 401 and 403.

        401 and 403 bodies are plain text ("Unauthenticated", "You don't have
        permissions to do that."), others JSON with ``message`` or ``errors``.
        """
        text = response.text.strip()
        message = text
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict):
            if isinstance(body.get("message"), str):
                message = body["message"]
            elif isinstance(body.get("errors"), dict):
                message = "; ".join(f"{key}: {value}" for key, value in body["errors"].items())
        elif isinstance(body, str):
            message = body
        message = self._redact(message or response.reason or "no message")
        if len(message) > ERROR_TEXT_LIMIT:
            message = message[:ERROR_TEXT_LIMIT] + " ..."
        if response.status_code == 401:
            credentials = "METABASE_API_KEY" if self._api_key else "METABASE_USERNAME and METABASE_PASSWORD"
            message += f" (check {credentials})"
        elif response.status_code == 403:
            message += " (the Metabase user or API key lacks this permission; data-model changes need an admin)"
        return message
