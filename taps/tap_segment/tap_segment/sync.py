"""Loading one source's archive files into Singer messages, file by file.

Files are read in (LastModified, name) order. The records of a file are
written in batches. Each batch first settles its column types, then writes a
SCHEMA message for every table whose columns or types changed, then its
records. After a file's last record, a STATE message records the file as
loaded, so a run that stops part-way resumes with the first file it did not
finish. Records of that file written before the stop are written again by the
next run, and the targets replace them by primary key.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import datetime, timezone

from tap_segment.archive import Archive, ArchiveFile, ArchiveReadError, open_lines
from tap_segment.bookmark import FileBookmark, source_bookmark, with_source_bookmark
from tap_segment.layout import NestingTooDeepError, RowBuilder, Row, TableRegistry, validate_message
from tap_segment.output import SingerOutput
from tap_segment.settings import Settings
from tap_segment.tables import Table
from tap_segment.values import convert, format_timestamp, text_form

logger = logging.getLogger(__name__)

KEY_PROPERTIES = ["id"]
# Rows held before their types are settled and their records written. A larger
# batch settles more column types before the first SCHEMA message.
BATCH_ROWS = 50_000
SUMMARY_PREFIX = "SEGMENT_SUMMARY"


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


class SourceSync:
    """Loads the new archive files of one source and writes Singer messages for them."""

    def __init__(
        self,
        settings: Settings,
        archive: Archive,
        state: dict,
        output: SingerOutput,
        deselected_tables: frozenset[str] = frozenset(),
    ):
        self.settings = settings
        self.archive = archive
        self.state = state
        self.output = output
        self.deselected_tables = deselected_tables

        document = source_bookmark(state, settings.source_id)
        self.files = FileBookmark.from_state(document)
        self.registry = TableRegistry(settings.max_property_columns, settings.max_identifier_bytes)
        self.registry.load_state(document)
        self.builder = RowBuilder(self.registry)

        # NOTE: one entry per distinct messageId of the run, about 100 bytes
        # each, so a first run over a large archive needs memory to match.
        self.seen_message_ids: set[str] = set()
        self.emitted_versions: dict[str, int] = {}
        self.records = Counter()
        self.rejects = Counter()
        self.duplicates = 0
        self.messages = 0
        self.files_loaded = 0

    def run(self) -> dict:
        """Load every pending file, writing a STATE message after each, and return the run's summary.

        Raises ArchiveReadError at the first file that cannot be read, after
        logging the summary of the files loaded before it.
        """
        started = time.monotonic()
        source = self.settings.source_id
        files = self.archive.list_files(source)
        pending = self.files.pending_files(files, self.settings.lookback)
        cutoff = self.files.loaded_until(self.settings.lookback)
        logger.info(
            "Source %s (schema %s): %d files in the archive, %d to load; %s",
            source, self.settings.schema_name, len(files), len(pending),
            f"files modified before {cutoff.isoformat()} count as loaded" if cutoff else "no bookmark yet",
        )

        for file in pending:
            try:
                self._load_file(file)
            except ArchiveReadError:
                logger.error(
                    "Stopped at %s, which cannot be read; %d files were loaded before it in this run, "
                    "each followed by a STATE message. Replace or delete the object, then run again",
                    file.location, self.files_loaded,
                )
                self._log_summary(started, failed_file=file.key)
                raise
            self.files.mark_loaded(file, self.settings.lookback)
            self.files_loaded += 1
            self._write_state()
        if not pending:
            self._write_state()
        self.output.flush()
        return self._log_summary(started)

    def _log_summary(self, started: float, failed_file: str | None = None) -> dict:
        summary = self.summary(time.monotonic() - started)
        if failed_file is not None:
            summary["failed_file"] = failed_file
        logger.info("%s %s", SUMMARY_PREFIX, json.dumps(summary, sort_keys=True))
        return summary

    def summary(self, seconds: float) -> dict:
        return {
            "source": self.settings.source_id,
            "schema": self.settings.schema_name,
            "files": self.files_loaded,
            "messages": self.messages,
            "tables": {name: {"events": count} for name, count in sorted(self.records.items())},
            "duplicates": self.duplicates,
            "rejects": sum(self.rejects.values()),
            "reject_reasons": dict(sorted(self.rejects.items())),
            "overflow_values": dict(sorted(self.builder.overflow_counts.items())),
            "seconds": round(seconds, 3),
        }

    def _write_state(self) -> None:
        document = {**self.files.to_state(), **self.registry.to_state()}
        self.state = with_source_bookmark(self.state, self.settings.source_id, document)
        self.output.write_state(self.state)

    def _load_file(self, file: ArchiveFile) -> None:
        started = time.monotonic()
        uuid_ts = format_timestamp(datetime.now(timezone.utc))
        messages_before, duplicates_before = self.messages, self.duplicates
        rejects_before = sum(self.rejects.values())
        max_line_bytes = self.settings.max_line_bytes
        rows: list[tuple[Table, Row]] = []

        for line_number, line, length in open_lines(self.archive, file, max_line_bytes):
            if length > max_line_bytes:
                detail = f"the line has {length} bytes, more than max_line_bytes ({max_line_bytes})"
                rows.append(self._reject(file, line_number, "line_too_long", detail, line, uuid_ts))
                continue
            if line.isspace():
                continue
            try:
                message = _DECODER.decode(line.decode("utf-8"))
            except ValueError as error:
                # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
                rows.append(self._reject(file, line_number, "invalid_json", str(error), line, uuid_ts))
                continue
            except RecursionError:
                detail = "the JSON is nested deeper than Python's parser allows"
                rows.append(self._reject(file, line_number, "invalid_json", detail, line, uuid_ts))
                continue
            problem = validate_message(message)
            if problem is not None:
                rows.append(self._reject(file, line_number, problem[0], problem[1], line, uuid_ts))
                continue

            message_id = text_form(message["messageId"])
            if message_id in self.seen_message_ids:
                self.duplicates += 1
                logger.debug("Skipped message %s at %s line %d: already read in this run", message_id, file.location, line_number)
                continue
            try:
                message_rows = self.builder.rows(message, uuid_ts)
            except NestingTooDeepError as error:
                rows.append(self._reject(file, line_number, "too_deeply_nested", str(error), line, uuid_ts))
                continue
            self.seen_message_ids.add(message_id)
            self.messages += 1
            rows.extend(message_rows)
            if len(rows) >= BATCH_ROWS:
                self._write_batch(rows, uuid_ts)
        self._write_batch(rows, uuid_ts)

        logger.info(
            "Loaded %s (modified %s): %d messages, %d duplicates skipped, %d lines rejected in %.2f s",
            file.location, file.last_modified.isoformat(), self.messages - messages_before,
            self.duplicates - duplicates_before, sum(self.rejects.values()) - rejects_before,
            time.monotonic() - started,
        )

    def _reject(self, file: ArchiveFile, line_number: int, reason: str, detail: str, line: bytes, uuid_ts: str) -> tuple[Table, Row]:
        self.rejects[reason] += 1
        logger.debug("Rejected %s line %d: %s", file.location, line_number, detail)
        raw = line.decode("utf-8", errors="replace").rstrip("\r\n")[: self.settings.reject_raw_max_chars]
        return self.builder.reject_row(file.key, line_number, reason, detail, raw, uuid_ts)

    def _write_batch(self, rows: list[tuple[Table, Row]], uuid_ts: str) -> None:
        """Settle the column types of ``rows``, write SCHEMA messages where needed, then the records."""
        rows.extend(self.builder.changed_user_rows(uuid_ts))
        if not rows:
            return

        tables = {table.name: table for table, _ in rows}
        conversions: dict[str, list[tuple[str, str]]] = {}
        for name, table in tables.items():
            for column_name, (old_type, new_type) in table.commit().items():
                logger.warning(
                    "Table %s: column %s widened from %s to %s because a value did not fit; "
                    "the targets keep the old column under a versioned name and load new values as %s",
                    name, column_name, old_type, new_type, new_type,
                )
            if table.columns_to_convert:
                conversions[name] = [(column_name, table.columns[column_name].type) for column_name in table.columns_to_convert]
                table.columns_to_convert.clear()
            if name not in self.deselected_tables and self.emitted_versions.get(name) != table.version:
                self.output.write_schema(name, table.schema(), KEY_PROPERTIES)
                self.emitted_versions[name] = table.version

        for table, row in rows:
            name = table.name
            if name in self.deselected_tables:
                continue
            for column_name, column_type in conversions.get(name, ()):
                if column_name in row:
                    row[column_name] = convert(row[column_name], column_type)
            self.output.write_record(name, row)
            self.records[name] += 1
        rows.clear()
