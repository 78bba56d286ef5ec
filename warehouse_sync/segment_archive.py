"""Synthetic Segment event archive for tests, demos and benchmarks of tap-segment.

Files follow the layout of Segment's S3 destination:
``<root>/segment-logs/<source-id>/<day>/<file>.gz``, where ``<day>`` is the
UTC midnight of receipt in epoch milliseconds and each file is gzip-compressed
newline-delimited JSON, one Segment API message per line.

The six sources model a hosted infrastructure-as-code service: page views on
the Blog, Www and Io websites, console pages and tracks in App, and stack
operations from the Pulumi Service Backend. Every source also gets
identifies, a few duplicate messages (the same messageId in two files) and a
few malformed lines.

Generation is deterministic: the same arguments give byte-identical files and
the same modification times, which stand for S3's LastModified. Times derive
from ``start``, never from the clock. Each file's modification time is after
every receivedAt in it, so (modification time, path) order is receipt order.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import random
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

__all__ = [
    "DEFAULT_START",
    "EVENT_TABLES",
    "SOURCES",
    "SegmentSource",
    "add_hour",
    "day_folder",
    "generate_archive",
    "generate_large",
    "upload_to_s3",
    "write_log_file",
]

DEFAULT_START = datetime(2026, 11, 1, tzinfo=timezone.utc)
# A file is written this long after the end of the hour it covers.
FILE_WRITE_DELAY = timedelta(minutes=5)
# Every fifth file of a source gets one malformed line, and every fourth file
# repeats a message of the file before it.
MALFORMED_EVERY = 5
DUPLICATE_EVERY = 4

# The warehouse table of each track event that the generator sends.
EVENT_TABLES = {
    "Newsletter Signup": "newsletter_signup",
    "Signup Clicked": "signup_clicked",
    "Stack Viewed": "stack_viewed",
    "Button Clicked": "button_clicked",
    "Stack Update": "stack_update",
    "Stack Destroy": "stack_destroy",
    "Stack Created": "stack_created",
}


@dataclass(frozen=True)
class SegmentSource:
    """A Segment source: its display name, source id, warehouse schema and kind of traffic."""

    name: str
    source_id: str
    schema_name: str
    kind: str  # "website", "console" or "backend"


def _fake_source_id(name: str) -> str:
    """Derive a stable 10-character id that looks like Segment's source ids."""
    return hashlib.sha256(f"segment-source:{name}".encode()).hexdigest()[:10]


SOURCES = tuple(
    SegmentSource(name, _fake_source_id(name), schema_name, kind)
    for name, schema_name, kind in (
        ("App", "app", "console"),
        ("Blog", "blog", "website"),
        ("Info", "info", "website"),
        ("Io", "io", "website"),
        ("Pulumi Service Backend", "pulumi_service_backend", "backend"),
        ("Www", "www", "website"),
    )
)

