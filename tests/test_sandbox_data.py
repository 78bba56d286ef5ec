"""Tests for the synthetic production database, against a real PostgreSQL server."""

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from warehouse_sync import sandbox_data
from warehouse_sync.sandbox_data import (
    BASE_TIME,
    FULL_TABLE_TABLES,
    LAST_MODIFIED_COLUMN,
    SECRET_COLUMNS,
    TABLES,
)

POSTGRES_BIN_DIRS = ("/usr/lib/postgresql/15/bin",)


def _postgres_tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for directory in POSTGRES_BIN_DIRS:
        candidate = Path(directory) / name
        if candidate.exists():
            return str(candidate)
    pytest.skip(f"PostgreSQL tool {name!r} not found on PATH or in {POSTGRES_BIN_DIRS}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _allow_traverse(path: Path) -> None:
    """Let other users enter ``path`` and its parents, because the server runs as ``nobody``."""
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            directory.chmod(mode | stat.S_IXGRP | stat.S_IXOTH)


def _run_server_command(command: list[str], run_as: str | None, log_file: Path) -> None:
    """Run initdb or pg_ctl and raise with its output and the server log if it fails."""
    result = subprocess.run(command, user=run_as, capture_output=True, text=True)
    if result.returncode != 0:
        log_tail = log_file.read_text()[-2000:] if log_file.exists() else "(no server log)"
        raise RuntimeError(
            f"{Path(command[0]).name} {command[1]} failed with exit code {result.returncode}\n"
            f"stdout: {result.stdout}\nstderr: {result.stderr}\nserver log:\n{log_tail}"
        )


@pytest.fixture(scope="module")
def _pg_server():
    """Start a throwaway PostgreSQL server on a free loopback port and yield its connection settings.

    PostgreSQL refuses to run as root, so as root the server runs as ``nobody``.
    Its directory is not under pytest's basetemp, because every pytest session
    removes the group and other permissions of /tmp/pytest-of-<user>, which
    would lock ``nobody`` out while another session runs.
    """
    base = Path(tempfile.mkdtemp(prefix="sandbox-data-pg-"))
    data_dir = base / "data"
    log_file = base / "server.log"
    run_as = "nobody" if os.geteuid() == 0 else None
    try:
        if run_as:
            _allow_traverse(base)
            shutil.chown(base, user=run_as)

        _run_server_command(
            [_postgres_tool("initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--locale=C"],
            run_as, log_file,
        )
        port = _free_port()
        with open(data_dir / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = ''\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        pg_ctl = _postgres_tool("pg_ctl")
        _run_server_command(
            [pg_ctl, "start", "-w", "-D", str(data_dir), "-l", str(log_file)], run_as, log_file
        )
        try:
            yield {"host": "127.0.0.1", "port": port, "user": "postgres"}
        finally:
            _run_server_command(
                [pg_ctl, "stop", "-m", "fast", "-w", "-D", str(data_dir)], run_as, log_file
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def new_database(_pg_server):
    """Return a function that creates an empty database and returns an open connection to it."""
    connections = []

    def create(autocommit: bool = False) -> psycopg.Connection:
        name = f"sandbox_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(dbname="postgres", autocommit=True, **_pg_server) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn = psycopg.connect(dbname=name, autocommit=autocommit, **_pg_server)
        connections.append(conn)
        return conn

    yield create
    for conn in connections:
        conn.close()


def _populated(new_database, scale=1.0, seed=7, autocommit=False):
    conn = new_database(autocommit=autocommit)
    sandbox_data.create_schema(conn)
    counts = sandbox_data.populate(conn, scale=scale, seed=seed)
    return conn, counts


def _table_digests(conn) -> dict[str, str]:
    """Return the md5 of each table's rows in primary-key order."""
    digests = {}
    for table in TABLES:
        key = ("organizationId", "userId") if table == "OrganizationMembers" else ("id",)
        row = conn.execute(
            sql.SQL("SELECT md5(string_agg(t::text, E'\\n' ORDER BY {})) FROM {} AS t").format(
                sql.SQL(", ").join(sql.Identifier("t", column) for column in key), sql.Identifier(table)
            )
        ).fetchone()
        digests[table] = row[0]
    return digests


def _count(conn, table: str) -> int:
    return conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]


def _max_last_modified(conn, table: str):
    return conn.execute(
        sql.SQL("SELECT max({}) FROM {}").format(sql.Identifier(LAST_MODIFIED_COLUMN), sql.Identifier(table))
    ).fetchone()[0]


def _canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True)


def _columns(conn, table: str) -> dict[str, str]:
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = %s",
        (table,),
    ).fetchall()
    return dict(rows)


def test_populate_same_seed_identical(new_database):
    first, first_counts = _populated(new_database, seed=7)
    second, second_counts = _populated(new_database, seed=7, autocommit=True)

    assert first_counts == second_counts
    assert _table_digests(first) == _table_digests(second)


def test_populate_other_seed_differs(new_database):
    first, _ = _populated(new_database, seed=7)
    other, _ = _populated(new_database, seed=8)

    first_digests = _table_digests(first)
    other_digests = _table_digests(other)
    for table in TABLES:
        assert first_digests[table] != other_digests[table], table


def test_populate_counts_match_tables(new_database):
    conn, counts = _populated(new_database)

    assert set(counts) == set(TABLES)
    for table in TABLES:
        assert counts[table] == _count(conn, table), table


def test_populate_counts_scale(new_database):
    _, small = _populated(new_database, scale=1.0)
    _, large = _populated(new_database, scale=3.0)

    planned_small = sandbox_data.rows_for_scale(1.0)
    planned_large = sandbox_data.rows_for_scale(3.0)
    for table, rows in planned_small.items():
        assert small[table] == rows, table
        assert large[table] == planned_large[table] == 3 * rows, table
    assert small["Users"] == 500
    assert small["ProgramUpdates"] == 5_000
    assert sandbox_data.updates_rows_for_scale(200) == 1_000_000

    assert small["Users"] <= small["OrganizationMembers"] <= 3 * small["Users"] + small["Organizations"]
    assert 1.1 * small["ProgramUpdates"] <= small["UpdateEvents"] <= 1.4 * small["ProgramUpdates"]
    assert 2.5 * small["UpdateEvents"] <= large["UpdateEvents"] <= 3.5 * small["UpdateEvents"]


def test_populate_tiny_scale_fills_every_table(new_database):
    _, counts = _populated(new_database, scale=0.001)

    for table in TABLES:
        if table != "UpdateEvents":
            assert counts[table] >= 1, table


def test_populate_commits_open_transaction(new_database, _pg_server):
    conn = new_database()
    sandbox_data.create_schema(conn)
    conn.execute("SELECT 1")

    counts = sandbox_data.populate(conn, scale=0.1)

    with psycopg.connect(dbname=conn.info.dbname, **_pg_server) as other:
        assert _count(other, "ProgramUpdates") == counts["ProgramUpdates"]


def test_populate_rejects_invalid_scale(new_database):
    conn = new_database()
    sandbox_data.create_schema(conn)

    with pytest.raises(ValueError, match="invalid scale"):
        sandbox_data.populate(conn, scale=0)


def test_populate_rejects_non_empty_tables(new_database):
    conn, _ = _populated(new_database, scale=0.1)

    with pytest.raises(ValueError, match="replace=True"):
        sandbox_data.populate(conn, scale=0.1)


def test_populate_replace_truncates(new_database):
    conn, _ = _populated(new_database, scale=0.1)
    reference, _ = _populated(new_database, scale=0.2, seed=3)
    sandbox_data.apply_changes(conn, seed=1)

    counts = sandbox_data.populate(conn, scale=0.2, seed=3, replace=True)

    assert counts == {table: _count(reference, table) for table in TABLES}
    assert _table_digests(conn) == _table_digests(reference)


def test_create_schema_idempotent(new_database):
    conn = new_database()
    sandbox_data.create_schema(conn)
    sandbox_data.create_schema(conn)

    tables = {
        name
        for name, in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    assert tables == set(TABLES)


EXPECTED_FOREIGN_KEYS = {
    ("OrganizationMembers", "organizationId", "Organizations"),
    ("OrganizationMembers", "userId", "Users"),
    ("Programs", "organizationId", "Organizations"),
    ("Stacks", "programId", "Programs"),
    ("ProgramUpdates", "stackId", "Stacks"),
    ("ProgramUpdates", "requestedBy", "Users"),
    ("UpdateEvents", "updateId", "ProgramUpdates"),
    ("AccessTokens", "user", "Users"),
}


def _validated_foreign_keys(conn) -> set[tuple[str, str, str]]:
    rows = conn.execute(
        """
        SELECT source.relname, a.attname, target.relname
        FROM pg_constraint AS c
        JOIN pg_class AS source ON source.oid = c.conrelid
        JOIN pg_class AS target ON target.oid = c.confrelid
        JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        WHERE c.contype = 'f' AND c.convalidated
        """
    ).fetchall()
    return set(rows)


def test_schema_foreign_keys(new_database):
    conn = new_database()
    sandbox_data.create_schema(conn)

    assert _validated_foreign_keys(conn) == EXPECTED_FOREIGN_KEYS
    assert set(sandbox_data.FOREIGN_KEYS) == EXPECTED_FOREIGN_KEYS


def test_populate_restores_constraints_and_index(new_database):
    conn, _ = _populated(new_database, scale=0.2)
    sandbox_data.populate(conn, scale=0.2, replace=True)

    assert _validated_foreign_keys(conn) == EXPECTED_FOREIGN_KEYS
    indexes = {
        name for name, in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'ProgramUpdates'")
    }
    assert "ProgramUpdates_lastModified_idx" in indexes


def test_schema_primary_keys_and_last_modified(new_database):
    conn = new_database()
    sandbox_data.create_schema(conn)

    for table in TABLES:
        primary_keys = conn.execute(
            "SELECT count(*) FROM pg_constraint WHERE contype = 'p' AND conrelid = %s::regclass",
            (sql.Identifier(table).as_string(conn),),
        ).fetchone()[0]
        assert primary_keys == 1, table

        has_last_modified = LAST_MODIFIED_COLUMN in _columns(conn, table)
        assert has_last_modified == (table not in FULL_TABLE_TABLES), table


def test_schema_column_types(new_database):
    conn = new_database()
    sandbox_data.create_schema(conn)

    assert _columns(conn, "AccessTokens")["user"] == "bigint"
    assert _columns(conn, "AccessTokens")["scopes"] == "ARRAY"
    assert _columns(conn, "UpdateEvents")["order"] == "integer"
    assert _columns(conn, "Organizations")["creditBalance"] == "numeric"
    assert _columns(conn, "Organizations")["allowedDomains"] == "ARRAY"
    assert _columns(conn, "Stacks")["tags"] == "jsonb"
    assert _columns(conn, "ProgramUpdates")["config"] == "jsonb"
    assert _columns(conn, "ProgramUpdates")["resourceChanges"] == "json"
    assert _columns(conn, "ProgramUpdates")["kind"] == "USER-DEFINED"
    assert _columns(conn, "ProgramUpdates")["endTime"] == "timestamp with time zone"
    assert _columns(conn, "Users")["isSiteAdmin"] == "boolean"

    enum_labels = dict(
        conn.execute(
            "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)"
            " FROM pg_enum AS e JOIN pg_type AS t ON t.oid = e.enumtypid GROUP BY t.typname"
        ).fetchall()
    )
    assert enum_labels == {
        "UpdateKind": ["update", "preview", "destroy", "refresh"],
        "UpdateResult": ["in-progress", "succeeded", "failed", "cancelled"],
    }


def test_foreign_key_rejects_orphan(new_database):
    conn, _ = _populated(new_database, scale=0.1)

    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        conn.execute(
            'INSERT INTO "UpdateEvents" ("updateId", "order", "kind", "timestamp")'
            " VALUES (999999999, 1, 'prelude', now())"
        )
    conn.rollback()


def test_identity_continues_after_populate(new_database):
    conn, counts = _populated(new_database, scale=0.1)

    new_id = conn.execute(
        'INSERT INTO "Users" ("userName", "email", "passwordHash", "createdAt", "lastModified")'
        " VALUES ('extra', 'extra@example.com', 'x', now(), now()) RETURNING \"id\""
    ).fetchone()[0]
    assert new_id == counts["Users"] + 1


def test_update_times_and_results(new_database):
    conn, _ = _populated(new_database)

    in_progress, without_end, bad_order, earliest, latest = conn.execute(
        """
        SELECT count(*) FILTER (WHERE "result" = 'in-progress'),
               count(*) FILTER (WHERE "endTime" IS NULL),
               count(*) FILTER (WHERE "endTime" <= "startTime"),
               min("startTime"), max("startTime")
        FROM "ProgramUpdates"
        """
    ).fetchone()
    assert in_progress > 0
    assert without_end == in_progress
    assert bad_order == 0
    assert earliest >= BASE_TIME
    assert latest < BASE_TIME + timedelta(days=90)

    kinds = dict(conn.execute('SELECT "kind"::text, count(*) FROM "ProgramUpdates" GROUP BY 1').fetchall())
    assert set(kinds) == {"update", "preview", "destroy", "refresh"}
    assert kinds["update"] + kinds["preview"] > 0.8 * sum(kinds.values())

    results = dict(
        conn.execute('SELECT "result"::text, count(*) FROM "ProgramUpdates" GROUP BY 1').fetchall()
    )
    assert results["succeeded"] > 0.7 * sum(results.values())


def test_requested_by_is_member(new_database):
    conn, _ = _populated(new_database)

    outsiders = conn.execute(
        """
        SELECT count(*)
        FROM "ProgramUpdates" AS u
        JOIN "Stacks" AS s ON s."id" = u."stackId"
        JOIN "Programs" AS p ON p."id" = s."programId"
        LEFT JOIN "OrganizationMembers" AS m
            ON m."organizationId" = p."organizationId" AND m."userId" = u."requestedBy"
        WHERE m."userId" IS NULL
        """
    ).fetchone()[0]
    assert outsiders == 0


def test_secret_columns_populated(new_database):
    conn, counts = _populated(new_database)

    prefixes = {"passwordHash": "$2b$12$", "encryptedSecret": "enc:v1:", "tokenHash": "pul-"}
    for table, columns in SECRET_COLUMNS.items():
        for column in columns:
            total, filled, distinct, prefixed = conn.execute(
                sql.SQL(
                    "SELECT count(*), count({column}), count(DISTINCT {column}),"
                    " count(*) FILTER (WHERE starts_with({column}, %s)) FROM {table}"
                ).format(column=sql.Identifier(column), table=sql.Identifier(table)),
                (prefixes[column],),
            ).fetchone()
            assert total == counts[table], column
            assert filled == total, column
            assert distinct == total, column
            assert prefixed == total, column


def test_personal_data_populated(new_database):
    conn, _ = _populated(new_database)

    emails, non_ascii_names, null_names, logins = conn.execute(
        """
        SELECT count("email"),
               count(*) FILTER (WHERE "displayName" ~ '[^\\x01-\\x7f]'),
               count(*) FILTER (WHERE "displayName" IS NULL),
               count("githubLogin")
        FROM "Users"
        """
    ).fetchone()
    assert emails == 500
    assert non_ascii_names > 0
    assert null_names > 0
    assert 0 < logins < 500


def test_text_values_round_trip(new_database):
    conn, _ = _populated(new_database)

    descriptions = {value for value, in conn.execute('SELECT DISTINCT "description" FROM "Programs"')}
    assert set(sandbox_data.TRICKY_TEXTS) <= descriptions
    assert None in descriptions

    configs = [value for value, in conn.execute('SELECT DISTINCT "config" FROM "ProgramUpdates"')]
    expected_configs = [json.loads(config) for config in sandbox_data.UPDATE_CONFIGS]
    assert sorted(map(_canonical_json, configs)) == sorted(map(_canonical_json, expected_configs))

    changes = conn.execute(
        """SELECT "resourceChanges"::text FROM "ProgramUpdates" WHERE "resourceChanges" IS NOT NULL LIMIT 1"""
    ).fetchone()[0]
    assert re.fullmatch(r'\{"create": \d+, "same": \d+, "update": \d+, "delete": \d+\}', changes)

    summaries, well_formed = conn.execute(
        """
        SELECT count(*), count(*) FILTER (WHERE "message" ~ '^Resources: \\d+ unchanged\nDuration: \\d+s$')
        FROM "UpdateEvents" WHERE "kind" = 'summary'
        """
    ).fetchone()
    assert summaries > 0
    assert well_formed == summaries

    messages = {value for value, in conn.execute('SELECT DISTINCT "message" FROM "ProgramUpdates"')}
    assert set(sandbox_data.COMMIT_MESSAGES) <= messages

    domains = conn.execute(
        'SELECT "orgName", "allowedDomains" FROM "Organizations"'
        ' WHERE cardinality("allowedDomains") > 0 ORDER BY "id" LIMIT 1'
    ).fetchone()
    assert domains[1][0] == f"{domains[0]}.example"


@pytest.mark.parametrize(
    "table, column",
    [("Programs", "description"), ("UpdateEvents", "message"), ("AccessTokens", "description")],
)
def test_text_edge_cases_present(new_database, table, column):
    conn, _ = _populated(new_database)

    query = sql.SQL(
        """
        SELECT count(*) FILTER (WHERE position(E'\\n' IN {column}) > 0),
               count(*) FILTER (WHERE position(E'\\t' IN {column}) > 0),
               count(*) FILTER (WHERE position(E'\\\\' IN {column}) > 0),
               count(*) FILTER (WHERE position('"' IN {column}) > 0),
               count(*) FILTER (WHERE {column} ~ '[^\\x01-\\x7f]'),
               count(*) FILTER (WHERE {column} = ''),
               count(*) FILTER (WHERE {column} = E'\\\\N')
        FROM {table}
        """
    ).format(column=sql.Identifier(column), table=sql.Identifier(table))
    newline, tab, backslash, quote, non_ascii, empty, null_marker = conn.execute(query).fetchone()
    assert newline > 0
    assert tab > 0
    assert backslash > 0
    assert quote > 0
    assert non_ascii > 0
    assert empty > 0
    assert null_marker > 0
    if table != "UpdateEvents":
        nulls = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} IS NULL").format(
                sql.Identifier(table), sql.Identifier(column)
            )
        ).fetchone()[0]
        assert nulls > 0


