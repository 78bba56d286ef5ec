"""Foreign-key metadata: production constraints, the relationships file, the plan, and applying it to the fake Metabase."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.client import MetabaseClient
from warehouse_sync.metabase.foreign_keys import (
    RELATIONSHIPS_PATH,
    ColumnRef,
    Relationship,
    load_relationships_file,
    merge_relationships,
    plan_foreign_keys_in_warehouse,
    production_relationships,
    sync_foreign_keys,
)

API_KEY = "mb_foreign_keys_test_key_001"
LOG = logging.getLogger("test-metabase-foreign-keys")
TABLES = {
    ("pulumi", "users"): [("id", "type/BigInteger", None), ("username", "type/Text", None)],
    ("pulumi", "stacks"): [("id", "type/BigInteger", "type/PK"), ("name", "type/Text", None)],
    ("pulumi", "programupdates"): [
        ("id", "type/BigInteger", "type/PK"),
        ("stackid", "type/BigInteger", None),
        ("requestedby", "type/BigInteger", None),
    ],
    ("app", "users"): [("id", "type/Text", "type/PK")],
    ("app", "tracks"): [("id", "type/Text", "type/PK"), ("user_id", "type/Text", None)],
    ("www", "pages"): [("id", "type/Text", "type/PK"), ("user_id", "type/Text", None)],
}


def ref(text: str) -> ColumnRef:
    return ColumnRef.parse(text)


def rel(source: str, target: str, origin: str = "test") -> Relationship:
    return Relationship(ref(source), ref(target), origin)


RELATIONSHIPS = [
    rel("pulumi.programupdates.stackid", "pulumi.stacks.id"),
    rel("pulumi.programupdates.requestedby", "pulumi.users.id"),
    rel("app.tracks.user_id", "app.users.id"),
    rel("www.pages.user_id", "app.users.id"),  # across schemas, text to text
]


def write_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "relationships.yaml"
    path.write_text(text)
    return path


def test_production_constraints_mapped(settings, production_source):
    relationships = production_relationships(settings, logger=LOG)

    pairs = {(str(r.source), str(r.target)) for r in relationships}
    assert pairs == {
        ("pulumi.organizationmembers.organizationid", "pulumi.organizations.id"),
        ("pulumi.organizationmembers.userid", "pulumi.users.id"),
        ("pulumi.programs.organizationid", "pulumi.organizations.id"),
        ("pulumi.stacks.programid", "pulumi.programs.id"),
        ("pulumi.programupdates.stackid", "pulumi.stacks.id"),
        ("pulumi.programupdates.requestedby", "pulumi.users.id"),
        ("pulumi.updateevents.updateid", "pulumi.programupdates.id"),
        ("pulumi.accesstokens.user", "pulumi.users.id"),
    }
    origins = {r.origin for r in relationships}
    assert 'production constraint "ProgramUpdates_stackId_fkey"' in origins


def test_shipped_relationships_file_valid():
    relationships = load_relationships_file(RELATIONSHIPS_PATH)

    assert relationships
    for relationship in relationships:
        assert relationship.target.column == "id"
        assert relationship.source.schema == relationship.target.schema


def test_relationships_file_problems_listed(tmp_path):
    path = write_file(
        tmp_path,
        "relationships:\n"
        "  - from: app.tracks.user_id\n    to: app.users.id\n"
        "  - from: app.tracks.user_id\n    to: www.users.id\n"
        "  - from: app.tracks\n    to: app.users.id\n"
        "  - from: app.pages.user_id\n    to: app.users.id\n    owner: growth\n"
        "  - from: app.users.id\n    to: app.users.id\n",
    )

    with pytest.raises(ConfigError) as raised:
        load_relationships_file(path)
    message = str(raised.value)

    assert "entry 2: app.tracks.user_id is already declared in entry 1" in message
    assert "entry 3: 'app.tracks' is not schema.table.column" in message
    assert "entry 4 has unknown keys owner" in message
    assert "entry 5: app.users.id refers to itself" in message


def test_file_entry_replaces_production_key():
    production = [rel("pulumi.accesstokens.user", "pulumi.users.id", "production constraint")]
    declared = [rel("pulumi.accesstokens.user", "pulumi.organizations.id", "relationships.yaml")]

    merged = merge_relationships(production, declared, LOG)

    assert merged == declared


def test_plan_applied_then_rerun_sends_nothing(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", TABLES)
    client = MetabaseClient(fake.url, api_key=API_KEY)

    first = sync_foreign_keys(client, database.id, RELATIONSHIPS, logger=LOG)
    second = sync_foreign_keys(client, database.id, RELATIONSHIPS, logger=LOG)

    assert first.problems == []
    assert len(first.applied) == 5  # four foreign keys and pulumi.users.id as primary key
    stackid = fake.field_by_name("pulumi", "programupdates", "stackid")
    assert stackid["semantic_type"] == "type/FK"
    assert stackid["fk_target_field_id"] == fake.field_by_name("pulumi", "stacks", "id")["id"]
    assert fake.field_by_name("pulumi", "users", "id")["semantic_type"] == "type/PK"
    pages = fake.field_by_name("www", "pages", "user_id")
    assert pages["fk_target_field_id"] == fake.field_by_name("app", "users", "id")["id"]
    assert second.plan.changes == []
    assert sorted(second.plan.up_to_date) == sorted(str(r.source) for r in RELATIONSHIPS)
    assert len(fake.requests_to("PUT", r"/api/field/\d+")) == 5


def test_only_differing_keys_sent(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", TABLES)
    stackid = fake.field_by_name("pulumi", "programupdates", "stackid")
    stackid["semantic_type"] = "type/FK"
    client = MetabaseClient(fake.url, api_key=API_KEY)

    sync_foreign_keys(client, database.id, RELATIONSHIPS[:1], logger=LOG)

    sent = fake.requests_to("PUT", rf"/api/field/{stackid['id']}")
    assert [r.body for r in sent] == [{"fk_target_field_id": fake.field_by_name("pulumi", "stacks", "id")["id"]}]


def test_dry_run_logs_plan_and_writes_nothing(start_metabase, caplog):
    fake = start_metabase()
    database = fake.add_database("Warehouse", TABLES)
    client = MetabaseClient(fake.url, api_key=API_KEY)
    caplog.set_level(logging.INFO)

    report = sync_foreign_keys(client, database.id, RELATIONSHIPS, dry_run=True, logger=LOG)

    assert len(report.plan.changes) == 5
    assert fake.writes() == []
    assert "field pulumi.programupdates.stackid will be updated: semantic_type: None -> type/FK" in caplog.text
    assert "field pulumi.users.id will be updated: semantic_type: None -> type/PK" in caplog.text


def test_unknown_and_mismatched_reported_rest_applied(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", TABLES)
    client = MetabaseClient(fake.url, api_key=API_KEY)
    relationships = RELATIONSHIPS[:1] + [
        rel("blog.pages.user_id", "blog.users.id", "relationships.yaml"),
        rel("pulumi.stacks.programid", "pulumi.programs.id", "production constraint"),
        rel("app.tracks.user_id", "pulumi.users.id", "relationships.yaml"),
    ]

    report = sync_foreign_keys(client, database.id, relationships, logger=LOG)

    assert [str(c.ref) for c in report.applied] == ["pulumi.programupdates.stackid"]
    assert len(report.problems) == 3
    assert report.problems[0] == (
        "blog.pages.user_id -> blog.users.id (relationships.yaml) skipped: "
        "blog.pages.user_id and blog.users.id not found in Metabase"
    )
    assert "pulumi.stacks.programid and pulumi.programs.id not found" in report.problems[1]
    assert "types do not join (text and integer)" in report.problems[2]
    assert fake.field_by_name("app", "tracks", "user_id")["semantic_type"] is None


def test_failed_write_collected_others_applied(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", TABLES)
    requested_by = fake.field_by_name("pulumi", "programupdates", "requestedby")
    fake.forbid("PUT", f"/api/field/{requested_by['id']}")
    client = MetabaseClient(fake.url, api_key=API_KEY)

    report = sync_foreign_keys(client, database.id, RELATIONSHIPS, logger=LOG)

    assert len(report.applied) == 4
    assert len(report.failures) == 1
    assert report.failures[0].startswith("field pulumi.programupdates.requestedby was not updated: Metabase PUT")
    assert "HTTP 403: You don't have permissions to do that." in report.failures[0]
    assert [row["status"] for row in report.rows_for_table()].count("failed") == 1


def test_special_type_fields_updated(start_metabase):
    fake = start_metabase(semantic_key="special_type")
    database = fake.add_database("Warehouse", TABLES)
    client = MetabaseClient(fake.url, api_key=API_KEY)

    first = sync_foreign_keys(client, database.id, RELATIONSHIPS, logger=LOG)
    second = sync_foreign_keys(client, database.id, RELATIONSHIPS, logger=LOG)

    assert first.problems == []
    assert fake.field_by_name("pulumi", "programupdates", "stackid")["special_type"] == "type/FK"
    assert fake.field_by_name("pulumi", "users", "id")["special_type"] == "type/PK"
    assert second.plan.changes == []


def test_warehouse_plan_without_metabase(settings):
    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        conn.execute(
            "CREATE SCHEMA pulumi;"
            "CREATE TABLE pulumi.users (id bigint PRIMARY KEY, username character varying);"
            "CREATE TABLE pulumi.stacks (id bigint PRIMARY KEY, programid bigint);"
            "CREATE TABLE pulumi.programupdates (id bigint PRIMARY KEY, stackid bigint, requestedby bigint)"
        )
    relationships = [
        rel("pulumi.programupdates.stackid", "pulumi.stacks.id"),
        rel("pulumi.programupdates.requestedby", "pulumi.users.id"),
        rel("pulumi.stacks.programid", "pulumi.programs.id"),
        rel("pulumi.users.username", "pulumi.stacks.id"),
    ]

    report = plan_foreign_keys_in_warehouse(settings, relationships, LOG)

    assert [str(c.ref) for c in report.plan.changes] == [
        "pulumi.programupdates.stackid",
        "pulumi.programupdates.requestedby",
    ]
    assert report.plan.changes[0].description == (
        "semantic_type: None -> type/FK, fk_target_field_id: none -> pulumi.stacks.id"
    )
    assert "pulumi.programs.id not found in the warehouse" in report.problems[0]
    assert "types do not join (text and integer)" in report.problems[1]
    assert report.applied == []
