"""The whole refresh on a real warehouse: without Metabase, and against the fake Metabase."""

from __future__ import annotations

import inspect
import logging
from dataclasses import replace

import psycopg
import pytest

from warehouse_sync.metabase.dashboard_files import load_dashboard_specs
from fake_metabase import FakeMetabase, tables_from_postgres
from psycopg import sql

from warehouse_sync import segment, segment_archive
from warehouse_sync.config import SegmentArchive
from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.refresh import (
    NOT_CONFIGURED,
    MetabaseRefreshError,
    raise_for_problems,
    refresh_metabase,
    select_steps,
)
from warehouse_sync.metabase.settings import MetabaseSettings
from warehouse_sync.production import sync_production_db

LOG = logging.getLogger("test-metabase-refresh")
API_KEY = "mb_refresh_test_key_000000001"
WEBSITES = ("blog", "www", "io")


def load_websites(settings, tmp_path):
    """Load the blog Segment source through tap-segment, and copy its pages table to www and io.

    One real load (a few seconds) gives the layout Segment's loader makes;
    the copies stand in for the other two websites.
    """
    root = tmp_path / "archive"
    segment_archive.generate_archive(root, days=1, files_per_day=1, events_per_file=20)
    settings = replace(settings, segment=SegmentArchive(local_path=root))
    blog = next(s for s in segment_archive.SOURCES if s.schema_name == "blog")
    sources = segment.SegmentSettings(
        sources=(segment.SegmentSource(blog.name, blog.source_id, blog.schema_name),), tap_options={"lookback_days": 3}
    )
    segment.sync_source(settings, sources.sources[0], sources, logger=LOG)
    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        for schema in ("www", "io"):
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
            for table in ("pages", "identifies", "users"):
                conn.execute(
                    sql.SQL("CREATE TABLE {} AS SELECT * FROM {}").format(
                        sql.Identifier(schema, table), sql.Identifier("blog", table)
                    )
                )


def test_steps_checked():
    assert select_steps(None) == ["sync", "foreign_keys", "dashboards", "health"]
    assert select_steps(["health", "sync"]) == ["sync", "health"]
    with pytest.raises(ConfigError, match="unknown refresh steps 'charts'; use some of: sync, foreign_keys"):
        select_steps(["charts"])


def test_without_metabase_checks_warehouse(settings, production_source, tmp_path, caplog):
    sync_production_db(settings, logger=LOG)
    load_websites(settings, tmp_path)
    relationships = tmp_path / "relationships.yaml"
    relationships.write_text(
        "relationships:\n"
        + "".join(f"  - from: {s}.pages.user_id\n    to: {s}.users.id\n" for s in WEBSITES)
        + "  - from: www.identifies.user_id\n    to: blog.users.id\n"
    )
    caplog.set_level(logging.INFO)

    report = refresh_metabase(settings, None, logger=LOG, relationships_path=relationships)

    assert report.problems == []
    assert NOT_CONFIGURED in report.notes
    assert "Metabase was not configured" in caplog.text
    assert [(o.card, o.status) for o in report.health.outcomes if o.failed] == []
    assert len(report.health.outcomes) == sum(len(spec.cards) for spec in load_dashboard_specs())
    rows = {o.card: o.rows for o in report.health.outcomes}
    assert rows["Active stacks (last 30 days)"] == 1
    assert rows["Page views per day by website"] >= 3
    planned = {str(c.ref): c.description for c in report.foreign_keys.plan.changes}
    assert planned["pulumi.programupdates.stackid"].endswith("-> pulumi.stacks.id")
    assert planned["www.identifies.user_id"].endswith("-> blog.users.id")
    # The copied tables have no primary key, so their users.id would become one.
    assert planned["www.users.id"] == "semantic_type: None -> type/PK"
    assert "blog.users.id" not in planned
    assert len(planned) == 14
    markdown = report.markdown()
    assert "| Engagement | Weekly active users | completed |" in markdown
    assert "Metabase was not configured (METABASE_URL is unset)" in markdown


def test_broken_card_sql_named_by_warehouse(settings):
    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        conn.execute("CREATE SCHEMA pulumi; CREATE TABLE pulumi.users (id bigint PRIMARY KEY, createdat timestamp)")

    report = refresh_metabase(settings, None, steps=["health"], logger=LOG)

    failed = {o.card: o.error for o in report.health.outcomes if o.failed}
    assert failed["Weekly active users"] == 'weekly_active_users.sql: relation "pulumi.programupdates" does not exist'
    assert failed["Page views per day by website"].endswith('relation "blog.pages" does not exist')
    assert "New sign-ups per week" not in failed
    # Every card but the sign-ups card needs a table this warehouse lacks.
    assert len(report.problems) == sum(len(spec.cards) for spec in load_dashboard_specs()) - 1


def test_refresh_against_fake_metabase(settings, production_source, tmp_path):
    sync_production_db(settings, logger=LOG)
    warehouse = settings.warehouse.conninfo()

    def run_on_warehouse(sql: str):
        with psycopg.connect(**warehouse) as conn:
            cursor = conn.execute(sql)
            return [list(row) for row in cursor.fetchall()], [c.name for c in cursor.description]

    relationships = tmp_path / "relationships.yaml"
    relationships.write_text("relationships:\n  - from: blog.pages.user_id\n    to: blog.users.id\n")
    fake = FakeMetabase(api_keys=(API_KEY,), sync_polls=2, query_runner=run_on_warehouse).start()
    try:
        database = fake.add_database(
            "Warehouse", tables_from_postgres(warehouse, ["pulumi"]), pending={("pulumi", "updateevents")}
        )
        metabase = MetabaseSettings(url=fake.url, database="Warehouse", api_key=API_KEY, poll_seconds=0.05,
                                    sync_timeout_seconds=10)
        first = refresh_metabase(settings, metabase, logger=LOG, relationships_path=relationships)
        writes = len(fake.writes())
        second = refresh_metabase(settings, metabase, logger=LOG, relationships_path=relationships)
    finally:
        fake.stop()

    assert first.sync.missing == []
    assert first.sync.polls == 3
    assert len(fake.requests_to("POST", rf"/api/database/{database.id}/sync_schema")) == 2
    assert len(first.foreign_keys.applied) == 8
    assert fake.field_by_name("pulumi", "updateevents", "updateid")["semantic_type"] == "type/FK"
    assert first.problems[0] == (
        "blog.pages.user_id -> blog.users.id (relationships.yaml) skipped: "
        "blog.pages.user_id and blog.users.id not found in Metabase"
    )
    failed = [o.card for o in first.health.outcomes if o.failed]
    assert failed == ["Page views per day by website", "Unique visitors per day by website", "Top pages (last 90 days)"]
    assert 'relation "blog.pages" does not exist' in first.problems[1]
    assert len(first.problems) == 4
    rows = {o.card: o.rows for o in first.health.outcomes}
    assert rows["Updates per week by kind"] > 0
    with pytest.raises(MetabaseRefreshError, match=r"needs attention \(4 problems\)"):
        raise_for_problems(first)
    assert len(fake.writes()) == writes
    assert second.dashboards.writes == 0
    assert second.foreign_keys.plan.changes == []
    assert "### Card health" in first.markdown()


def test_flow_parameters():
    from flows import refresh_metabase as flow_module

    parameters = inspect.signature(flow_module.refresh_metabase.fn).parameters

    assert list(parameters) == ["dry_run", "steps"]
    assert parameters["dry_run"].default is False
    assert parameters["steps"].default is None
