"""Settings: read once from the environment and a ``.env`` file into frozen objects.

Every setting is an environment variable (see docs/configuration.md). A
secret may instead name a Prefect Secret block through ``<NAME>_BLOCK``, for
example ``SOURCE_DB_PASSWORD_BLOCK=prod-db-password``. When neither the source
nor the warehouse is configured, the caller falls back to the local sandbox.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dotenv import dotenv_values

from warehouse_sync.errors import ConfigError

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
WAREHOUSE_TYPES = ("redshift", "postgres")
STATE_STORES = ("warehouse", "file")
SECRET_NAMES = (
    "SOURCE_DB_PASSWORD",
    "WAREHOUSE_PASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
DEFAULT_WAREHOUSE_SCHEMA = "pulumi"
DEFAULT_STATE_SCHEMA = "_etl"


@dataclass(frozen=True)
class DatabaseSettings:
    """Connection settings of one PostgreSQL or Redshift database."""

    host: str
    port: int
    dbname: str
    user: str
    password: str = field(repr=False)
    sslmode: str = "prefer"

    def conninfo(self) -> dict:
        """Return keyword arguments for ``psycopg.connect``."""
        return {
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
            "user": self.user,
            "password": self.password,
            "sslmode": self.sslmode,
        }


@dataclass(frozen=True)
class S3Staging:
    """S3 location and credentials where target-redshift stages files for Redshift's COPY."""

    bucket: str
    key_prefix: str = ""
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    iam_role_arn: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True)
class SegmentArchive:
    """Location of Segment's raw event archive: the S3 destination's bucket, or a local copy."""

    local_path: Path | None = None
    bucket: str | None = None
    prefix: str = ""
    region: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None


@dataclass(frozen=True)
class Settings:
    """Everything one sync needs to know about the systems it connects."""

    source: DatabaseSettings
    warehouse: DatabaseSettings
    warehouse_type: str = "redshift"
    warehouse_schema: str = DEFAULT_WAREHOUSE_SCHEMA
    s3: S3Staging | None = None
    state_store: str = "warehouse"
    state_schema: str = DEFAULT_STATE_SCHEMA
    state_file: Path | None = None
    segment: SegmentArchive | None = None
    is_sandbox: bool = False


def read_environment(env_file: str | os.PathLike | None = ".env") -> dict[str, str]:
    """Merge a ``.env`` file under the process environment; the environment wins."""
    merged: dict[str, str] = {}
    if env_file and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ)
    return merged


def is_configured(env: Mapping[str, str]) -> bool:
    """Tell whether any source or warehouse setting is present."""
    return any(
        env.get(name)
        for name in ("SOURCE_DB_HOST", "SOURCE_DB_NAME", "WAREHOUSE_HOST", "WAREHOUSE_DB")
    )


def resolve_secret_blocks(env: Mapping[str, str], names: tuple[str, ...] = SECRET_NAMES) -> dict[str, str]:
    """Fill each unset secret of ``names`` from the Prefect Secret block its ``<NAME>_BLOCK`` names."""
    resolved = dict(env)
    for name in names:
        block_name = env.get(f"{name}_BLOCK")
        if resolved.get(name) or not block_name:
            continue
        from prefect.blocks.system import Secret

        try:
            resolved[name] = Secret.load(block_name).get()
        except ValueError as exc:
            raise ConfigError(
                f"{name}_BLOCK names the Prefect Secret block {block_name!r}, which could "
                f"not be loaded ({exc}); create a Secret block of that name or fix the name"
            ) from exc
    return resolved