def test_apply_changes_counts(new_database):
    conn, before = _populated(new_database)

    changes = sandbox_data.apply_changes(conn, seed=1)

    assert set(changes) == set(TABLES)
    for table in TABLES:
        assert _count(conn, table) == before[table] + changes[table]["inserted"], table
    assert changes["Users"] == {"inserted": 10, "updated": 5}
    assert changes["ProgramUpdates"] == {"inserted": 100, "updated": 50}
    assert changes["UpdateEvents"]["updated"] == 0
    assert changes["UpdateEvents"]["inserted"] > 0
    assert changes["OrganizationMembers"]["inserted"] >= 10
    assert changes["OrganizationMembers"]["updated"] == round(before["OrganizationMembers"] * 0.01)


def test_apply_changes_bumps_last_modified(new_database):
    conn, _ = _populated(new_database)
    previous_max = {
        table: _max_last_modified(conn, table) for table in TABLES if table not in FULL_TABLE_TABLES
    }

    changes = sandbox_data.apply_changes(conn, seed=1, fraction=0.05)

    for table, latest in previous_max.items():
        newer = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE {} > %s").format(
                sql.Identifier(table), sql.Identifier(LAST_MODIFIED_COLUMN)
            ),
            (latest,),
        ).fetchone()[0]
        expected = changes[table]["inserted"] + changes[table]["updated"]
        assert changes[table]["updated"] > 0, table
        assert newer == expected, table


def test_apply_changes_finishes_in_progress(new_database):
    conn, _ = _populated(new_database)

    sandbox_data.apply_changes(conn, seed=1, fraction=1.0, new_rows_scale=0)

    unfinished = conn.execute(
        """SELECT count(*) FROM "ProgramUpdates" WHERE "result" = 'in-progress' OR "endTime" IS NULL"""
    ).fetchone()[0]
    assert unfinished == 0


def test_apply_changes_deterministic(new_database):
    first, _ = _populated(new_database)
    second, _ = _populated(new_database)

    first_changes = sandbox_data.apply_changes(first, seed=5)
    second_changes = sandbox_data.apply_changes(second, seed=5)

    assert first_changes == second_changes
    assert _table_digests(first) == _table_digests(second)


def test_apply_changes_repeated_days(new_database):
    conn, before = _populated(new_database)

    first_day = sandbox_data.apply_changes(conn, seed=1)
    after_first = _max_last_modified(conn, "ProgramUpdates")
    second_day = sandbox_data.apply_changes(conn, seed=2)

    for table in TABLES:
        expected = before[table] + first_day[table]["inserted"] + second_day[table]["inserted"]
        assert _count(conn, table) == expected, table
    assert conn.execute(
        'SELECT min("startTime") > %s FROM "ProgramUpdates" WHERE "id" > %s',
        (after_first, before["ProgramUpdates"] + first_day["ProgramUpdates"]["inserted"]),
    ).fetchone()[0]
    assert conn.execute(
        'SELECT count(*) = count(DISTINCT ("stackId", "version")) FROM "ProgramUpdates"'
    ).fetchone()[0]


def test_apply_changes_autocommit_connection(new_database):
    conn, _ = _populated(new_database, scale=0.1, autocommit=True)

    changes = sandbox_data.apply_changes(conn, seed=1)

    assert changes["Users"]["inserted"] == 10


def test_apply_changes_nothing_requested(new_database):
    conn, before = _populated(new_database, scale=0.2)
    digests = _table_digests(conn)

    changes = sandbox_data.apply_changes(conn, seed=1, fraction=0, new_rows_scale=0)

    assert changes == {table: {"inserted": 0, "updated": 0} for table in TABLES}
    assert _table_digests(conn) == digests


def test_apply_changes_rejects_empty_database(new_database):
    conn = new_database()
    sandbox_data.create_schema(conn)

    with pytest.raises(ValueError, match="Run populate first"):
        sandbox_data.apply_changes(conn, seed=1)


def test_apply_changes_rejects_invalid_fraction(new_database):
    conn, _ = _populated(new_database, scale=0.1)

    with pytest.raises(ValueError, match="invalid fraction"):
        sandbox_data.apply_changes(conn, seed=1, fraction=1.5)
