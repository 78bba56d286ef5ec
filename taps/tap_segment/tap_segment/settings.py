"""The tap's configuration as a frozen, checked object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from tap_segment.naming import REDSHIFT_MAX_IDENTIFIER_BYTES

DEFAULT_LOOKBACK_DAYS = 3
DEFAULT_MAX_LINE_BYTES = 512 * 1024
DEFAULT_MAX_PROPERTY_COLUMNS = 500
DEFAULT_REJECT_RAW_MAX_CHARS = 10_000
# Redshift allows 1,600 columns per table, and an event table has 10 standard
# columns plus properties_overflow. Columns that a target adds itself, such as
# pipelinewise's _sdc_* metadata columns, also count against the 1,600.
MAX_PROPERTY_COLUMNS_LIMIT = 1600 - 11


class ConfigError(ValueError):
    """Invalid or missing configuration. ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    def __repr__(self) -> str:
        # Keeps credentials out of logs and tracebacks.
        return f"S3Location(bucket={self.bucket!r}, prefix={self.prefix!r}, endpoint_url={self.endpoint_url!r})"


@dataclass(frozen=True)
class Settings:
    source_id: str
    schema_name: str
    s3: S3Location | None
    local_path: Path | None
    lookback: timedelta
    max_line_bytes: int
    max_property_columns: int
    max_identifier_bytes: int
    reject_raw_max_chars: int

    @classmethod
    def from_config(cls, config: dict) -> Settings:
        """Check ``config`` and return the settings; raise ConfigError listing every problem."""
        problems: list[str] = []

        source_id = config.get("source_id")
        if not isinstance(source_id, str) or not source_id or "/" in source_id:
            problems.append("source_id must be a Segment source id such as 'abc123', without '/'")
            source_id = ""

        bucket = config.get("s3_bucket")
        local_path = config.get("local_path")
        if bool(bucket) == bool(local_path):
            problems.append("set exactly one of s3_bucket (read from S3) and local_path (read a local folder)")
        if config.get("aws_access_key_id") and not config.get("aws_secret_access_key"):
            problems.append("aws_access_key_id is set without aws_secret_access_key; set both or neither")

        def integer(name: str, default: int, minimum: int, maximum: int | None = None) -> int:
            value = config.get(name, default)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (maximum is not None and value > maximum):
                upper = f" and at most {maximum}" if maximum is not None else ""
                problems.append(f"{name} must be an integer of at least {minimum}{upper}, not {value!r}")
                return default
            return value

        lookback_days = integer("lookback_days", DEFAULT_LOOKBACK_DAYS, 1)
        max_line_bytes = integer("max_line_bytes", DEFAULT_MAX_LINE_BYTES, 1024)
        max_property_columns = integer("max_property_columns", DEFAULT_MAX_PROPERTY_COLUMNS, 0, MAX_PROPERTY_COLUMNS_LIMIT)
        max_identifier_bytes = integer("max_identifier_bytes", REDSHIFT_MAX_IDENTIFIER_BYTES, 16, REDSHIFT_MAX_IDENTIFIER_BYTES)
        reject_raw_max_chars = integer("reject_raw_max_chars", DEFAULT_REJECT_RAW_MAX_CHARS, 0)

        if problems:
            raise ConfigError(problems)

        s3 = None
        if bucket:
            s3 = S3Location(
                bucket=bucket,
                prefix=config.get("s3_prefix") or "",
                endpoint_url=config.get("s3_endpoint_url") or None,
                region=config.get("region") or None,
                profile=config.get("aws_profile") or None,
                access_key_id=config.get("aws_access_key_id") or None,
                secret_access_key=config.get("aws_secret_access_key") or None,
                session_token=config.get("aws_session_token") or None,
            )
        return cls(
            source_id=source_id,
            schema_name=config.get("schema_name") or source_id,
            s3=s3,
            local_path=Path(local_path) if local_path else None,
            lookback=timedelta(days=lookback_days),
            max_line_bytes=max_line_bytes,
            max_property_columns=max_property_columns,
            max_identifier_bytes=max_identifier_bytes,
            reject_raw_max_chars=reject_raw_max_chars,
        )
