"""Metabase settings: environment variables (or Prefect Secret blocks) into a frozen object.

``METABASE_URL`` switches Metabase on. Without it, ``load_metabase_settings``
returns None and the refresh checks the warehouse directly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from warehouse_sync import config
from warehouse_sync.errors import ConfigError

# Secrets that may instead name a Prefect Secret block through <NAME>_BLOCK.
SECRET_NAMES = ("METABASE_PASSWORD", "METABASE_API_KEY")
DEFAULT_COLLECTION = "Shared dashboards"
DEFAULT_SYNC_TIMEOUT_SECONDS = 600.0
DEFAULT_POLL_SECONDS = 10.0


@dataclass(frozen=True)
class MetabaseSettings:
    """How to reach Metabase, which database in it is the warehouse, and where dashboards go."""

    url: str
    database: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    collection: str = DEFAULT_COLLECTION
    sync_timeout_seconds: float = DEFAULT_SYNC_TIMEOUT_SECONDS
    poll_seconds: float = DEFAULT_POLL_SECONDS

    @property
    def database_id(self) -> int | None:
        """The database's Metabase id when ``METABASE_DATABASE`` is a number, else None."""
        return int(self.database) if self.database.isdigit() else None

    def secrets(self) -> list[str]:
        """Return the configured secret values, for redaction."""
        return [s for s in (self.password, self.api_key) if s]


def resolve_secret_blocks(env: Mapping[str, str]) -> dict[str, str]:
    """Fill each unset Metabase secret from the Prefect Secret block its ``<NAME>_BLOCK`` names."""
    return config.resolve_secret_blocks(env, SECRET_NAMES)


def load_metabase_settings(env: Mapping[str, str]) -> MetabaseSettings | None:
    """Convert the ``METABASE_*`` variables into ``MetabaseSettings``, reporting every problem at once.

    Returns None when ``METABASE_URL`` is unset. Raises ConfigError listing each
    missing or invalid variable by name.
    """
    url = env.get("METABASE_URL", "").strip().rstrip("/")
    if not url:
        return None
    problems: list[str] = []

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        problems.append(f"METABASE_URL={url!r} is not an http:// or https:// URL, for example https://metabase.example.com")

    database = env.get("METABASE_DATABASE", "").strip()
    if not database:
        problems.append("METABASE_DATABASE is missing; set the warehouse's name or numeric id in Metabase")

    username = env.get("METABASE_USERNAME", "").strip() or None
    password = env.get("METABASE_PASSWORD", "") or None
    api_key = env.get("METABASE_API_KEY", "").strip() or None
    if api_key and (username or password):
        problems.append(
            "METABASE_API_KEY and METABASE_USERNAME/METABASE_PASSWORD are both set; set the API key or the user, not both"
        )
    elif not api_key and not (username and password):
        if username and not password:
            problems.append("METABASE_PASSWORD is missing; METABASE_USERNAME needs a password")
        elif password and not username:
            problems.append("METABASE_USERNAME is missing; METABASE_PASSWORD needs a user name")
        else:
            problems.append("Metabase credentials are missing; set METABASE_API_KEY, or METABASE_USERNAME and METABASE_PASSWORD")

    def seconds(name: str, default: float) -> float:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            problems.append(f"{name}={raw!r} is not a number of seconds")
            return default
        if value <= 0:
            problems.append(f"{name}={raw!r} must be greater than 0")
            return default
        return value

    sync_timeout = seconds("METABASE_SYNC_TIMEOUT_SECONDS", DEFAULT_SYNC_TIMEOUT_SECONDS)
    poll = seconds("METABASE_POLL_SECONDS", DEFAULT_POLL_SECONDS)
    if poll > sync_timeout:
        problems.append(
            f"METABASE_POLL_SECONDS={poll:g} is longer than METABASE_SYNC_TIMEOUT_SECONDS={sync_timeout:g}; "
            "poll more often than the time-out"
        )

    if problems:
        raise ConfigError(
            "invalid Metabase configuration:\n  - "
            + "\n  - ".join(problems)
            + "\nSet these as environment variables or in .env (see docs/metabase.md)."
        )

    return MetabaseSettings(
        url=url,
        database=database,
        username=username,
        password=password,
        api_key=api_key,
        collection=env.get("METABASE_COLLECTION", "").strip() or DEFAULT_COLLECTION,
        sync_timeout_seconds=sync_timeout,
        poll_seconds=poll,
    )


def current_metabase_settings() -> MetabaseSettings | None:
    """Return the Metabase settings of this process's environment and ``.env``, or None without ``METABASE_URL``."""
    from warehouse_sync.config import read_environment
    from warehouse_sync.sandbox import PROJECT_ROOT

    env = read_environment(PROJECT_ROOT / ".env")
    if not env.get("METABASE_URL", "").strip():
        return None
    return load_metabase_settings(resolve_secret_blocks(env))