# Message mix per kind of source: (weight, message kind).
_MIX = {
    "website": ((80, "page"), (8, "Signup Clicked"), (5, "Newsletter Signup"), (7, "identify")),
    "console": ((30, "page"), (30, "Stack Viewed"), (22, "Button Clicked"), (12, "identify"), (6, "group")),
    "backend": ((45, "Stack Update"), (15, "Stack Destroy"), (10, "Stack Created"), (20, "identify"), (7, "group"), (3, "alias")),
}
_WEBSITE_PATHS = ("/", "/docs/", "/docs/get-started/", "/pricing/", "/blog/", "/blog/iac-best-practices/", "/registry/", "/about/")
_CONSOLE_PATHS = ("/{org}", "/{org}/{project}/{stack}", "/{org}/{project}/{stack}/updates", "/{org}/settings/members")
_ORGS = ("acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka")
_PROJECTS = ("website", "infra", "data-platform", "payments", "k8s-cluster")
_STACKS = ("dev", "staging", "prod", "test-123")
_FIRST_NAMES = ("Ada", "Grace", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Frances")
_LAST_NAMES = ("Lovelace", "Hopper", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie", "Allen")
_USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
)
_MALFORMED_LINES = (
    '{"type": "page", "messageId": "truncated-line", "properties": {"path": "/do',
    "this is not JSON",
    '{"type": "track", "event": "Stack Viewed", "properties": {"stackName": "dev"}}',
)


def day_folder(moment: datetime) -> str:
    """Return the day folder name of ``moment``: its UTC midnight in epoch milliseconds."""
    midnight = moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return str(int(midnight.timestamp()) * 1000)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _file_name(rng: random.Random, window_start: datetime) -> str:
    """Return a file name in Segment's style: epoch ms, a hex id and a UUID."""
    return f"{int(window_start.timestamp() * 1000)}.{rng.getrandbits(48):012x}.{uuid.UUID(int=rng.getrandbits(128), version=4)}.gz"


def _gzip_bytes(data: bytes, compresslevel: int = 6) -> bytes:
    # mtime=0 keeps the gzip header, and so the file, identical between runs.
    return gzip.compress(data, compresslevel=compresslevel, mtime=0)


def _set_modified(path: Path, moment: datetime) -> None:
    nanoseconds = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    os.utime(path, ns=(nanoseconds, nanoseconds))


def write_log_file(
    root: Path,
    source_id: str,
    received_day: datetime,
    name: str,
    lines: list,
    modified: datetime,
    compress: bool = True,
) -> Path:
    """Write one archive file, set its modification time and return its path.

    Each item of ``lines`` is a dict, written as JSON, or a str or bytes line,
    written as it is, so a test can write malformed input. ``received_day``
    picks the day folder. With ``compress=False`` the file contains plain text
    whatever its name.
    """
    path = Path(root) / "segment-logs" / source_id / day_folder(received_day) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    encoded = []
    for line in lines:
        if isinstance(line, dict):
            line = json.dumps(line, separators=(",", ":"))
        encoded.append(line if isinstance(line, bytes) else line.encode("utf-8"))
    data = b"\n".join(encoded) + b"\n"
    path.write_bytes(_gzip_bytes(data) if compress else data)
    _set_modified(path, modified)
    return path


class _MessageFactory:
    """Builds realistic Segment messages for one source from a seeded random generator."""

    def __init__(self, source: SegmentSource, rng: random.Random):
        self.source = source
        self.rng = rng
        self.kinds = [kind for _, kind in _MIX[source.kind]]
        self.weights = [weight for weight, _ in _MIX[source.kind]]
        self.host = f"https://{source.schema_name.replace('_', '-')}.example.com"

    def message(self, received: datetime) -> dict:
        rng = self.rng
        kind = rng.choices(self.kinds, self.weights)[0]
        user_number = rng.randrange(200)
        user_id = f"user-{user_number:04d}" if kind in ("identify", "group", "alias") or rng.random() < 0.6 else None
        sent = received - timedelta(milliseconds=rng.randrange(50, 900))
        original = sent - timedelta(milliseconds=rng.randrange(0, 200))
        message = {
            "type": kind if kind in ("page", "identify", "group", "alias") else "track",
            "messageId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "anonymousId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "userId": user_id,
            "context": self._context(),
            "originalTimestamp": _iso(original),
            # The backend's server-side messages carry a null sentAt.
            "sentAt": None if self.source.kind == "backend" else _iso(sent),
            "receivedAt": _iso(received),
            "timestamp": _iso(received - (sent - original)),
            "channel": "server" if self.source.kind == "backend" else "client",
            "projectId": self.source.source_id,
            "writeKey": "fake-write-key-" + self.source.source_id,
            "version": 2,
            "_metadata": {"bundled": ["Segment.io"], "unbundled": []},
            "integrations": {},
        }
        if user_id is None:
            del message["userId"]
        if kind == "page":
            message.update(self._page())
        elif kind == "identify":
            message["traits"] = self._traits(user_number)
        elif kind == "group":
            org = _ORGS[user_number % len(_ORGS)]
            message["groupId"] = f"org-{org}"
            message["traits"] = {"name": org.title(), "plan": rng.choice(("individual", "team", "enterprise")), "memberCount": rng.randrange(1, 400)}
        elif kind == "alias":
            message["previousId"] = message["anonymousId"]
        else:
            message["event"] = kind
            message["properties"] = self._properties(kind)
        return message

    def _context(self) -> dict:
        rng = self.rng
        if self.source.kind == "backend":
            return {"library": {"name": "analytics-go", "version": "3.3.0"}}
        context = {
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "ip": f"203.0.113.{rng.randrange(1, 255)}",
            "locale": rng.choice(("en-US", "de-DE", "ja-JP", "pt-BR")),
            "userAgent": rng.choice(_USER_AGENTS),
            "page": {"path": rng.choice(_WEBSITE_PATHS), "referrer": "https://www.google.com/"},
        }
        if rng.random() < 0.2:
            context["campaign"] = {"name": "fall-launch", "source": "newsletter", "medium": "email"}
        return context

    def _page(self) -> dict:
        rng = self.rng
        if self.source.kind == "console":
            path = rng.choice(_CONSOLE_PATHS).format(org=rng.choice(_ORGS), project=rng.choice(_PROJECTS), stack=rng.choice(_STACKS))
            name = "Console"
        else:
            path = rng.choice(_WEBSITE_PATHS)
            name = path.strip("/").split("/")[-1].replace("-", " ").title() or "Home"
        search = rng.choice(("", "", "?utm_source=newsletter", "?q=kubernetes"))
        properties = {
            "name": name,
            "path": path,
            "url": self.host + path + search,
            "title": f"{name} | {self.source.name}",
            "referrer": rng.choice(("", "https://www.google.com/", "https://news.ycombinator.com/")),
            "search": search,
        }
        return {"name": name, "properties": properties}

    def _traits(self, user_number: int) -> dict:
        first = _FIRST_NAMES[user_number % len(_FIRST_NAMES)]
        last = _LAST_NAMES[(user_number // len(_FIRST_NAMES)) % len(_LAST_NAMES)]
        created = DEFAULT_START - timedelta(days=400 - user_number)
        traits = {"email": f"{first}.{last}.{user_number}@example.com".lower(), "name": f"{first} {last}", "createdAt": _iso(created)}
        if self.source.kind == "console":
            traits["githubLogin"] = f"{first}{last}{user_number}".lower()
        return traits

    def _properties(self, event: str) -> dict:
        rng = self.rng
        org, project, stack = rng.choice(_ORGS), rng.choice(_PROJECTS), rng.choice(_STACKS)
        if event == "Stack Update":
            return {
                "stackName": stack,
                "orgName": org,
                "projectName": project,
                "resourceCount": rng.randrange(0, 500),
                "updateKind": rng.choice(("update", "preview", "refresh")),
                "durationSeconds": round(rng.uniform(1, 900), 3),
                "succeeded": rng.random() < 0.93,
                "cliVersion": rng.choice(("3.130.0", "3.131.0", "3.132.1")),
            }
        if event in ("Stack Destroy", "Stack Created"):
            return {"stackName": stack, "orgName": org, "projectName": project, "resourceCount": rng.randrange(0, 500)}
        if event == "Stack Viewed":
            return {"stackName": stack, "orgName": org, "projectName": project, "tab": rng.choice(("overview", "resources", "updates", "settings"))}
        if event == "Button Clicked":
            return {"label": rng.choice(("New project", "Invite member", "Create token", "Upgrade")), "location": rng.choice(("header", "sidebar", "dialog"))}
        if event == "Signup Clicked":
            return {"location": rng.choice(("hero", "pricing", "footer")), "experiment": {"name": "cta-color", "variant": rng.choice(("a", "b"))}}
        return {"list": "weekly", "topics": rng.sample(["kubernetes", "aws", "azure", "gcp", "python"], 2)}


def _expected_rows(manifest: dict, message: dict) -> None:
    tables = manifest["tables"]
    if message["type"] == "track":
        tables["tracks"] += 1
        tables[EVENT_TABLES[message["event"]]] += 1
    else:
        tables[{"page": "pages", "identify": "identifies", "group": "groups", "alias": "aliases"}[message["type"]]] += 1
    if message["type"] == "identify" and "userId" in message:
        manifest["users"].add(message["userId"])


def _write_hour(root: Path, source: SegmentSource, index: int, window_start: datetime, files: int,
                events_per_file: int, rng: random.Random, manifest: dict, file_counter: int) -> list[Path]:
    """Write ``files`` files covering one hour of one source, updating ``manifest``."""
    factory = _MessageFactory(source, rng)
    paths = []
    previous_message = manifest.get("_last_message")
    for file_index in range(files):
        start = window_start + timedelta(minutes=60 * file_index // files)
        end = window_start + timedelta(minutes=60 * (file_index + 1) // files)
        span_ms = int((end - start).total_seconds() * 1000)
        received = sorted(start + timedelta(milliseconds=rng.randrange(span_ms)) for _ in range(events_per_file))
        lines: list = []
        for moment in received:
            message = factory.message(moment)
            lines.append(message)
            _expected_rows(manifest, message)
            manifest["messages"] += 1
        number = file_counter + file_index
        if previous_message is not None and number % DUPLICATE_EVERY == DUPLICATE_EVERY - 1:
            lines.insert(rng.randrange(len(lines) + 1), previous_message)
            manifest["duplicates"] += 1
        if number % MALFORMED_EVERY == MALFORMED_EVERY - 1:
            lines.insert(rng.randrange(len(lines) + 1), _MALFORMED_LINES[(number // MALFORMED_EVERY) % len(_MALFORMED_LINES)])
            manifest["malformed"] += 1
        previous_message = lines[-1] if isinstance(lines[-1], dict) else lines[0]
        # Each source's files are modified one second after the previous
        # source's, so no two files share a modification time.
        modified = end + FILE_WRITE_DELAY + timedelta(seconds=index)
        path = write_log_file(root, source.source_id, start, _file_name(rng, start), lines, modified)
        paths.append(path)
        manifest["files"].append(path.relative_to(root).as_posix())
        manifest["lines"] += len(lines)
    manifest["_last_message"] = previous_message
    return paths


def _new_manifest(source: SegmentSource) -> dict:
    return {
        "name": source.name,
        "schema": source.schema_name,
        "files": [],
        "lines": 0,
        "messages": 0,
        "duplicates": 0,
        "malformed": 0,
        "tables": Counter(),
        "users": set(),
    }


def _public(manifest: dict) -> dict:
    result = {key: value for key, value in manifest.items() if not key.startswith("_")}
    result["tables"] = dict(sorted(manifest["tables"].items()))
    result["users"] = sorted(manifest["users"])
    return result


def generate_archive(
    root: Path,
    days: int = 5,
    files_per_day: int = 4,
    events_per_file: int = 50,
    seed: int = 7,
    start: datetime = DEFAULT_START,
) -> dict:
    """Write an archive for every source in SOURCES and return a description of it.

    Each day has ``files_per_day`` files per source, each covering one hour
    window spread over the day, with ``events_per_file`` distinct messages
    plus any duplicate or malformed line. The result maps each source id to:
    its name and schema; ``files`` (paths below ``root`` in write order);
    ``lines``; ``messages`` (distinct messages); ``duplicates``; ``malformed``;
    ``tables`` (rows expected per table, without ``users`` and ``rejects``);
    and ``users`` (the user ids identified).
    """
    root = Path(root)
    sources = {}
    for index, source in enumerate(SOURCES):
        rng = random.Random(f"{seed}:{source.source_id}")
        manifest = _new_manifest(source)
        for day in range(days):
            for slot in range(files_per_day):
                hour = start + timedelta(days=day, hours=slot * 24 // files_per_day)
                _write_hour(root, source, index, hour, 1, events_per_file, rng, manifest, len(manifest["files"]))
        sources[source.source_id] = _public(manifest)
    return {"root": str(root), "start": start.isoformat(), "days": days, "seed": seed, "sources": sources}


def _latest_modified(root: Path) -> datetime | None:
    latest = None
    for path in (root / "segment-logs").rglob("*"):
        if path.is_file():
            modified = path.stat().st_mtime_ns
            latest = modified if latest is None or modified > latest else latest
    return None if latest is None else datetime.fromtimestamp(latest / 1e9, tz=timezone.utc)


def add_hour(root: Path, seed: int = 7, files_per_source: int = 2, events_per_file: int = 50) -> list[Path]:
    """Add one new hour of files for every source, after the newest file in ``root``, and return their paths.

    The hour starts at the first full hour after the newest modification time,
    and the new files are modified after every existing file, so an
    incremental load picks up exactly these files.
    """
    root = Path(root)
    latest = _latest_modified(root) or DEFAULT_START
    hour = latest.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    paths = []
    for index, source in enumerate(SOURCES):
        rng = random.Random(f"{seed}:{source.source_id}:{hour.isoformat()}")
        manifest = _new_manifest(source)
        paths += _write_hour(root, source, index, hour, files_per_source, events_per_file, rng, manifest, 0)
    return paths


def _large_templates(source: SegmentSource, rng: random.Random, count: int = 64) -> list[str]:
    """Return message templates as JSON text with %-placeholders for the messageId and the timestamps."""
    factory = _MessageFactory(source, rng)
    templates = []
    marker = "\u0001"
    for _ in range(count):
        message = factory.message(DEFAULT_START)
        message["messageId"] = marker + "id"
        for field in ("originalTimestamp", "receivedAt", "timestamp"):
            message[field] = marker + "ts"
        text = json.dumps(message, separators=(",", ":")).replace("%", "%%")
        text = text.replace('"\\u0001id"', '"%(id)s"').replace('"\\u0001ts"', '"%(ts)s"')
        templates.append(text)
    return templates


def generate_large(root: Path, events: int, seed: int = 7, events_per_file: int = 20_000,
                   source: SegmentSource | None = None, start: datetime = DEFAULT_START) -> dict:
    """Write ``events`` distinct messages of one source quickly, for benchmarks, and return a summary.

    Messages come from 64 pre-built templates of the backend source (or
    ``source``), filled with a unique messageId and a receipt time, ten
    messages per second. Files are written with gzip level 1 and modified one
    minute apart. There are no duplicates or malformed lines.
    """
    root = Path(root)
    source = source or next(s for s in SOURCES if s.kind == "backend")
    rng = random.Random(f"{seed}:{source.source_id}:large")
    templates = _large_templates(source, rng)
    count = len(templates)
    base_seconds = int(start.timestamp())
    paths = []
    written = 0
    file_number = 0
    while written < events:
        batch = min(events_per_file, events - written)
        lines = []
        second_text = ""
        current_second = -1
        for offset in range(written, written + batch):
            second = offset // 10
            if second != current_second:
                current_second = second
                second_text = datetime.fromtimestamp(base_seconds + second, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.")
            values = {"id": "%08x-0000-4000-8000-%012x" % (seed, offset), "ts": "%s%03dZ" % (second_text, (offset % 10) * 100)}
            lines.append(templates[offset % count] % values)
        first_received = start + timedelta(seconds=written // 10)
        path = root / "segment-logs" / source.source_id / day_folder(first_received) / f"large-{file_number:06d}.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_gzip_bytes(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=1))
        _set_modified(path, start + timedelta(minutes=file_number))
        paths.append(path)
        written += batch
        file_number += 1
    return {"source_id": source.source_id, "schema": source.schema_name, "events": written, "files": len(paths)}


def upload_to_s3(root: Path, bucket: str, prefix: str, s3_client) -> list[str]:
    """Upload every archive file below ``root`` to ``bucket`` under ``prefix`` and return the keys.

    Files go up in (modification time, path) order, so S3's LastModified
    order matches the local one. Objects keep their bytes as they are.
    """
    root = Path(root)
    files = [path for path in (root / "segment-logs").rglob("*") if path.is_file()]
    files.sort(key=lambda path: (path.stat().st_mtime_ns, path.as_posix()))
    keys = []
    for path in files:
        key = "/".join(part for part in (prefix.strip("/"), path.relative_to(root).as_posix()) if part)
        s3_client.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys
