"""Listing and reading Segment's event archive in S3 or in a local folder.

Segment's S3 destination writes ``[<prefix>/]segment-logs/<source-id>/<day>/<file>``,
where ``<day>`` is the UTC midnight of receipt in epoch milliseconds. Each file
is newline-delimited JSON, usually gzip-compressed. A local folder with the
same layout can stand in for the bucket.

Compression is detected by the gzip magic bytes, not by the name or the
Content-Encoding header: an object uploaded with ``Content-Encoding: gzip``
may hold gzip data inside gzip, and a ``.gz`` name may hold plain text.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Protocol

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
# Maximum gzip layers unwrapped. More layers are taken as corrupt input.
MAX_GZIP_LAYERS = 3
READ_BUFFER_BYTES = 1 << 20


class ArchiveReadError(OSError):
    """An archive file could not be listed, downloaded or decompressed."""


@dataclass(frozen=True, slots=True)
class ArchiveFile:
    """One file of a source's archive.

    ``key`` is the S3 object key, or the path below the local folder, which
    starts with ``segment-logs/`` in both cases. ``location`` is the S3 URL or
    the local path, for messages. ``name`` is the path below
    ``segment-logs/<source-id>/``, which the bookmark records.
    """

    key: str
    location: str
    name: str
    last_modified: datetime
    size: int


class Archive(Protocol):
    def list_files(self, source_id: str) -> list[ArchiveFile]:
        """Return every file below the source's folder, in no particular order."""

    def open(self, file: ArchiveFile) -> BinaryIO:
        """Open a file for reading its raw, possibly compressed, bytes."""


def source_folder(prefix: str, source_id: str) -> str:
    """Return the key prefix of a source's files, ending with ``/``."""
    parts = [part for part in prefix.strip("/").split("/") if part]
    return "/".join([*parts, "segment-logs", source_id]) + "/"


class LocalArchive:
    """An archive in a local folder, where a file's modification time is its LastModified."""

    def __init__(self, root: Path):
        self.root = root

    def list_files(self, source_id: str) -> list[ArchiveFile]:
        folder = self.root / "segment-logs" / source_id
        if not folder.is_dir():
            logger.warning("The folder %s does not exist, so source %s has no files yet", folder, source_id)
            return []
        files = []
        for directory, _, names in os.walk(folder):
            for name in names:
                # Editors and downloads leave hidden temporary files next to the data.
                if name.startswith("."):
                    continue
                path = Path(directory) / name
                status = path.stat()
                files.append(
                    ArchiveFile(
                        key=path.relative_to(self.root).as_posix(),
                        location=str(path),
                        name=path.relative_to(folder).as_posix(),
                        last_modified=datetime.fromtimestamp(status.st_mtime_ns / 1e9, tz=timezone.utc),
                        size=status.st_size,
                    )
                )
        return files

    def open(self, file: ArchiveFile) -> BinaryIO:
        try:
            return open(file.location, "rb", buffering=READ_BUFFER_BYTES)
        except OSError as error:
            raise ArchiveReadError(f"failed to open {file.location}: {error}") from error


class S3Archive:
    """An archive in an S3 bucket, read with a boto3 S3 client."""

    def __init__(self, client, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix

    def list_files(self, source_id: str) -> list[ArchiveFile]:
        # NOTE: this lists every object of the source at every run (one request
        # per 1,000 objects) because a late file can land in any day folder.
        from botocore.exceptions import BotoCoreError, ClientError

        folder = source_folder(self.prefix, source_id)
        paginator = self.client.get_paginator("list_objects_v2")
        files = []
        try:
            pages = list(paginator.paginate(Bucket=self.bucket, Prefix=folder))
        except (BotoCoreError, ClientError) as error:
            raise ArchiveReadError(f"failed to list s3://{self.bucket}/{folder}: {error}") from error
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue
                files.append(
                    ArchiveFile(
                        key=key,
                        location=f"s3://{self.bucket}/{key}",
                        name=key[len(folder):],
                        last_modified=item["LastModified"].astimezone(timezone.utc),
                        size=item["Size"],
                    )
                )
        return files

    def open(self, file: ArchiveFile) -> BinaryIO:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=file.key)
        except (BotoCoreError, ClientError) as error:
            raise ArchiveReadError(f"failed to download {file.location}: {error}") from error
        return io.BufferedReader(_StreamingBodyReader(response["Body"]), READ_BUFFER_BYTES)


class _StreamingBodyReader(io.RawIOBase):
    """A raw reader over a botocore StreamingBody that reports network errors as OSError."""

    def __init__(self, body):
        self.body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        from botocore.exceptions import BotoCoreError

        try:
            data = self.body.read(len(buffer))
        except BotoCoreError as error:
            raise OSError(f"download interrupted: {error}") from error
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.body.close()
        super().close()


def decompressed(stream: BinaryIO) -> BinaryIO:
    """Return ``stream`` with every gzip layer removed, detected by the magic bytes."""
    for _ in range(MAX_GZIP_LAYERS):
        if stream.peek(2)[:2] != GZIP_MAGIC:
            return stream
        stream = gzip.GzipFile(fileobj=stream, mode="rb")
    if stream.peek(2)[:2] == GZIP_MAGIC:
        raise ValueError(f"more than {MAX_GZIP_LAYERS} nested gzip layers")
    return stream


def read_lines(stream: BinaryIO, max_line_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """Yield (line number, line, length in bytes) for every line, counting from 1.

    A line longer than ``max_line_bytes`` is not read into memory: it is
    yielded cut to ``max_line_bytes + 1`` bytes with its full length, and the
    rest is skipped. The length does not count the line break.
    """
    number = 0
    while True:
        line = stream.readline(max_line_bytes + 1)
        if not line:
            return
        number += 1
        if line.endswith(b"\n"):
            yield number, line, len(line) - 1
            continue
        length = len(line)
        while length > max_line_bytes:
            rest = stream.readline(READ_BUFFER_BYTES)
            if not rest:
                break
            if rest.endswith(b"\n"):
                length += len(rest) - 1
                break
            length += len(rest)
        yield number, line, length


def open_lines(archive: Archive, file: ArchiveFile, max_line_bytes: int) -> Iterator[tuple[int, bytes, int]]:
    """Yield the lines of an archive file as ``read_lines`` does.

    Raises ArchiveReadError, naming the file, when it cannot be downloaded or
    decompressed. The lines read before the error have been yielded by then.
    """
    try:
        with archive.open(file) as raw:
            stream = decompressed(raw)
            yield from read_lines(stream, max_line_bytes)
    except ArchiveReadError:
        raise
    except (OSError, EOFError, zlib.error, ValueError) as error:
        # Corrupt gzip data raises BadGzipFile (an OSError), zlib.error or, when
        # the data ends early, EOFError.
        raise ArchiveReadError(f"failed to read {file.location}: {error}") from error
