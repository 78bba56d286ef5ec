"""The bookmark of one source: which archive files are loaded, and the table layout.

Singer STATE written by this tap::

    {"bookmarks": {"<source-id>": {
        "format": 1,
        "latest_modified": "2026-11-05T23:10:00+00:00",
        "loaded_files": {"1793836800000/1793840000000.2f1c.gz": "2026-11-05T01:10:00+00:00", ...},
        "tables": {"pages": {"columns": {"id": {"type": "string"}, "url": {"type": "string", "path": ["properties", "url"]}, ...}}, ...},
        "event_tables": {"stack_destroy": "stack_destroy", ...}}}}

``latest_modified`` is the newest LastModified of a loaded file. Every file
whose LastModified is older than ``latest_modified - lookback_days`` counts as
loaded. ``loaded_files`` lists, by path below ``segment-logs/<source-id>/``,
the loaded files inside that window. A file that shows up late, in any day
folder, is loaded as long as its LastModified is inside the window. Bookmarks
of other sources in the same state are passed through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tap_segment.archive import ArchiveFile

STATE_FORMAT = 1


@dataclass
class FileBookmark:
    """The loaded files of one source."""

    latest_modified: datetime | None = None
    loaded_files: dict[str, datetime] = field(default_factory=dict)

    def loaded_until(self, lookback: timedelta) -> datetime | None:
        """Return the LastModified before which every file counts as loaded, or None before the first load."""
        if self.latest_modified is None:
            return None
        return self.latest_modified - lookback

    def pending_files(self, files: list[ArchiveFile], lookback: timedelta) -> list[ArchiveFile]:
        """Return the files not loaded yet, in (LastModified, name) order."""
        cutoff = self.loaded_until(lookback)
        pending = [
            file
            for file in files
            if file.name not in self.loaded_files and (cutoff is None or file.last_modified >= cutoff)
        ]
        return sorted(pending, key=lambda file: (file.last_modified, file.name))

    def mark_loaded(self, file: ArchiveFile, lookback: timedelta) -> None:
        """Record ``file`` as loaded and forget loaded files that fell out of the window."""
        self.loaded_files[file.name] = file.last_modified
        if self.latest_modified is None or file.last_modified > self.latest_modified:
            self.latest_modified = file.last_modified
        cutoff = self.latest_modified - lookback
        for name in [name for name, modified in self.loaded_files.items() if modified < cutoff]:
            del self.loaded_files[name]

    def to_state(self) -> dict:
        return {
            "latest_modified": self.latest_modified.isoformat() if self.latest_modified else None,
            "loaded_files": {name: modified.isoformat() for name, modified in self.loaded_files.items()},
        }

    @classmethod
    def from_state(cls, document: dict) -> FileBookmark:
        latest = document.get("latest_modified")
        return cls(
            latest_modified=datetime.fromisoformat(latest) if latest else None,
            loaded_files={name: datetime.fromisoformat(modified) for name, modified in document.get("loaded_files", {}).items()},
        )


class BookmarkError(ValueError):
    """The input state cannot be read as this tap's bookmark."""


def source_bookmark(state: dict, source_id: str) -> dict:
    """Return the bookmark document of ``source_id`` in a Singer state, or {} if there is none."""
    bookmarks = state.get("bookmarks", {})
    if not isinstance(bookmarks, dict):
        raise BookmarkError("the state's bookmarks is not an object; pass a state written by tap-segment or none")
    document = bookmarks.get(source_id, {})
    if not isinstance(document, dict):
        raise BookmarkError(f"the bookmark of source {source_id} is not an object")
    if document and document.get("format") != STATE_FORMAT:
        raise BookmarkError(
            f"the bookmark of source {source_id} has format {document.get('format')!r}, "
            f"but this tap reads format {STATE_FORMAT}; pass a state written by this version or none"
        )
    return document


def with_source_bookmark(state: dict, source_id: str, document: dict) -> dict:
    """Return a copy of ``state`` whose bookmark of ``source_id`` is ``document``."""
    bookmarks = dict(state.get("bookmarks", {}))
    bookmarks[source_id] = {"format": STATE_FORMAT, **document}
    return {**state, "bookmarks": bookmarks}
