"""The schema sync step against the fake Metabase: finding the database, polling the metadata, the time-out."""

from __future__ import annotations

import logging

import pytest
from fake_metabase import SleepRecorder

from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.client import MetabaseClient
from warehouse_sync.metabase.schema_sync import find_database, missing_names, sync_schema

API_KEY = "mb_schema_sync_test_key_0001"
LOG = logging.getLogger("test-metabase-schema-sync")
TABLES = {
    ("pulumi", "users"): [("id", "type/BigInteger", "type/PK"), ("createdat", "type/DateTime", None)],
    ("pulumi", "stacks"): [("id", "type/BigInteger", "type/PK"), ("programid", "type/BigInteger", None)],
    ("blog", "pages"): [("id", "type/Text", "type/PK"), ("user_id", "type/Text", None)],
}
EXPECTED = {(s, t, c) for (s, t), columns in TABLES.items() for c, _, _ in columns}


def test_database_found_by_name_or_id(start_metabase):
    fake = start_metabase()
    fake.add_database("Sample Database", {})
    warehouse = fake.add_database("Warehouse", {})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    assert find_database(client, "Warehouse")["id"] == warehouse.id
    assert find_database(client, "warehouse")["id"] == warehouse.id
    assert find_database(client, str(warehouse.id))["name"] == "Warehouse"


def test_unknown_database_lists_visible(start_metabase):
    fake = start_metabase()
    sample = fake.add_database("Sample Database", {})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    with pytest.raises(ConfigError) as raised:
        find_database(client, "Redshift")

    assert f"Metabase has no database 'Redshift'; databases this user can see: 'Sample Database' (id {sample.id})" in str(
        raised.value
    )


def test_duplicate_database_names_need_id(start_metabase):
    fake = start_metabase()
    fake.add_database("Warehouse", {})
    fake.add_database("Warehouse", {})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    with pytest.raises(ConfigError, match="several databases named 'Warehouse'"):
        find_database(client, "Warehouse")


def test_polls_until_metadata_complete(start_metabase):
    fake = start_metabase(sync_polls=3)
    database = fake.add_database("Warehouse", TABLES, pending={("blog", "pages"), ("pulumi", "users", "createdat")})
    client = MetabaseClient(fake.url, api_key=API_KEY)
    sleeps = SleepRecorder()

    report = sync_schema(client, {"id": database.id, "name": "Warehouse"}, EXPECTED, 60, 5, logger=LOG, sleep=sleeps)

    assert report.missing == []
    assert report.problems == []
    assert report.polls == 4
    assert sleeps.delays == [5, 5, 5]
    assert len(fake.requests_to("POST", rf"/api/database/{database.id}/sync_schema")) == 1
    assert len(fake.requests_to("GET", rf"/api/database/{database.id}/metadata")) == 4
    assert fake.requests_to("GET", r"/api/database/\d+/metadata")[0].query == {"include_hidden": ["true"]}


def test_timeout_names_missing_and_returns(start_metabase, caplog):
    fake = start_metabase(sync_polls=1)
    database = fake.add_database(
        "Warehouse", TABLES, pending={("blog", "pages"), ("pulumi", "stacks", "programid")},
        never_sync={("blog", "pages"), ("pulumi", "stacks", "programid")},
    )
    client = MetabaseClient(fake.url, api_key=API_KEY)

    report = sync_schema(client, {"id": database.id, "name": "Warehouse"}, EXPECTED, 0.3, 0.05, logger=LOG)

    assert report.missing == ["blog.pages", "pulumi.stacks.programid"]
    assert report.polls >= 3
    assert 0.25 <= report.seconds < 2
    assert len(report.problems) == 1
    assert "still lacks 2 warehouse tables or columns after 0.3 s: blog.pages, pulumi.stacks.programid" in report.problems[0]
    assert "blog.pages, pulumi.stacks.programid" in caplog.text


def test_dry_run_reads_once_and_starts_nothing(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", TABLES, pending={("blog", "pages")})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    report = sync_schema(client, {"id": database.id, "name": "Warehouse"}, EXPECTED, 60, 5, dry_run=True, logger=LOG)

    assert report.missing == ["blog.pages"]
    assert report.polls == 1
    assert fake.requests_to("POST", r"/api/database/\d+/sync_schema") == []
    assert "dry run: no sync was started" in report.problems[0]


def test_missing_names_whole_table_once():
    present = {("pulumi", "users", "id")}
    expected = {("pulumi", "users", "id"), ("pulumi", "users", "email"), ("www", "pages", "id"), ("www", "pages", "path")}

    assert missing_names(expected, present) == ["www.pages", "pulumi.users.email"]
