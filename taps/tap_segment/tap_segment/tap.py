"""tap-segment: a Singer tap for Segment's raw event archive (the S3 destination).

Run once per Segment source. The tap writes one stream per warehouse table,
in Segment's layout, and a STATE message after each archive file it loads.
"""

from __future__ import annotations

import sys
from typing import ClassVar

from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities

from tap_segment.archive import LocalArchive, S3Archive
from tap_segment.bookmark import BookmarkError
from tap_segment.layout import BUILTIN_TABLES, TableRegistry
from tap_segment.output import SingerOutput
from tap_segment.settings import (
    DEFAULT_LOOKBACK_DAYS,
    DEFAULT_MAX_LINE_BYTES,
    DEFAULT_MAX_PROPERTY_COLUMNS,
    DEFAULT_REJECT_RAW_MAX_CHARS,
    ConfigError,
    Settings,
)
from tap_segment.naming import REDSHIFT_MAX_IDENTIFIER_BYTES
from tap_segment.sync import KEY_PROPERTIES, SourceSync

CONFIG_SCHEMA = th.PropertiesList(
    th.Property("source_id", th.StringType, required=True,
                description="Segment source id: the folder name below segment-logs/. The tap loads this one source."),
    th.Property("schema_name", th.StringType,
                description="Warehouse schema of the source, such as 'blog'. Used in logs and the summary line only; "
                            "the target's configuration decides where tables go. Defaults to source_id."),
    th.Property("s3_bucket", th.StringType, description="Bucket of Segment's S3 destination. Set this or local_path."),
    th.Property("s3_prefix", th.StringType, default="",
                description="Key prefix in front of segment-logs/, without a trailing '/'."),
    th.Property("aws_access_key_id", th.StringType, secret=True,
                description="AWS access key id. Without it, boto3's default credential chain is used."),
    th.Property("aws_secret_access_key", th.StringType, secret=True, description="AWS secret access key."),
    th.Property("aws_session_token", th.StringType, secret=True, description="AWS session token for temporary credentials."),
    th.Property("aws_profile", th.StringType, description="Profile of the AWS config files to read credentials from."),
    th.Property("s3_endpoint_url", th.StringType,
                description="S3 endpoint URL, for an S3-compatible server such as a local moto_server."),
    th.Property("region", th.StringType, description="AWS region of the bucket, such as 'us-west-2'."),
    th.Property("local_path", th.StringType,
                description="Local folder that contains segment-logs/<source-id>/<day>/<file>, read in place of S3. "
                            "A file's modification time is used as its LastModified."),
    th.Property("lookback_days", th.IntegerType, default=DEFAULT_LOOKBACK_DAYS,
                description="Look-back window in days. Files modified more than this before the newest loaded file "
                            "count as loaded; files inside it are tracked by name, so late files are still loaded."),
    th.Property("max_line_bytes", th.IntegerType, default=DEFAULT_MAX_LINE_BYTES,
                description="Maximum length of one message line in bytes; longer lines go to the rejects stream."),
    th.Property("max_property_columns", th.IntegerType, default=DEFAULT_MAX_PROPERTY_COLUMNS,
                description="Maximum columns per table from properties, traits and context. Later paths go to the "
                            "JSON text column properties_overflow. Redshift allows 1,600 columns per table."),
    th.Property("max_identifier_bytes", th.IntegerType, default=REDSHIFT_MAX_IDENTIFIER_BYTES,
                description="Maximum table and column name length in bytes: 127 for Redshift, 63 for PostgreSQL."),
    th.Property("reject_raw_max_chars", th.IntegerType, default=DEFAULT_REJECT_RAW_MAX_CHARS,
                description="Maximum characters of a rejected line kept in the rejects stream's raw column."),
).to_dict()


