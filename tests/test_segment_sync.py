"""End-to-end Segment loads: tap-segment | target-postgres into a real PostgreSQL, per source schema."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from warehouse_sync import segment, segment_archive
from warehouse_sync.config import SegmentArchive
from warehouse_sync.errors import ConfigError, PipelineError

pytestmark = pytest.mark.slow
LOG = logging.getLogger("test-segment-sync")
BLOG = next(s for s in segment_archive.SOURCES if s.schema_name == "blog")
BACKEND = next(s for s in segment_archive.SOURCES if s.schema_name == "pulumi_service_backend")


def _sources(*archive_sources) -> segment.SegmentSettings:
    return segment.SegmentSettings(
        sources=tuple(segment.SegmentSource(s.name, s.source_id, s.schema_name) for s in archive_sources),
        tap_options={"lookback_days": 3},
    )


def _count(settings, sql):
    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        return conn.execute(sql).fetchone()[0]


def _tables(settings, schema):
    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
        ).fetchall()
    return {row[0] for row in rows}


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    manifest = segment_archive.generate_archive(root, days=2, files_per_day=2, events_per_file=30)
    return root, manifest


@pytest.fixture
def segment_settings(settings, archive):
    return replace(settings, segment=SegmentArchive(local_path=archive[0]))


def test_sources_load_into_own_schemas(segment_settings, archive):
    sources = _sources(BLOG, BACKEND)
    manifest = archive[1]["sources"]

    reports = [segment.sync_source(segment_settings, s, sources, logger=LOG) for s in sources.sources]

    assert {"pages", "identifies", "tracks", "users"} <= _tables(segment_settings, "blog")
    assert {"stack_update", "stack_destroy", "tracks"} <= _tables(segment_settings, "pulumi_service_backend")
    for report, source in zip(reports, (BLOG, BACKEND)):
        expected = manifest[source.source_id]
        assert report.files == len(expected["files"])
        assert report.duplicates == expected["duplicates"]
        assert report.rejects == expected["malformed"]
        for table, rows in expected["tables"].items():
            warehouse_rows = _count(segment_settings, f"SELECT count(*) FROM {source.schema_name}.{table}")
            assert warehouse_rows == rows, f"{source.schema_name}.{table}"
    destroy_ids = _count(
        segment_settings, "SELECT count(DISTINCT id) = count(*) FROM pulumi_service_backend.stack_destroy"
    )
    assert destroy_ids is True
    event_text = _count(segment_settings, "SELECT min(event_text) FROM pulumi_service_backend.stack_destroy")
    assert event_text == "Stack Destroy"


def test_rerun_loads_nothing_then_new_hour(segment_settings, archive):
    sources = _sources(BLOG)
    first = segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)
    pages_before = _count(segment_settings, "SELECT count(*) FROM blog.pages")

    second = segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)
    segment_archive.add_hour(archive[0])
    third = segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)

    assert first.events > 0
    assert second.events == 0
    assert second.files == 0
    with psycopg.connect(**segment_settings.warehouse.conninfo()) as conn:
        checked = conn.execute(
            "SELECT count(*) FROM _etl.run_history WHERE pipeline = 'segment-blog' AND stream = 'pages'"
            " AND status = 'succeeded' AND rows_loaded = 0"
        ).fetchone()[0]
    assert checked == 1
    assert third.files == 2
    assert _count(segment_settings, "SELECT count(*) FROM blog.pages") > pages_before


def test_late_file_in_old_day_folder_loaded(segment_settings, archive):
    sources = _sources(BLOG)
    segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)
    old_day = datetime.fromisoformat(archive[1]["start"])
    late_modified = datetime.now(timezone.utc) - timedelta(minutes=1)
    message = {
        "type": "page", "messageId": "late-message-1", "anonymousId": "anon-late",
        "name": "Late", "properties": {"path": "/late/"},
        "timestamp": old_day.isoformat(), "receivedAt": old_day.isoformat(), "sentAt": None,
    }
    segment_archive.write_log_file(archive[0], BLOG.source_id, old_day, "late.gz", [message], late_modified)

    report = segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)

    assert report.files == 1
    assert _count(segment_settings, "SELECT count(*) FROM blog.pages WHERE id = 'late-message-1'") == 1


def test_corrupt_file_fails_and_is_retried(segment_settings, archive, pg_server):
    sources = _sources(BLOG)
    segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)
    day = datetime.fromisoformat(archive[1]["start"]) + timedelta(days=1)
    broken = segment_archive.write_log_file(
        archive[0], BLOG.source_id, day, "broken.gz", [{"type": "page", "messageId": "m1"}],
        datetime.now(timezone.utc) - timedelta(minutes=2),
    )
    broken.write_bytes(b"\x1f\x8b" + b"not really gzip" * 10)

    with pytest.raises(PipelineError) as raised:
        segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)
    assert "broken.gz" in str(raised.value)

    message = {"type": "page", "messageId": "fixed-1", "anonymousId": "a", "properties": {},
               "timestamp": day.isoformat(), "receivedAt": day.isoformat()}
    segment_archive.write_log_file(
        archive[0], BLOG.source_id, day, "broken.gz", [message], datetime.now(timezone.utc) - timedelta(minutes=1)
    )
    report = segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)

    assert report.files == 1
    assert _count(segment_settings, "SELECT count(*) FROM blog.pages WHERE id = 'fixed-1'") == 1


def test_rejects_table_names_file_and_line(segment_settings, archive):
    sources = _sources(BLOG)
    day = datetime.fromisoformat(archive[1]["start"])
    segment_archive.write_log_file(
        archive[0], BLOG.source_id, day, "bad-lines.gz",
        ["this is not JSON", '{"type": "page"}', {"type": "page", "messageId": "good-1", "anonymousId": "a",
                                                  "timestamp": day.isoformat(), "receivedAt": day.isoformat()}],
        datetime.now(timezone.utc) - timedelta(minutes=1),
    )

    report = segment.sync_source(segment_settings, sources.sources[0], sources, logger=LOG)

    with psycopg.connect(**segment_settings.warehouse.conninfo()) as conn:
        columns = {
            row[0] for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'blog' AND table_name = 'rejects'"
            )
        }
        rows = conn.execute("SELECT * FROM blog.rejects").fetchall()
    assert len(rows) == archive[1]["sources"][BLOG.source_id]["malformed"] + 2
    assert report.rejects == len(rows)
    assert {"raw", "reason"} <= columns
    assert any("key" in c for c in columns)
    assert any("line" in c for c in columns)


def test_s3_archive_through_moto(settings, archive, s3_client, moto_s3):
    s3_client.create_bucket(Bucket="segment-archive")
    segment_archive.upload_to_s3(archive[0], "segment-archive", "raw", s3_client)
    s3_settings = replace(settings, segment=SegmentArchive(
        bucket="segment-archive", prefix="raw", region="us-east-1",
        access_key_id="testing", secret_access_key="testing", endpoint_url=moto_s3,
    ))
    sources = _sources(BLOG)

    report = segment.sync_source(s3_settings, sources.sources[0], sources, logger=LOG)

    expected = archive[1]["sources"][BLOG.source_id]
    assert report.files == len(expected["files"])
    assert _count(s3_settings, "SELECT count(*) FROM blog.pages") == expected["tables"]["pages"]


def test_unknown_source_named():
    with pytest.raises(ConfigError, match="unknown Segment sources: Blogg"):
        segment.select_sources(_sources(BLOG), ["Blogg"])


def test_project_sources_file_loads():
    settings = segment.load_segment_settings()

    assert [s.schema for s in settings.sources] == [
        "app", "blog", "info", "io", "pulumi_service_backend", "www",
    ]
    assert segment.select_sources(settings, None) == []
