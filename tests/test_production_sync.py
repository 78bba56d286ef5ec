"""End-to-end syncs: tap-postgres | transform-field | target-postgres into a real PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
import textwrap
from pathlib import Path

import psycopg
import pytest

from warehouse_sync import connectors, production, sandbox_data
from warehouse_sync.errors import ConfigError, PipelineError
from warehouse_sync.replication import load_replication_settings, warehouse_table_name

pytestmark = pytest.mark.slow
LOG = logging.getLogger("test-production-sync")


def _conn(settings_db):
    return psycopg.connect(**settings_db.conninfo(), autocommit=True)


def _source_ids(settings, table):
    key = '"organizationId", "userId"' if table == "OrganizationMembers" else '"id"'
    with _conn(settings.source) as conn:
        return sorted(conn.execute(f'SELECT {key} FROM "{table}"').fetchall())


def _warehouse_ids(settings, table):
    key = "organizationid, userid" if table == "OrganizationMembers" else "id"
    with _conn(settings.warehouse) as conn:
        return sorted(conn.execute(f"SELECT {key} FROM pulumi.{warehouse_table_name(table)}").fetchall())


def _column_types(settings, table):
    with _conn(settings.warehouse) as conn:
        rows = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = 'pulumi' AND table_name = %s",
            (warehouse_table_name(table),),
        ).fetchall()
    return dict(rows)


def _last_modified(conninfo, table, warehouse=False):
    with _conn(conninfo) as conn:
        if warehouse:
            sql = f"SELECT id, lastmodified FROM pulumi.{warehouse_table_name(table)} ORDER BY id"
        else:
            sql = f'SELECT id, "lastModified" AT TIME ZONE \'UTC\' FROM "{table}" ORDER BY id'
        return conn.execute(sql).fetchall()


def _assert_warehouse_equals_source(settings):
    for table in sandbox_data.TABLES:
        assert _warehouse_ids(settings, table) == _source_ids(settings, table), table
        if table not in sandbox_data.FULL_TABLE_TABLES:
            assert _last_modified(settings.warehouse, table, warehouse=True) == _last_modified(
                settings.source, table
            ), table


def test_first_sync_copies_every_row(settings, production_source):
    report = production.sync_production_db(settings, logger=LOG)

    assert not report.is_incremental
    for table, count in production_source.items():
        assert _warehouse_ids(settings, table) == _source_ids(settings, table), table
        summary = next(t for t in report.tables if t.table == table)
        assert summary.rows == count, table
    _assert_warehouse_equals_source(settings)

    updates = _column_types(settings, "ProgramUpdates")
    assert updates["id"] == "bigint"
    assert updates["starttime"] == "timestamp without time zone"
    assert updates["endtime"] == "timestamp without time zone"
    assert updates["kind"] == "character varying"
    assert updates["config"] == "jsonb"
    assert updates["pinned"] == "boolean"
    assert updates["version"] == "integer"
    organizations = _column_types(settings, "Organizations")
    assert organizations["creditbalance"] == "double precision"
    assert organizations["allowedDomains".lower()] == "jsonb"


def test_incremental_sync_sends_only_changes(settings, production_source, pg_server, databases):
    production.sync_production_db(settings, logger=LOG)
    with _conn(settings.warehouse) as conn:
        state = json.loads(conn.execute("SELECT state FROM _etl.singer_state").fetchone()[0])
    with pg_server.connect(databases[0]) as conn:
        changes = sandbox_data.apply_changes(conn, seed=1)

    report = production.sync_production_db(settings, logger=LOG)

    assert report.is_incremental
    with _conn(settings.source) as conn:
        for summary in report.tables:
            if summary.method != "INCREMENTAL":
                assert summary.rows == len(_source_ids(settings, summary.table))
                continue
            bookmark = state["bookmarks"][f"public-{summary.table}"]["replication_key_value"]
            at_or_after = conn.execute(
                f'SELECT count(*) FROM "{summary.table}" WHERE "lastModified" >= %s', (bookmark,)
            ).fetchone()[0]
            changed = changes[summary.table]["inserted"] + changes[summary.table]["updated"]
            # tap-postgres reads rows with the key >= the bookmark, so the
            # rows at the bookmark itself are sent again.
            assert summary.rows == at_or_after, summary.table
            assert changed <= summary.rows <= changed + 2, summary.table
    _assert_warehouse_equals_source(settings)


def test_secret_columns_never_reach_warehouse(settings, production_source):
    with _conn(settings.source) as conn:
        secrets = [row[0] for row in conn.execute('SELECT "passwordHash" FROM "Users"')]
        secrets += [row[0] for row in conn.execute('SELECT "tokenHash" FROM "AccessTokens"')]
        secrets += [row[0] for row in conn.execute('SELECT "encryptedSecret" FROM "Organizations"')]
        emails = [row[0] for row in conn.execute('SELECT email FROM "Users" ORDER BY id')]

    production.sync_production_db(settings, logger=LOG)

    assert "passwordhash" not in _column_types(settings, "Users")
    assert "tokenhash" not in _column_types(settings, "AccessTokens")
    assert "encryptedsecret" not in _column_types(settings, "Organizations")
    with _conn(settings.warehouse) as conn:
        dump = "\n".join(
            str(row)
            for table in sandbox_data.TABLES
            for row in conn.execute(f"SELECT * FROM pulumi.{warehouse_table_name(table)}")
        )
        hashed = [row[0] for row in conn.execute("SELECT email FROM pulumi.users ORDER BY id")]
    leaked = [s for s in secrets if s in dump]
    assert leaked == []
    assert all(len(h) == 64 for h in hashed)
    assert not set(emails) & set(hashed)


def test_tap_never_reads_secret_columns(settings, production_source, tmp_path):
    """The tap's own output, before any target, carries no secret column."""
    replication = load_replication_settings()
    with connectors.ConfigFolder() as folder:
        plan = production.build_catalog(production.discover(settings, replication, folder), replication)
        config = folder.write_json("tap.json", connectors.tap_postgres_config(settings.source, "public"))
        catalog = folder.write_json("catalog.json", plan.catalog)
        tap = connectors.stage("tap-postgres", "--config", str(config), "--properties", str(catalog))
        output = tmp_path / "tap.out"
        with open(output, "wb") as out:
            import subprocess

            subprocess.run(tap.argv, env=tap.env, stdout=out, stderr=subprocess.DEVNULL, check=True)

    text = output.read_text()
    assert '"RECORD"' in text
    for column in ("passwordHash", "tokenHash", "encryptedSecret"):
        assert column not in text


def _target_pid():
    """Return the pid of this process's target-postgres child, or None."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"target-postgres" in cmdline:
            return int(entry.name)
    return None


def test_killed_target_then_rerun_matches_source(settings, pg_server, databases, monkeypatch):
    with pg_server.connect(databases[0]) as conn:
        sandbox_data.create_schema(conn)
        sandbox_data.populate(conn, scale=3, seed=5)
    monkeypatch.setattr(connectors, "TARGET_BATCH_SIZE_ROWS", 1000)

    store = production.open_state_store(settings)
    saved = []
    original_save = store.save

    def save_then_kill(pipeline, state):
        original_save(pipeline, state)
        saved.append(json.loads(json.dumps(state)))
        if len(saved) == 3:
            os.kill(_target_pid(), signal.SIGKILL)

    monkeypatch.setattr(store, "save", save_then_kill)
    monkeypatch.setattr(production, "open_state_store", lambda s: store)

    with pytest.raises(PipelineError) as raised:
        production.sync_production_db(settings, logger=LOG)
    assert "target-postgres was killed by signal SIGKILL" in str(raised.value)

    # Every bookmark saved so far is covered by rows the warehouse committed.
    last = saved[-1]["bookmarks"]
    with _conn(settings.warehouse) as warehouse, _conn(settings.source) as source:
        for stream, bookmark in last.items():
            if "replication_key_value" not in bookmark:
                continue
            table = stream.split("-", 1)[1]
            source_rows = source.execute(
                f'SELECT count(*) FROM "{table}" WHERE "lastModified" < %s', (bookmark["replication_key_value"],)
            ).fetchone()[0]
            warehouse_rows = warehouse.execute(
                f"SELECT count(*) FROM pulumi.{warehouse_table_name(table)}"
                " WHERE lastmodified < (%s::timestamptz AT TIME ZONE 'UTC')",
                (bookmark["replication_key_value"],),
            ).fetchone()[0]
            assert warehouse_rows == source_rows, stream

    monkeypatch.undo()
    production.sync_production_db(settings, logger=LOG)

    _assert_warehouse_equals_source(settings)
    with _conn(settings.warehouse) as conn:
        for table in sandbox_data.TABLES:
            if table == "OrganizationMembers":
                continue
            total, distinct = conn.execute(
                f"SELECT count(*), count(DISTINCT id) FROM pulumi.{warehouse_table_name(table)}"
            ).fetchone()
            assert total == distinct, table


FIDELITY_SCHEMA = """
CREATE TYPE "Mood" AS ENUM ('calm', 'busy');
CREATE TABLE "Odd Names" (
    "Id" integer PRIMARY KEY,
    "user" text,
    "order" integer,
    "mixedCase" text,
    "payload" jsonb,
    "labels" text[],
    "counts" integer[],
    "amount" numeric(14, 4),
    "ratio" double precision,
    "flag" boolean,
    "mood" "Mood",
    "seenAt" timestamptz,
    "day" date,
    "updatedAt" timestamptz NOT NULL
);
"""

FIDELITY_ROWS = [
    (1, "plain", 1, "Line one\nline two\ttabbed \\ backslash \"quoted\" 'single'",
     '{"nested": {"list": [1, "two", null]}, "unicode": "żółw ✓"}', ["a", "b,c", 'd"e'], [1, 2],
     "12345.6789", 0.25, True, "calm", "2026-03-01T12:34:56.789+02:00", "2026-03-01"),
    (2, None, None, None, None, None, None, None, None, None, None, None, None),
    (3, "", 0, "", "[]", [], [], "0", 0.0, False, "busy", "1999-12-31T23:59:59Z", "1999-12-31"),
    (4, "\r\n", -5, "trailing space ", '"just a string"', ["\\"], [-1], "-0.0001", -1.5, None, None, None, None),
]


def test_values_arrive_intact(settings, pg_server, databases, tmp_path):
    with pg_server.connect(databases[0]) as conn:
        conn.execute(FIDELITY_SCHEMA)
        for row in FIDELITY_ROWS:
            conn.execute(
                'INSERT INTO "Odd Names" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, now())', row
            )
        conn.commit()
    settings_file = tmp_path / "odd.yaml"
    settings_file.write_text(textwrap.dedent("""
        source_schema: public
        tables:
          Odd Names:
            replication_method: INCREMENTAL
            replication_key: updatedAt
    """))

    production.sync_production_db(settings, replication=load_replication_settings(settings_file), logger=LOG)

    with _conn(settings.warehouse) as conn:
        rows = conn.execute(
            'SELECT id, "user", "order", mixedcase, payload, labels, counts, amount, ratio, flag, mood,'
            " seenat, day FROM pulumi.\"odd names\" ORDER BY id"
        ).fetchall()
    by_id = {row[0]: row for row in rows}
    assert sorted(by_id) == [1, 2, 3, 4]

    one = by_id[1]
    assert one[1] == "plain"
    assert one[2] == 1
    assert one[3] == "Line one\nline two\ttabbed \\ backslash \"quoted\" 'single'"
    assert one[4] == {"nested": {"list": [1, "two", None]}, "unicode": "żółw ✓"}
    assert one[5] == ["a", "b,c", 'd"e']
    assert one[6] == [1, 2]
    assert one[7] == pytest.approx(12345.6789)
    assert one[8] == 0.25
    assert one[9] is True
    assert one[10] == "calm"
    assert one[11].isoformat() == "2026-03-01T10:34:56.789000"
    assert str(one[12]).startswith("2026-03-01")

    assert by_id[2][1:5] == (None, None, None, None)
    assert by_id[2][7:] == (None, None, None, None, None, None)

    three = by_id[3]
    assert three[1] == ""
    assert three[2] == 0
    assert three[3] == ""
    assert three[4] == []
    assert three[9] is False

    four = by_id[4]
    assert four[1] == "\r\n"
    assert four[3] == "trailing space "
    assert four[4] == "just a string"
    assert four[5] == ["\\"]
    assert four[7] == pytest.approx(-0.0001)


def test_missing_source_table_named(settings, production_source, tmp_path):
    settings_file = tmp_path / "bad.yaml"
    settings_file.write_text(textwrap.dedent("""
        tables:
          Users:
            replication_method: INCREMENTAL
            replication_key: lastModified
            secret_columns: [passwordHash, recoveryCodes]
          Deployments:
            replication_method: FULL_TABLE
    """))

    with pytest.raises(ConfigError) as raised:
        production.sync_production_db(settings, replication=load_replication_settings(settings_file), logger=LOG)

    assert "table public.Deployments not found" in str(raised.value)
    assert "column Users.recoveryCodes not found" in str(raised.value)


def test_wrong_source_password_fails_without_retry(settings, production_source):
    from dataclasses import replace

    wrong = replace(settings, source=replace(settings.source, password="not-the-password"))

    with pytest.raises(PipelineError) as raised:
        production.sync_production_db(wrong, logger=LOG)

    message = str(raised.value)
    assert "tap-postgres discovery exited with code 1" in message
    assert "password authentication failed" in message
    assert "not-the-password" not in message
    assert not raised.value.transient


def test_full_refresh_reloads_and_drops_deleted_rows(settings, production_source):
    production.sync_production_db(settings, logger=LOG)
    with _conn(settings.source) as conn:
        conn.execute('DELETE FROM "UpdateEvents" WHERE id IN (SELECT id FROM "UpdateEvents" ORDER BY id LIMIT 5)')

    store = production.open_state_store(settings)
    planned = production.full_refresh(settings, store, ["ProgramUpdates", "UpdateEvents"], dry_run=True)
    assert "empty pulumi.updateevents" in planned
    assert any(a.startswith("remove the bookmark of public-ProgramUpdates") for a in planned)
    assert len(_warehouse_ids(settings, "UpdateEvents")) == len(_source_ids(settings, "UpdateEvents")) + 5
    assert "public-ProgramUpdates" in store.load(production.PIPELINE)["bookmarks"]
    store.close()

    report = production.sync_production_db(
        settings, tables=["ProgramUpdates", "updateevents"], full_refresh_tables=True, logger=LOG
    )

    assert report.reset_tables == ["ProgramUpdates", "UpdateEvents"]
    assert not report.is_incremental
    assert _warehouse_ids(settings, "UpdateEvents") == _source_ids(settings, "UpdateEvents")
    assert _warehouse_ids(settings, "ProgramUpdates") == _source_ids(settings, "ProgramUpdates")