class TableStream(Stream):
    """A built-in table, listed by discovery. Records are written by SourceSync, not by this class."""

    def __init__(self, tap: Tap, name: str, schema: dict):
        super().__init__(tap=tap, schema=schema, name=name)
        self.primary_keys = KEY_PROPERTIES

    def get_records(self, context):
        return iter(())


class TapSegment(Tap):
    """Singer tap for Segment's raw event archive, one source per run."""

    name = "tap-segment"
    config_jsonschema = CONFIG_SCHEMA
    # The SDK's stream maps, flattening, BATCH messages and ACTIVATE_VERSION
    # work on its own stream sync, which this tap replaces, so they are not offered.
    capabilities: ClassVar[list] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
    ]

    @classmethod
    def append_builtin_config(cls, config_jsonschema: dict) -> None:
        # The SDK adds its stream map and flattening settings here even when
        # the capabilities leave them out. This tap uses neither, so it adds nothing.
        return

    def discover_streams(self) -> list[Stream]:
        """Return the built-in tables with their standard columns.

        Event tables and property columns depend on the data, so discovery
        cannot list them. They appear in SCHEMA messages during a sync.
        """
        registry = TableRegistry(DEFAULT_MAX_PROPERTY_COLUMNS, REDSHIFT_MAX_IDENTIFIER_BYTES)
        return [TableStream(self, name, registry.table(name).schema()) for name in sorted(BUILTIN_TABLES)]

    def load_state(self, state: dict) -> None:
        # The bookmark format is this tap's own (see tap_segment.bookmark), so
        # the state is kept as given rather than merged stream by stream.
        self._state = dict(state)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        errors = super()._validate_config(raise_errors=raise_errors)
        if errors:
            return errors
        try:
            Settings.from_config(dict(self.config))
        except ConfigError as error:
            if raise_errors:
                raise ConfigValidationError("Config validation failed", errors=error.problems) from error
            return error.problems
        return []

    def sync_all(self) -> None:  # type: ignore[misc]
        # The SDK syncs stream after stream, but each archive file contains
        # messages for many tables and must be read once, with a STATE message
        # after it, so the sync is driven file by file here instead.
        settings = Settings.from_config(dict(self.config))
        try:
            sync = SourceSync(settings, self._open_archive(settings), self.state, SingerOutput(), self._deselected_tables())
        except (BookmarkError, ValueError) as error:
            problem = (
                f"the input state is not a valid tap-segment bookmark ({error}); pass the state written by "
                "the last run of this tap, or no state to load the whole archive again"
            )
            raise ConfigValidationError("Invalid state", errors=[problem]) from error
        sync.run()
        self._state = sync.state

    def _handle_termination(self, signum, frame) -> None:
        # The SDK's handler writes the state and exits with 0. A STATE message
        # written here could land in the middle of a block of records, and a
        # stopped run must not look like a finished one.
        self.logger.error("Stopped by signal %d. The last STATE message covers every file loaded before it", signum)
        sys.exit(128 + signum)

    def _deselected_tables(self) -> frozenset[str]:
        """Return the tables that the input catalog marks ``selected: false``."""
        if self.input_catalog is None:
            return frozenset()
        return frozenset(
            entry.tap_stream_id
            for entry in self.input_catalog.streams
            if entry.metadata.root.selected is False
        )

    @staticmethod
    def _open_archive(settings: Settings):
        if settings.local_path is not None:
            return LocalArchive(settings.local_path)
        return S3Archive(_s3_client(settings), settings.s3.bucket, settings.s3.prefix)


def _s3_client(settings: Settings):
    import boto3
    from botocore.config import Config

    s3 = settings.s3
    session = boto3.Session(
        aws_access_key_id=s3.access_key_id,
        aws_secret_access_key=s3.secret_access_key,
        aws_session_token=s3.session_token,
        profile_name=s3.profile if not s3.access_key_id else None,
        region_name=s3.region,
    )
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=10, read_timeout=60)
    return session.client("s3", endpoint_url=s3.endpoint_url, config=config)
