"""Tests of tap-segment, the Singer tap for Segment's raw event archive.

Unit tests import the tap's standard-library modules directly. Every other
test runs the tap from its virtualenv (``.venvs/tap-segment``, built by
``make setup``) and checks the Singer messages it writes. The archives come
from ``warehouse_sync.segment_archive`` or from the test itself and sit in a
local folder or in a moto S3 server on loopback.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from segment_helpers import (
    FAKE_AWS,
    discover,
    import_tap_modules,
    moto_server,
    run_tap,
    s3_client,
)
from warehouse_sync import segment_archive
from warehouse_sync.segment_archive import SOURCES, add_hour, generate_archive, generate_large, upload_to_s3, write_log_file

import_tap_modules()

from tap_segment import naming, values  # noqa: E402
from tap_segment.archive import ArchiveFile  # noqa: E402
from tap_segment.bookmark import FileBookmark  # noqa: E402
from tap_segment.settings import ConfigError, Settings  # noqa: E402

START = datetime(2026, 11, 1, tzinfo=timezone.utc)
BACKEND = next(source for source in SOURCES if source.schema_name == "pulumi_service_backend")
SOURCE_ID = "testsource1"


def message(message_type: str, message_id: str, **fields) -> dict:
    """Return a Segment message with the usual server fields, overridden by ``fields``."""
    document = {
        "type": message_type,
        "messageId": message_id,
        "anonymousId": "anon-1",
        "context": {"library": {"name": "analytics.js", "version": "next-1.70.0"}},
        "originalTimestamp": "2026-11-01T09:59:59.500Z",
        "sentAt": "2026-11-01T09:59:59.800Z",
        "receivedAt": "2026-11-01T10:00:00.000Z",
        "timestamp": "2026-11-01T09:59:59.700Z",
        "writeKey": "fake-write-key",
        "_metadata": {"bundled": ["Segment.io"]},
    }
    document.update(fields)
    return document


def track(message_id: str, event: str, properties: dict | None = None, **fields) -> dict:
    return message("track", message_id, event=event, properties=properties or {}, **fields)


def local_config(root: Path, **settings) -> dict:
    return {"source_id": SOURCE_ID, "schema_name": "test", "local_path": str(root), **settings}


def write_file(root: Path, name: str, lines: list, minutes: int, day: datetime = START, **options) -> Path:
    """Write one archive file of the test source, modified ``minutes`` after START."""
    return write_log_file(root, SOURCE_ID, day, name, lines, START + timedelta(minutes=minutes), **options)


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {row["id"]: row for row in rows}


# --- naming -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Stack Destroy", "stack_destroy"),
        ("sampleText", "sample_text"),
        ("2FA Enabled", "2fa_enabled"),
        ("HTTPResponse", "http_response"),
        ("userID", "user_id"),
        ("firstName", "first_name"),
        ("first_name", "first_name"),
        ("item2Name", "item2_name"),
        ("a  -- b", "a_b"),
        ("  __leading and trailing__ ", "leading_and_trailing"),
        ("page.path/segment:part", "page_path_segment_part"),
        ("Añadir €uro", "aadir_uro"),
        ("user's (new) e-mail!", "users_new_e_mail"),
        ("🎉", ""),
    ],
)
def test_snake_case_conversion(name, expected):
    assert naming.snake_case(name) == expected


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (["2FA Enabled"], "_2fa_enabled"),
        (["select"], "_select"),
        (["Timestamp"], "_timestamp"),
        (["user"], "_user"),
        (["Order"], "_order"),
        (["Stack Destroy"], "stack_destroy"),
        (["user", "firstName"], "user_first_name"),
        (["🎉"], "unnamed"),
    ],
)
def test_identifier_prefixes_digits_and_reserved_words(parts, expected):
    assert naming.identifier(parts, "unnamed") == expected


def test_identifier_cut_to_127_bytes():
    name = naming.identifier(["x" * 300], "unnamed")
    assert len(name.encode()) == 127


def test_truncate_utf8_keeps_whole_characters():
    # "a" is one byte in UTF-8 and "é" two.
    assert naming.truncate_utf8("aé" * 10, 2) == "a"
    assert naming.truncate_utf8("aé" * 10, 3) == "aé"
    assert naming.truncate_utf8("aé" * 10, 5) == "aéa"


def test_first_free_name_numbers_collisions():
    assert naming.first_free_name("first_name", {"id"}) == "first_name"
    assert naming.first_free_name("first_name", {"first_name"}) == "first_name_2"
    assert naming.first_free_name("first_name", {"first_name", "first_name_2"}) == "first_name_3"
    long_name = "y" * 127
    suffixed = naming.first_free_name(long_name, {long_name})
    assert suffixed.endswith("_2")
    assert len(suffixed.encode()) == 127


def test_reserved_words_from_redshift_list():
    assert {"timestamp", "user", "group", "order", "from", "table", "wallet"} <= naming.REDSHIFT_RESERVED_WORDS
    assert "users" not in naming.REDSHIFT_RESERVED_WORDS


# --- values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01T10:00:00.123Z", values.TIMESTAMP),
        ("2026-11-01T10:00:00+02:00", values.TIMESTAMP),
        ("2026-11-01", values.TIMESTAMP),
        ("2026-13-01T10:00:00Z", values.STRING),
        ("20261101", values.STRING),
        ("2026-W44-1", values.STRING),
        ("hello", values.STRING),
        (True, values.BOOLEAN),
        (7, values.INTEGER),
        (2**70, values.STRING),
        (1.5, values.NUMBER),
        (float("inf"), values.STRING),
        (["a", 1], values.STRING),
    ],
)
def test_value_type(value, expected):
    assert values.value_type(value) == expected


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        (None, values.INTEGER, values.INTEGER),
        (values.INTEGER, values.NUMBER, values.NUMBER),
        (values.NUMBER, values.INTEGER, values.NUMBER),
        (values.TIMESTAMP, values.STRING, values.STRING),
        (values.BOOLEAN, values.INTEGER, values.STRING),
        (values.INTEGER, values.TIMESTAMP, values.STRING),
    ],
)
def test_merge_types(current, new, expected):
    assert values.merge_types(current, new) == expected


def test_convert_normalizes_offsets_to_utc():
    assert values.convert("2026-11-01T10:00:00+02:00", values.TIMESTAMP) == "2026-11-01T08:00:00.000000Z"
    assert values.convert("2026-11-01T10:00:00", values.TIMESTAMP) == "2026-11-01T10:00:00.000000Z"
    assert values.convert("2026-11-01T10:00:00.5Z", values.TIMESTAMP) == "2026-11-01T10:00:00.5Z"


def test_convert_writes_text_form_in_string_columns():
    assert values.convert(True, values.STRING) == "true"
    assert values.convert(12, values.STRING) == "12"
    assert values.convert(1.5, values.STRING) == "1.5"
    assert values.convert(["a", {"b": 1}], values.STRING) == '["a", {"b": 1}]'
    assert values.convert(float("inf"), values.STRING) == "Infinity"


def test_integer_schema_is_bigint_range():
    schema = values.json_schema(values.INTEGER)
    assert schema["minimum"] == -(2**63)
    assert schema["maximum"] == 2**63 - 1


# --- settings ---------------------------------------------------------------


def test_settings_defaults():
    settings = Settings.from_config({"source_id": "abc123", "local_path": "/data"})
    assert settings.schema_name == "abc123"
    assert settings.lookback == timedelta(days=3)
    assert settings.max_line_bytes == 512 * 1024
    assert settings.max_property_columns == 500
    assert settings.reject_raw_max_chars == 10_000
    assert settings.max_identifier_bytes == 127
    assert settings.s3 is None


def test_settings_s3_hides_credentials_in_repr():
    settings = Settings.from_config({"source_id": "abc123", "s3_bucket": "archive", "aws_access_key_id": "AKIAEXAMPLE",
                                     "aws_secret_access_key": "very-secret"})
    assert settings.s3.bucket == "archive"
    assert "very-secret" not in repr(settings)
    assert "AKIAEXAMPLE" not in repr(settings)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"source_id": "abc", "local_path": "/d", "s3_bucket": "b"}, "exactly one of s3_bucket"),
        ({"source_id": "abc"}, "exactly one of s3_bucket"),
        ({"source_id": "", "local_path": "/d"}, "source_id"),
        ({"source_id": "a/b", "local_path": "/d"}, "source_id"),
        ({"source_id": "abc", "local_path": "/d", "lookback_days": 0}, "lookback_days"),
        ({"source_id": "abc", "local_path": "/d", "max_property_columns": 1600}, "max_property_columns"),
        ({"source_id": "abc", "local_path": "/d", "max_line_bytes": "big"}, "max_line_bytes"),
        ({"source_id": "abc", "s3_bucket": "b", "aws_access_key_id": "AKIA"}, "aws_secret_access_key"),
    ],
)
def test_settings_rejects_invalid_config(config, expected):
    with pytest.raises(ConfigError, match=expected):
        Settings.from_config(config)


# --- bookmark ---------------------------------------------------------------


def archive_file(name: str, hours: float) -> ArchiveFile:
    return ArchiveFile(key=f"segment-logs/s/{name}", location=name, name=name, last_modified=START + timedelta(hours=hours), size=1)


def test_bookmark_pending_files_order():
    files = [archive_file("b", 2), archive_file("a", 2), archive_file("c", 1)]
    assert [file.name for file in FileBookmark().pending_files(files, timedelta(days=3))] == ["c", "a", "b"]


def test_bookmark_skips_loaded_and_old_files():
    bookmark = FileBookmark()
    lookback = timedelta(days=1)
    for file in [archive_file("old", 0), archive_file("new", 30)]:
        bookmark.mark_loaded(file, lookback)
    assert set(bookmark.loaded_files) == {"new"}
    assert bookmark.loaded_until(lookback) == START + timedelta(hours=6)

    late = archive_file("late", 20)
    too_old = archive_file("too_old", 5)
    pending = bookmark.pending_files([archive_file("new", 30), late, too_old], lookback)
    assert [file.name for file in pending] == ["late"]


def test_bookmark_round_trips_through_state():
    bookmark = FileBookmark()
    bookmark.mark_loaded(archive_file("day/file.gz", 1), timedelta(days=3))
    restored = FileBookmark.from_state(json.loads(json.dumps(bookmark.to_state())))
    assert restored == bookmark


# --- generator --------------------------------------------------------------


def test_generator_is_deterministic(tmp_path):
    first = generate_archive(tmp_path / "a", days=1, files_per_day=2, events_per_file=10)
    second = generate_archive(tmp_path / "b", days=1, files_per_day=2, events_per_file=10)
    assert first["sources"] == second["sources"]
    for source in first["sources"].values():
        for relative in source["files"]:
            a, b = tmp_path / "a" / relative, tmp_path / "b" / relative
            assert a.read_bytes() == b.read_bytes()
            assert a.stat().st_mtime_ns == b.stat().st_mtime_ns


def test_generator_sources_and_layout(tmp_path):
    manifest = generate_archive(tmp_path, days=2, files_per_day=3, events_per_file=20)
    assert [source.schema_name for source in SOURCES] == ["app", "blog", "info", "io", "pulumi_service_backend", "www"]
    assert set(manifest["sources"]) == {source.source_id for source in SOURCES}
    backend = manifest["sources"][BACKEND.source_id]
    assert len(backend["files"]) == 6
    assert backend["tables"]["stack_update"] > 0
    assert backend["tables"]["stack_destroy"] > 0
    for relative in backend["files"]:
        parts = Path(relative).parts
        assert parts[:2] == ("segment-logs", BACKEND.source_id)
        day = datetime.fromtimestamp(int(parts[2]) / 1000, tz=timezone.utc)
        assert (day.hour, day.minute) == (0, 0)
        assert (tmp_path / relative).read_bytes()[:2] == b"\x1f\x8b"


# --- full loads of the generated archive ------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    return root, generate_archive(root, days=3, files_per_day=4, events_per_file=40)


@pytest.fixture(scope="module")
def full_loads(generated, tmp_path_factory):
    """Run the tap once per source over the generated archive; cache the runs by source id."""
    root, _ = generated
    runs = {}

    def load(source_id: str):
        if source_id not in runs:
            config = {"source_id": source_id, "local_path": str(root)}
            runs[source_id] = run_tap(tmp_path_factory.mktemp(f"run-{source_id}"), config)
        return runs[source_id]

    return load


@pytest.mark.slow
@pytest.mark.parametrize("source", SOURCES, ids=lambda source: source.schema_name)
def test_full_load_matches_generated_counts(generated, full_loads, source):
    _, manifest = generated
    expected = manifest["sources"][source.source_id]
    run = full_loads(source.source_id)
    counts = run.counts()

    for table, count in expected["tables"].items():
        assert counts.get(table) == count, table
    assert counts.get("rejects", 0) == expected["malformed"]
    assert {row["id"] for row in run.records.get("users", [])} == set(expected["users"])

    summary = run.summary()
    assert summary["source"] == source.source_id
    assert summary["messages"] == expected["messages"]
    assert summary["duplicates"] == expected["duplicates"]
    assert summary["rejects"] == expected["malformed"]
    assert summary["files"] == len(expected["files"])
    for table, count in expected["tables"].items():
        assert summary["tables"][table]["events"] == count


def message_ids(path: Path) -> set[str]:
    """Return the messageIds of the well-formed lines of an archive file."""
    ids = set()
    for line in gzip.decompress(path.read_bytes()).splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if document.get("messageId"):
            ids.add(document["messageId"])
    return ids


@pytest.mark.slow
def test_state_follows_each_files_records(generated, full_loads):
    root, manifest = generated
    run = full_loads(BACKEND.source_id)
    files = manifest["sources"][BACKEND.source_id]["files"]
    assert len(run.states) == len(files)

    written_ids: set[str] = set()
    states_seen = 0
    for message_document in run.messages:
        if message_document["type"] == "RECORD":
            written_ids.add(message_document["record"]["id"])
            continue
        if message_document["type"] != "STATE":
            continue
        states_seen += 1
        # The STATE that marks a file loaded comes after every record of that file.
        assert message_ids(root / files[states_seen - 1]) <= written_ids
        loaded = message_document["value"]["bookmarks"][BACKEND.source_id]["loaded_files"]
        assert set(loaded) == {"/".join(Path(name).parts[2:]) for name in files[:states_seen]}

    bookmark = run.final_state["bookmarks"][BACKEND.source_id]
    assert bookmark["format"] == 1
    assert bookmark["tables"]["stack_update"]["columns"]["resource_count"] == {"type": "integer", "path": ["properties", "resourceCount"]}
    assert bookmark["event_tables"]["stack_update"] == "stack_update"


@pytest.mark.slow
def test_standard_columns_and_flattening(full_loads):
    run = full_loads(BACKEND.source_id)
    update = run.records["stack_update"][0]
    assert update["event"] == "stack_update"
    assert update["event_text"] == "Stack Update"
    assert update["context_library_name"] == "analytics-go"
    for column in ("id", "received_at", "timestamp", "original_timestamp", "uuid_ts", "stack_name", "org_name", "resource_count"):
        assert column in update, column
    assert "write_key" not in update
    assert "_metadata" not in json.dumps(update)

    schema = run.last_schema("stack_update")
    assert schema["received_at"] == {"type": ["null", "string"], "format": "date-time"}
    assert schema["resource_count"]["type"] == ["null", "integer"]
    assert schema["duration_seconds"] == {"type": ["null", "number"]}
    assert schema["succeeded"] == {"type": ["null", "boolean"]}
    assert all(message_document["key_properties"] == ["id"] for messages in run.schemas.values() for message_document in messages)


@pytest.mark.slow
def test_pages_identifies_groups_aliases_columns(full_loads):
    app = full_loads(next(s.source_id for s in SOURCES if s.schema_name == "app"))
    page = app.records["pages"][0]
    for column in ("name", "path", "url", "title", "referrer", "search", "context_ip", "context_user_agent", "context_page_path"):
        assert column in page, column
    assert "name_2" not in app.last_schema("pages")

    identify = app.records["identifies"][0]
    for column in ("email", "name", "created_at", "github_login", "user_id"):
        assert column in identify, column
    assert app.last_schema("identifies")["created_at"]["format"] == "date-time"
    assert all("group_id" in row for row in app.records["groups"])

    backend = full_loads(BACKEND.source_id)
    assert all(row["previous_id"] for row in backend.records["aliases"])
    user = backend.records["users"][0]
    assert {"id", "email", "name", "created_at", "received_at", "uuid_ts"} <= set(user)


@pytest.mark.slow
def test_rerun_with_state_emits_nothing(generated, full_loads, tmp_path):
    root, _ = generated
    first = full_loads(BACKEND.source_id)
    again = run_tap(tmp_path, {"source_id": BACKEND.source_id, "local_path": str(root)}, state=first.final_state)
    assert again.record_count == 0
    assert again.schemas == {}
    assert again.final_state == first.final_state
    assert again.summary()["files"] == 0


@pytest.mark.slow
def test_incremental_hour_loads_only_new_files(tmp_path):
    root = tmp_path / "archive"
    generate_archive(root, days=1, files_per_day=2, events_per_file=20)
    config = {"source_id": BACKEND.source_id, "local_path": str(root)}
    first = run_tap(tmp_path / "first", config)

    new_paths = [path for path in add_hour(root, seed=11) if BACKEND.source_id in path.parts]
    new_ids = set().union(*(message_ids(path) for path in new_paths))
    second = run_tap(tmp_path / "second", config, state=first.final_state)

    loaded_ids = {row["id"] for stream, rows in second.records.items() if stream != "users" for row in rows}
    assert second.summary()["files"] == len(new_paths)
    assert loaded_ids
    assert loaded_ids <= new_ids
    assert second.last_schema("stack_update") == first.last_schema("stack_update")


# --- exactly once: late files, duplicates, corrupt objects -------------------


@pytest.mark.slow
def test_late_file_in_old_folder_loaded(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "a.gz", [track("m1", "Stack Update")], minutes=10)
    write_file(root, "b.gz", [track("m2", "Stack Update")], minutes=60 * 24 * 5, day=START + timedelta(days=5))
    first = run_tap(tmp_path / "first", local_config(root, lookback_days=1))
    assert {row["id"] for row in first.records["tracks"]} == {"m1", "m2"}

    # Written now into the first day's folder, long after that day.
    write_file(root, "late.gz", [track("m3", "Stack Update")], minutes=60 * 24 * 5 + 30)
    second = run_tap(tmp_path / "second", local_config(root, lookback_days=1), state=first.final_state)
    assert [row["id"] for row in second.records["tracks"]] == ["m3"]

    third = run_tap(tmp_path / "third", local_config(root, lookback_days=1), state=second.final_state)
    assert third.record_count == 0


@pytest.mark.slow
def test_file_before_lookback_window_skipped(tmp_path):
    # The documented limit: a file that shows up with a LastModified more than
    # lookback_days before the newest loaded file counts as loaded.
    root = tmp_path / "archive"
    write_file(root, "new.gz", [track("m1", "Stack Update")], minutes=60 * 24 * 10)
    first = run_tap(tmp_path / "first", local_config(root, lookback_days=3))
    write_file(root, "ancient.gz", [track("m2", "Stack Update")], minutes=60 * 24 * 2)
    second = run_tap(tmp_path / "second", local_config(root, lookback_days=3), state=first.final_state)
    assert second.record_count == 0


@pytest.mark.slow
def test_duplicates_within_run_skipped(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "a.gz", [track("m1", "Stack Update"), track("m2", "Stack Update")], minutes=1)
    write_file(root, "b.gz", [track("m2", "Stack Update"), track("m3", "Stack Update"), track("m3", "Stack Update")], minutes=2)
    run = run_tap(tmp_path / "run", local_config(root))
    assert [row["id"] for row in run.records["stack_update"]] == ["m1", "m2", "m3"]
    assert run.summary()["duplicates"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_gzip_stops_before_bookmark(tmp_path, damage):
    root = tmp_path / "archive"
    write_file(root, "good-1.gz", [track("m1", "Stack Update")], minutes=1)
    bad = write_file(root, "bad.gz", [track(f"b{i}", "Stack Update") for i in range(200)], minutes=2)
    data = bad.read_bytes()
    modified = bad.stat().st_mtime_ns
    bad.write_bytes(data[:20] + b"\x00" * 40 + data[60:] if damage == "garbage" else data[: len(data) // 2])
    os.utime(bad, ns=(modified, modified))
    write_file(root, "good-2.gz", [track("m2", "Stack Update")], minutes=3)

    run = run_tap(tmp_path / "run", local_config(root), expect_success=False)
    assert run.returncode != 0
    assert f"segment-logs/{SOURCE_ID}/{segment_archive.day_folder(START)}/bad.gz" in run.stderr
    loaded = run.final_state["bookmarks"][SOURCE_ID]["loaded_files"]
    assert list(loaded) == [f"{segment_archive.day_folder(START)}/good-1.gz"]
    assert "m2" not in {row["id"] for row in run.records.get("tracks", [])}

    again = run_tap(tmp_path / "again", local_config(root), state=run.final_state, expect_success=False)
    assert again.returncode != 0
    assert "m1" not in {row["id"] for row in again.records.get("tracks", [])}


@pytest.mark.slow
def test_malformed_lines_go_to_rejects(tmp_path):
    root = tmp_path / "archive"
    long_line = json.dumps(track("big", "Stack Update", {"blob": "x" * 5000}))
    lines = [
        track("m1", "Stack Update"),
        "this is not JSON",
        '{"type": "page", "messageId": "cut", "properties": {"pa',
        {"type": "track", "event": "Stack Update"},
        {"messageId": "no-type"},
        {"type": "launch", "messageId": "odd-type"},
        {"type": "track", "messageId": "no-event"},
        "[1, 2, 3]",
        '{"type": "page", "messageId": "nan", "properties": {"x": NaN}}',
        b'{"type": "page", "messageId": "bad-utf8", "name": "\xff"}',
        long_line,
        "",
        track("m2", "Stack Update"),
    ]
    write_file(root, "mixed.gz", lines, minutes=1)
    run = run_tap(tmp_path / "run", local_config(root, max_line_bytes=4096, reject_raw_max_chars=100))

    assert [row["id"] for row in run.records["tracks"]] == ["m1", "m2"]
    rejects = {row["line_number"]: row for row in run.records["rejects"]}
    expected = {
        2: "invalid_json",
        3: "invalid_json",
        4: "missing_message_id",
        5: "missing_type",
        6: "unsupported_type",
        7: "missing_event",
        8: "not_an_object",
        9: "invalid_json",
        10: "invalid_json",
        11: "line_too_long",
    }
    assert {number: row["reason"] for number, row in rejects.items()} == expected
    key = f"segment-logs/{SOURCE_ID}/{segment_archive.day_folder(START)}/mixed.gz"
    assert all(row["file_key"] == key for row in rejects.values())
    assert rejects[2]["raw"] == "this is not JSON"
    assert len(rejects[11]["raw"]) == 100
    assert "more than max_line_bytes (4096)" in rejects[11]["detail"]
    assert rejects[2]["id"] == f"{key}:2"
    assert run.summary()["rejects"] == 10
    assert run.summary()["reject_reasons"]["invalid_json"] == 4
    assert run.last_schema("rejects")["raw"]["maxLength"] == 65535


@pytest.mark.slow
def test_deeply_nested_lines_rejected(tmp_path):
    def nested(message_id: str, depth: int) -> str:
        start = f'{{"type":"track","messageId":"{message_id}","event":"Deep","properties":'
        return start + '{"a":' * depth + "1" + "}" * depth + "}"

    root = tmp_path / "archive"
    write_file(root, "deep.gz", [nested("parser-limit", 5000), nested("flatten-limit", 300), track("m1", "Deep")], minutes=1)
    run = run_tap(tmp_path / "run", local_config(root))

    reasons = {row["line_number"]: row["reason"] for row in run.records["rejects"]}
    assert reasons == {1: "invalid_json", 2: "too_deeply_nested"}
    assert [row["id"] for row in run.records["deep"]] == ["m1"]


# --- naming, collisions, types and limits through the tap --------------------


@pytest.mark.slow
def test_collisions_keep_every_value(tmp_path):
    root = tmp_path / "archive"
    lines = [
        track("m1", "Profile Updated", {"firstName": "Ada", "first_name": "Grace", "userId": "prop-user", "event": "prop-event",
                                       "from": "email", "2fa": True, "Timestamp": "2026-01-01T00:00:00Z"}, userId="u1"),
        track("m2", "Pages", {"n": 1}),
        track("m3", "users", {"n": 2}),
        track("m4", "Stack Destroy", {"n": 3}),
        track("m5", "stack_destroy", {"n": 4}),
        track("m6", "2FA Enabled", {}),
    ]
    write_file(root, "a.gz", lines, minutes=1)
    run = run_tap(tmp_path / "run", local_config(root))

    profile = run.records["profile_updated"][0]
    assert profile["first_name"] == "Ada"
    assert profile["first_name_2"] == "Grace"
    assert profile["user_id"] == "u1"
    assert profile["user_id_2"] == "prop-user"
    assert profile["event"] == "profile_updated"
    assert profile["event_2"] == "prop-event"
    assert profile["_from"] == "email"
    assert profile["_2fa"] is True
    assert profile["_timestamp"] == "2026-01-01T00:00:00Z"
    assert "the name first_name for properties.first_name is taken" in run.stderr

    assert run.records["pages_2"][0]["event_text"] == "Pages"
    assert run.records["users_2"][0]["event_text"] == "users"
    assert "pages" not in run.records
    assert "users" not in run.records
    assert [row["event_text"] for row in run.records["stack_destroy"]] == ["Stack Destroy", "stack_destroy"]
    assert run.records["_2fa_enabled"][0]["event"] == "_2fa_enabled"

    # The names are kept in the bookmark, so a later run maps paths the same way.
    again_root = tmp_path / "again"
    write_file(again_root, "b.gz", [track("m7", "Profile Updated", {"first_name": "Linus", "firstName": "Ken"})], minutes=2)
    again = run_tap(tmp_path / "run-2", local_config(again_root), state=run.final_state)
    assert again.records["profile_updated"][0]["first_name"] == "Ken"
    assert again.records["profile_updated"][0]["first_name_2"] == "Linus"


@pytest.mark.slow
def test_types_decided_within_batch(tmp_path):
    root = tmp_path / "archive"
    lines = [
        track("m1", "Measured", {"count": 1, "ratio": 1, "flag": True, "seenAt": "2026-11-01T10:00:00+02:00", "code": "20261101"}),
        track("m2", "Measured", {"count": 2, "ratio": 2.5, "flag": "maybe", "seenAt": "2026-11-02T10:00:00Z", "code": "x"}),
    ]
    write_file(root, "a.gz", lines, minutes=1)
    run = run_tap(tmp_path / "run", local_config(root))

    schema = run.last_schema("measured")
    assert schema["count"]["type"] == ["null", "integer"]
    assert schema["ratio"]["type"] == ["null", "number"]
    assert schema["flag"]["type"] == ["null", "string"]
    assert schema["seen_at"]["format"] == "date-time"
    assert schema["code"]["type"] == ["null", "string"]
    assert len(run.schemas["measured"]) == 1
    rows = by_id(run.records["measured"])
    assert rows["m1"]["flag"] == "true"
    assert rows["m2"]["flag"] == "maybe"
    assert rows["m1"]["ratio"] == 1
    assert rows["m1"]["seen_at"] == "2026-11-01T08:00:00.000000Z"
    assert "widened" not in run.stderr


@pytest.mark.slow
def test_type_conflict_in_later_run_widens_to_text(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "a.gz", [track("m1", "Measured", {"count": 5, "size": 1})], minutes=1)
    first = run_tap(tmp_path / "first", local_config(root))
    assert first.last_schema("measured")["count"]["type"] == ["null", "integer"]

    write_file(root, "b.gz", [track("m2", "Measured", {"count": 6, "size": 2.5}), track("m3", "Measured", {"count": "many", "size": 3})], minutes=2)
    second = run_tap(tmp_path / "second", local_config(root), state=first.final_state)

    schema = second.last_schema("measured")
    assert schema["count"]["type"] == ["null", "string"]
    assert schema["size"]["type"] == ["null", "number"]
    rows = by_id(second.records["measured"])
    assert rows["m2"]["count"] == "6"
    assert rows["m3"]["count"] == "many"
    assert rows["m3"]["size"] == 3
    assert "column count widened from integer to string" in second.stderr
    columns = second.final_state["bookmarks"][SOURCE_ID]["tables"]["measured"]["columns"]
    assert columns["count"]["type"] == "string"

    third_root = tmp_path / "third"
    write_file(third_root, "c.gz", [track("m4", "Measured", {"count": 7})], minutes=3)
    third = run_tap(tmp_path / "third-run", local_config(third_root), state=second.final_state)
    assert third.last_schema("measured")["count"]["type"] == ["null", "string"]
    assert third.records["measured"][0]["count"] == "7"


@pytest.mark.slow
def test_nested_values_flattened(tmp_path):
    root = tmp_path / "archive"
    properties = {
        "plan": {"name": "team", "limits": {"seats": 10}},
        "tags": ["a", "b"],
        "empty": {},
        "missing": None,
        "sampleText": "hi",
    }
    context = {"library": {"name": "analytics.js"}, "traits": {"email": "a@example.com"}, "campaign": {"utm-source": "news"}}
    write_file(root, "a.gz", [track("m1", "Plan Chosen", properties, context=context)], minutes=1)
    run = run_tap(tmp_path / "run", local_config(root))

    row = run.records["plan_chosen"][0]
    assert row["plan_name"] == "team"
    assert row["plan_limits_seats"] == 10
    assert json.loads(row["tags"]) == ["a", "b"]
    assert row["sample_text"] == "hi"
    assert row["context_traits_email"] == "a@example.com"
    assert row["context_campaign_utm_source"] == "news"
    schema = run.last_schema("plan_chosen")
    assert "empty" not in schema
    assert "missing" not in schema
    assert run.records["tracks"][0]["context_library_name"] == "analytics.js"
    assert "plan_name" not in run.last_schema("tracks")


@pytest.mark.slow
def test_property_columns_past_limit_overflow(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "a.gz", [track("m1", "Wide", {"a": 1, "b": 2, "c": {"d": 3}, "e": "five"}, context={})], minutes=1)
    run = run_tap(tmp_path / "run", local_config(root, max_property_columns=2))

    row = run.records["wide"][0]
    assert row["a"] == 1
    assert row["b"] == 2
    assert json.loads(row["properties_overflow"]) == {"properties": {"c": {"d": 3}, "e": "five"}}
    assert "so properties.c.d goes to column properties_overflow" in run.stderr
    assert run.summary()["overflow_values"] == {"wide": 2}


@pytest.mark.slow
def test_users_row_has_latest_traits(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "a.gz", [
        message("identify", "i1", userId="u1", traits={"email": "old@example.com", "name": "Old"}, timestamp="2026-11-01T10:00:00Z"),
        message("identify", "i2", userId="u1", traits={"name": "New"}, timestamp="2026-11-01T11:00:00Z"),
        message("identify", "i0", userId="u1", traits={"name": "Older", "plan": "free"}, timestamp="2026-11-01T09:00:00Z"),
        message("identify", "i3", anonymousId="anon-9", traits={"name": "Anonymous"}),
    ], minutes=1)
    run = run_tap(tmp_path / "run", local_config(root))
    assert len(run.records["identifies"]) == 4
    assert run.records["users"] == [
        {"id": "u1", "uuid_ts": run.records["users"][0]["uuid_ts"], "received_at": "2026-11-01T10:00:00.000Z",
         "email": "old@example.com", "name": "New", "plan": "free"},
    ]


@pytest.mark.slow
def test_page_and_group_and_alias_fields(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "a.gz", [
        message("page", "p1", name="Pricing", category="Docs", properties={"name": "Pricing", "path": "/pricing", "url": "https://x/pricing",
                                                                          "title": "Pricing", "referrer": "", "search": "?q=1"}),
        message("page", "p2", properties={"name": "Home", "path": "/"}),
        message("screen", "s1", name="Settings", properties={"tab": "billing"}),
        message("group", "g1", groupId="org-1", traits={"name": "Acme", "memberCount": 3}),
        message("alias", "a1", userId="u1", previousId="anon-1"),
    ], minutes=1)
    run = run_tap(tmp_path / "run", local_config(root))

    pages = by_id(run.records["pages"])
    assert pages["p1"]["name"] == "Pricing"
    assert pages["p1"]["category"] == "Docs"
    assert pages["p1"]["path"] == "/pricing"
    assert pages["p1"]["search"] == "?q=1"
    assert pages["p1"]["referrer"] == ""
    assert pages["p2"]["name"] == "Home"
    assert "name_2" not in run.last_schema("pages")
    assert run.records["screens"][0]["tab"] == "billing"
    assert run.records["groups"][0]["group_id"] == "org-1"
    assert run.records["groups"][0]["member_count"] == 3
    assert run.records["aliases"][0]["previous_id"] == "anon-1"


@pytest.mark.slow
def test_plain_text_file_with_gz_name(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "plain.gz", [track("m1", "Stack Update")], minutes=1, compress=False)
    run = run_tap(tmp_path / "run", local_config(root))
    assert [row["id"] for row in run.records["tracks"]] == ["m1"]


@pytest.mark.slow
def test_catalog_deselects_tables(tmp_path):
    root = tmp_path / "archive"
    write_file(root, "a.gz", [track("m1", "Stack Update"), "not json"], minutes=1)
    catalog = discover(tmp_path / "discover", local_config(root))
    streams = {stream["tap_stream_id"] for stream in catalog["streams"]}
    assert streams == {"aliases", "groups", "identifies", "pages", "rejects", "screens", "tracks", "users"}

    for stream in catalog["streams"]:
        for entry in stream["metadata"]:
            if entry["breadcrumb"] == []:
                entry["metadata"]["selected"] = stream["tap_stream_id"] != "rejects"
    run = run_tap(tmp_path / "run", local_config(root), catalog=catalog)
    assert "rejects" not in run.records
    assert "rejects" not in run.schemas
    assert [row["id"] for row in run.records["stack_update"]] == ["m1"]


@pytest.mark.slow
def test_invalid_config_fails_with_reason(tmp_path):
    run = run_tap(tmp_path, {"source_id": SOURCE_ID, "local_path": str(tmp_path), "s3_bucket": "archive"}, expect_success=False)
    assert run.returncode != 0
    assert "set exactly one of s3_bucket" in run.stderr
    assert run.messages == []


@pytest.mark.slow
def test_large_generator_loads_completely(tmp_path):
    summary = generate_large(tmp_path / "archive", 2500, events_per_file=1000)
    assert summary == {"source_id": BACKEND.source_id, "schema": "pulumi_service_backend", "events": 2500, "files": 3}
    run = run_tap(tmp_path / "run", {"source_id": BACKEND.source_id, "local_path": str(tmp_path / "archive")})
    result = run.summary()
    assert result["messages"] == 2500
    assert result["rejects"] == 0
    assert result["duplicates"] == 0
    assert result["files"] == 3


# --- S3 through moto's server -----------------------------------------------


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    with moto_server(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.mark.slow
def test_s3_load_with_content_encoding_gzip(s3_endpoint, tmp_path):
    client = s3_client(s3_endpoint)
    bucket = "segment-archive-load"
    client.create_bucket(Bucket=bucket)
    root = tmp_path / "archive"
    manifest = generate_archive(root, days=2, files_per_day=2, events_per_file=15)
    keys = upload_to_s3(root, bucket, "exports/prod", client)
    assert all(key.startswith("exports/prod/segment-logs/") for key in keys)

    day = segment_archive.day_folder(START)
    body = "\n".join(json.dumps(track(f"enc-{i}", "Stack Update", {"i": i})) for i in range(3)).encode()
    # Stored with Content-Encoding: gzip: one gzip layer from the upload, one from the file itself.
    client.put_object(Bucket=bucket, Key=f"exports/prod/segment-logs/{BACKEND.source_id}/{day}/encoded.gz",
                      Body=gzip.compress(gzip.compress(body)), ContentEncoding="gzip")
    client.put_object(Bucket=bucket, Key=f"exports/prod/segment-logs/{BACKEND.source_id}/{day}/encoded-once.gz",
                      Body=gzip.compress(json.dumps(track("enc-once", "Stack Update")).encode()), ContentEncoding="gzip")

    config = {"source_id": BACKEND.source_id, "s3_bucket": bucket, "s3_prefix": "exports/prod/", "s3_endpoint_url": s3_endpoint, **FAKE_AWS}
    run = run_tap(tmp_path / "run", config)
    expected = manifest["sources"][BACKEND.source_id]
    assert len(run.records["stack_update"]) == expected["tables"]["stack_update"] + 4
    assert {"enc-0", "enc-1", "enc-2", "enc-once"} <= {row["id"] for row in run.records["stack_update"]}
    assert run.summary()["files"] == len(expected["files"]) + 2
    assert run.summary()["rejects"] == expected["malformed"]
    assert all(row["file_key"].startswith("exports/prod/segment-logs/") for row in run.records.get("rejects", []))

    again = run_tap(tmp_path / "again", config, state=run.final_state)
    assert again.record_count == 0

    # A late object in the oldest day folder is loaded by the next run.
    client.put_object(Bucket=bucket, Key=f"exports/prod/segment-logs/{BACKEND.source_id}/{day}/late.gz",
                      Body=gzip.compress(json.dumps(track("late-1", "Stack Destroy")).encode()))
    late = run_tap(tmp_path / "late", config, state=again.final_state)
    assert [row["id"] for row in late.records["stack_destroy"]] == ["late-1"]


@pytest.mark.slow
def test_s3_corrupt_object_names_key(s3_endpoint, tmp_path):
    client = s3_client(s3_endpoint)
    bucket = "segment-archive-corrupt"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key=f"segment-logs/{SOURCE_ID}/1/a-good.gz", Body=gzip.compress(json.dumps(track("m1", "X")).encode()))
    client.put_object(Bucket=bucket, Key=f"segment-logs/{SOURCE_ID}/1/b-broken.gz", Body=b"\x1f\x8b\x08\x00" + b"\xff" * 50)
    config = {"source_id": SOURCE_ID, "s3_bucket": bucket, "s3_endpoint_url": s3_endpoint, **FAKE_AWS}
    run = run_tap(tmp_path / "run", config, expect_success=False)
    assert run.returncode != 0
    assert f"s3://{bucket}/segment-logs/{SOURCE_ID}/1/b-broken.gz" in run.stderr
    assert list(run.final_state["bookmarks"][SOURCE_ID]["loaded_files"]) == ["1/a-good.gz"]


@pytest.mark.slow
def test_s3_missing_bucket_fails(s3_endpoint, tmp_path):
    config = {"source_id": SOURCE_ID, "s3_bucket": "no-such-bucket", "s3_endpoint_url": s3_endpoint, **FAKE_AWS}
    run = run_tap(tmp_path / "run", config, expect_success=False)
    assert run.returncode != 0
    assert "NoSuchBucket" in run.stderr
