"""Load Segment's raw event archive into the warehouse, one schema per Segment source.

For each source, ``sync_source`` runs tap-segment | target, with the target
writing into the source's schema, and saves each STATE as it arrives under the
pipeline name ``segment-<schema>``. tap-segment ends its log with a line
``SEGMENT_SUMMARY {json}`` (events per table, duplicates skipped, lines
rejected, files loaded), which becomes the source's report.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from warehouse_sync import connectors, run_history
from warehouse_sync.config import Settings
from warehouse_sync.errors import ConfigError
from warehouse_sync.production import open_state_store, secret_redactor
from warehouse_sync.runner import run_pipeline

DEFAULT_SOURCES_PATH = Path(__file__).resolve().parent.parent / "taps" / "segment.yaml"
SUMMARY_PREFIX = "SEGMENT_SUMMARY "
# PostgreSQL cuts names at 63 bytes; Redshift allows 127.
IDENTIFIER_BYTES = {"postgres": 63, "redshift": 127}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSource:
    """One Segment source and the warehouse schema it loads into."""

    name: str
    source_id: str
    schema: str

    @property
    def pipeline(self) -> str:
        return f"segment-{self.schema}"


@dataclass(frozen=True)
class SegmentSettings:
    """The parsed taps/segment.yaml."""

    sources: tuple[SegmentSource, ...]
    tap_options: dict = field(default_factory=dict)


@dataclass
class SourceReport:
    """Counts and timing of one source's load."""

    source: SegmentSource
    seconds: float
    tables: dict[str, int] = field(default_factory=dict)
    messages: int = 0
    duplicates: int = 0
    rejects: int = 0
    files: int = 0

    @property
    def events(self) -> int:
        """Messages loaded; a track call counts once though it fills two tables."""
        return self.messages

    def headline(self) -> str:
        return (
            f"{self.source.schema}: {self.events:,} events from {self.files} files, "
            f"{self.duplicates:,} duplicates skipped, {self.rejects:,} lines rejected"
        )


def load_segment_settings(path: str | Path = DEFAULT_SOURCES_PATH) -> SegmentSettings:
    """Read the Segment source list, reporting every problem at once."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"Segment sources file {path} not found") from exc
    problems = []
    sources = []
    schemas = set()
    for index, entry in enumerate(raw.get("sources") or []):
        name = str(entry.get("name") or f"sources[{index}]")
        schema = str(entry.get("schema") or "")
        if not schema or schema != schema.lower() or not schema.replace("_", "").isalnum():
            problems.append(f"{name}: schema {schema!r} is invalid; use lower-case letters, digits and '_'")
        if schema in schemas:
            problems.append(f"{name}: schema {schema!r} is used by another source")
        schemas.add(schema)
        sources.append(SegmentSource(name=name, source_id=str(entry.get("source_id") or ""), schema=schema))
    if not sources:
        problems.append("no sources listed under 'sources'")
    if problems:
        raise ConfigError(f"{path} is invalid:\n  - " + "\n  - ".join(problems))
    return SegmentSettings(sources=tuple(sources), tap_options=dict(raw.get("tap") or {}))


def select_sources(segment: SegmentSettings, names: list[str] | None) -> list[SegmentSource]:
    """Return the sources to load, matched by name or schema, case-insensitively.

    Sources without a source id are left out with a warning when no names are
    given, and are an error when named.
    """
    if not names:
        chosen = [s for s in segment.sources if s.source_id]
        for skipped in (s for s in segment.sources if not s.source_id):
            log.warning("Segment source %s has no source_id in taps/segment.yaml; skipped", skipped.name)
        return chosen
    by_key = {}
    for source in segment.sources:
        by_key[source.name.lower()] = source
        by_key[source.schema.lower()] = source
    unknown = [n for n in names if n.lower() not in by_key]
    if unknown:
        known = ", ".join(s.schema for s in segment.sources)
        raise ConfigError(f"unknown Segment sources: {', '.join(unknown)}; known sources: {known}")
    chosen = [by_key[n.lower()] for n in names]
    missing_id = [s.name for s in chosen if not s.source_id]
    if missing_id:
        raise ConfigError(f"no source_id set in taps/segment.yaml for: {', '.join(missing_id)}")
    return chosen


def tap_config(settings: Settings, segment: SegmentSettings, source: SegmentSource) -> dict:
    archive = settings.segment
    if archive is None:
        raise ConfigError(
            "the Segment archive is not configured: set SEGMENT_ARCHIVE_BUCKET (S3) or SEGMENT_ARCHIVE_PATH (a local copy)"
        )
    config = {
        **segment.tap_options,
        "source_id": source.source_id,
        "schema_name": source.schema,
        "max_identifier_bytes": IDENTIFIER_BYTES[settings.warehouse_type],
    }
    if archive.local_path:
        config["local_path"] = str(archive.local_path)
        return config
    config.update(s3_bucket=archive.bucket, s3_prefix=archive.prefix)
    optional = {
        "region": archive.region,
        "aws_access_key_id": archive.access_key_id,
        "aws_secret_access_key": archive.secret_access_key,
        "aws_session_token": archive.session_token,
        "s3_endpoint_url": archive.endpoint_url,
    }
    config.update({k: v for k, v in optional.items() if v})
    return config


def sync_source(
    settings: Settings,
    source: SegmentSource,
    segment: SegmentSettings | None = None,
    logger: logging.Logger = log,
) -> SourceReport:
    """Load the new files of one source into its schema and return what was loaded."""
    segment = segment or load_segment_settings()
    started = time.monotonic()
    summary: dict = {}

    def read_summary(stage_name: str, line: str) -> None:
        if stage_name == "tap-segment" and SUMMARY_PREFIX in line:
            try:
                summary.update(json.loads(line.split(SUMMARY_PREFIX, 1)[1]))
            except ValueError:
                logger.warning("tap-segment wrote a summary line that is not JSON: %s", line[:200])

    started_at = datetime.now(timezone.utc)
    try:
        _run_source(settings, source, segment, summary, read_summary, logger)
    except Exception as exc:
        run_history.record(settings, [run_history.StreamRun(
            source.pipeline, "(all tables)", 0, started_at, datetime.now(timezone.utc), "failed", str(exc),
        )], logger)
        raise

    report = SourceReport(
        source=source,
        seconds=time.monotonic() - started,
        tables={t: int(v.get("events", 0)) for t, v in (summary.get("tables") or {}).items()},
        messages=int(summary.get("messages", 0)),
        duplicates=int(summary.get("duplicates", 0)),
        rejects=int(summary.get("rejects", 0)),
        files=int(summary.get("files", 0)),
    )
    finished_at = datetime.now(timezone.utc)
    # A table with no new events this run was still checked and is current, so
    # it gets a row too. The tap's saved layout lists the source's tables.
    rows_by_table = {table: 0 for table in _known_tables(settings, source)}
    rows_by_table.update(report.tables)
    run_history.record(settings, [
        run_history.StreamRun(source.pipeline, table, rows, started_at, finished_at, "succeeded")
        for table, rows in sorted(rows_by_table.items())
    ], logger)
    for table, events in sorted(report.tables.items()):
        logger.info("%s.%s: %s events", source.schema, table, f"{events:,}")
    logger.info("%s in %.1f s", report.headline(), report.seconds)
    return report


def _known_tables(settings: Settings, source: SegmentSource) -> list[str]:
    """Return the tables tap-segment has laid out for the source, from its saved state."""
    store = open_state_store(settings)
    try:
        bookmark = store.load(source.pipeline).get("bookmarks", {}).get(source.source_id, {})
    finally:
        store.close()
    return sorted((bookmark.get("tables") or {}).keys())


def _run_source(settings, source, segment, summary, read_summary, logger) -> None:
    store = open_state_store(settings)
    try:
        state = store.load(source.pipeline)

        def save_state(new_state: dict) -> None:
            store.save(source.pipeline, new_state)

        with connectors.ConfigFolder() as folder:
            config = folder.write_json(f"tap-segment-{source.schema}.json", tap_config(settings, segment, source))
            state_file = folder.write_json(f"state-{source.schema}.json", state)
            stages = [
                connectors.stage("tap-segment", "--config", str(config), "--state", str(state_file)),
                connectors.target_stage(settings, folder, schema=source.schema),
            ]
            logger.info("loading Segment source %s (%s) into schema %s", source.name, source.source_id, source.schema)
            run_pipeline(stages, save_state, logger, redact=secret_redactor(settings), watch=read_summary)
    finally:
        store.close()


def summary_rows(reports: list[SourceReport]) -> list[dict]:
    """Return one row per source and table for a summary table."""
    rows = []
    for report in reports:
        for table, events in sorted(report.tables.items()):
            rows.append({"schema": report.source.schema, "table": table, "rows": events})
        rows.append({
            "schema": report.source.schema,
            "table": "(messages loaded)",
            "rows": report.events,
            "duplicates skipped": report.duplicates,
            "lines rejected": report.rejects,
            "files": report.files,
        })
    keys = ["schema", "table", "rows", "duplicates skipped", "lines rejected", "files"]
    return [{k: row.get(k, "") for k in keys} for row in rows]