def load_settings(env: Mapping[str, str]) -> Settings:
    """Convert raw settings into ``Settings``, reporting every problem at once.

    Raises ConfigError listing each missing or invalid variable by name.
    """
    problems: list[str] = []

    def required(name: str) -> str:
        value = env.get(name, "").strip()
        if not value:
            problems.append(f"{name} is missing")
        return value

    def port(name: str, default: int) -> int:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            problems.append(f"{name}={raw!r} is not a port number (1-65535)")
            return default
        return int(raw)

    def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = env.get(name, "").strip() or default
        if value not in allowed:
            problems.append(f"{name}={value!r} is invalid; use one of: {', '.join(allowed)}")
        return value

    source = DatabaseSettings(
        host=required("SOURCE_DB_HOST"),
        port=port("SOURCE_DB_PORT", 5432),
        dbname=required("SOURCE_DB_NAME"),
        user=required("SOURCE_DB_USER"),
        password=required("SOURCE_DB_PASSWORD"),
        sslmode=choice("SOURCE_DB_SSLMODE", "prefer", SSL_MODES),
    )

    warehouse_type = choice("WAREHOUSE_TYPE", "redshift", WAREHOUSE_TYPES)
    warehouse = DatabaseSettings(
        host=required("WAREHOUSE_HOST"),
        port=port("WAREHOUSE_PORT", 5439 if warehouse_type == "redshift" else 5432),
        dbname=required("WAREHOUSE_DB"),
        user=required("WAREHOUSE_USER"),
        password=required("WAREHOUSE_PASSWORD"),
        sslmode=choice("WAREHOUSE_SSLMODE", "require" if warehouse_type == "redshift" else "prefer", SSL_MODES),
    )

    schema = env.get("WAREHOUSE_SCHEMA", "").strip() or DEFAULT_WAREHOUSE_SCHEMA
    if schema != schema.lower() or not schema.replace("_", "").isalnum():
        problems.append(
            f"WAREHOUSE_SCHEMA={schema!r} is invalid; use lower-case letters, digits and '_'"
        )

    s3 = None
    if warehouse_type == "redshift":
        s3 = _load_s3_staging(env, problems)

    segment = _load_segment_archive(env, problems)

    state_store = choice("STATE_STORE", "warehouse", STATE_STORES)
    state_file = env.get("STATE_FILE", "").strip()
    if state_store == "file" and not state_file:
        problems.append("STATE_FILE is missing; STATE_STORE=file needs a path")

    if problems:
        raise ConfigError(
            "invalid configuration:\n  - "
            + "\n  - ".join(problems)
            + "\nSet these as environment variables or in .env (see docs/configuration.md)."
        )

    return Settings(
        source=source,
        warehouse=warehouse,
        warehouse_type=warehouse_type,
        warehouse_schema=schema,
        s3=s3,
        state_store=state_store,
        state_schema=env.get("STATE_SCHEMA", "").strip() or DEFAULT_STATE_SCHEMA,
        state_file=Path(state_file) if state_file else None,
        segment=segment,
    )


def _load_segment_archive(env: Mapping[str, str], problems: list[str]) -> SegmentArchive | None:
    local_path = env.get("SEGMENT_ARCHIVE_PATH", "").strip()
    bucket = env.get("SEGMENT_ARCHIVE_BUCKET", "").strip()
    if local_path and bucket:
        problems.append("SEGMENT_ARCHIVE_PATH and SEGMENT_ARCHIVE_BUCKET are both set; set one of them")
    if not local_path and not bucket:
        return None
    return SegmentArchive(
        local_path=Path(local_path) if local_path else None,
        bucket=bucket or None,
        prefix=env.get("SEGMENT_ARCHIVE_PREFIX", "").strip().strip("/"),
        region=env.get("SEGMENT_ARCHIVE_REGION", "").strip() or env.get("AWS_DEFAULT_REGION") or None,
        access_key_id=env.get("AWS_ACCESS_KEY_ID", "").strip() or None,
        secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "").strip() or None,
        session_token=env.get("AWS_SESSION_TOKEN", "").strip() or None,
        endpoint_url=env.get("SEGMENT_ARCHIVE_ENDPOINT_URL", "").strip() or None,
    )


def _load_s3_staging(env: Mapping[str, str], problems: list[str]) -> S3Staging | None:
    bucket = env.get("S3_STAGING_BUCKET", "").strip()
    if not bucket:
        problems.append("S3_STAGING_BUCKET is missing; Redshift loads are staged in S3")
    key_id = env.get("AWS_ACCESS_KEY_ID", "").strip() or None
    secret = env.get("AWS_SECRET_ACCESS_KEY", "").strip() or None
    role = env.get("REDSHIFT_COPY_ROLE_ARN", "").strip() or None
    if bool(key_id) != bool(secret):
        problems.append(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together (or neither, with REDSHIFT_COPY_ROLE_ARN)"
        )
    if not key_id and not role:
        problems.append(
            "REDSHIFT_COPY_ROLE_ARN is missing; Redshift's COPY needs either an IAM role or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if role and not role.startswith("arn:aws:iam::"):
        problems.append(f"REDSHIFT_COPY_ROLE_ARN={role!r} is not an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)")
    if not bucket:
        return None
    return S3Staging(
        bucket=bucket,
        key_prefix=env.get("S3_STAGING_PREFIX", "").strip(),
        region=env.get("S3_STAGING_REGION", "").strip() or env.get("AWS_DEFAULT_REGION") or None,
        access_key_id=key_id,
        secret_access_key=secret,
        session_token=env.get("AWS_SESSION_TOKEN", "").strip() or None,
        iam_role_arn=role,
        endpoint_url=env.get("S3_ENDPOINT_URL", "").strip() or None,
    )
