"""Replication settings and catalog building, on a hand-made discovery result."""

import textwrap

import pytest

from warehouse_sync.errors import ConfigError
from warehouse_sync.replication import (
    DEFAULT_SETTINGS_PATH,
    build_catalog,
    load_replication_settings,
    select_tables,
    warehouse_table_name,
)


def _stream(table, columns, schema="public"):
    return {
        "tap_stream_id": f"{schema}-{table}",
        "table_name": table,
        "stream": table,
        "schema": {"type": "object", "properties": {c: {"type": ["null", "string"]} for c in columns}},
        "metadata": [
            {"breadcrumb": [], "metadata": {"schema-name": schema, "table-key-properties": ["id"]}},
            *(
                {"breadcrumb": ["properties", c], "metadata": {"inclusion": "available", "selected-by-default": True}}
                for c in columns
            ),
        ],
    }


DISCOVERED = {
    "streams": [
        _stream("Users", ["id", "email", "passwordHash", "apiKeyHint", "lastModified"]),
        _stream("Events", ["id", "payload"]),
        _stream("Users", ["id"], schema="archive"),
    ]
}


def _settings(tmp_path, body):
    path = tmp_path / "settings.yaml"
    path.write_text(textwrap.dedent(body))
    return load_replication_settings(path)


def _column_selection(stream):
    return {
        m["breadcrumb"][-1]: m["metadata"]["selected"] for m in stream["metadata"] if m["breadcrumb"]
    }


def test_catalog_selects_and_deselects(tmp_path):
    settings = _settings(tmp_path, """
        source_schema: public
        secret_column_patterns: [password, "api_?key"]
        tables:
          Users:
            replication_method: INCREMENTAL
            replication_key: lastModified
            personal_columns: [email]
          Events:
            replication_method: FULL_TABLE
    """)

    plan = build_catalog(DISCOVERED, settings)

    users, events = plan.catalog["streams"]
    table_md = users["metadata"][0]["metadata"]
    assert table_md["selected"] is True
    assert table_md["replication-method"] == "INCREMENTAL"
    assert table_md["replication-key"] == "lastModified"
    assert _column_selection(users) == {
        "id": True, "email": True, "passwordHash": False, "apiKeyHint": False, "lastModified": True,
    }
    assert "passwordHash" not in users["schema"]["properties"]
    assert plan.excluded_columns == {"Users": ["passwordHash", "apiKeyHint"]}
    assert plan.hashed_columns == {"Users": ["email"]}
    assert plan.transformations() == [{"tap_stream_name": "public-Users", "field_id": "email", "type": "HASH"}]
    assert events["metadata"][0]["metadata"]["replication-method"] == "FULL_TABLE"


def test_allow_columns_override_patterns(tmp_path):
    settings = _settings(tmp_path, """
        secret_column_patterns: ["api_?key"]
        tables:
          Users:
            replication_method: FULL_TABLE
            allow_columns: [apiKeyHint]
    """)

    plan = build_catalog(DISCOVERED, settings, ["users"])

    assert plan.excluded_columns == {}
    assert plan.tables == ["Users"]


def test_missing_table_and_columns_named(tmp_path):
    settings = _settings(tmp_path, """
        tables:
          Users:
            replication_method: INCREMENTAL
            replication_key: updatedAt
            secret_columns: [tokenHash]
          Stacks:
            replication_method: FULL_TABLE
    """)

    with pytest.raises(ConfigError) as raised:
        build_catalog(DISCOVERED, settings)
    message = str(raised.value)

    assert "table public.Stacks not found in the source database" in message
    assert "column Users.updatedAt not found in the source table" in message
    assert "column Users.tokenHash not found in the source table" in message


def test_invalid_settings_listed(tmp_path):
    with pytest.raises(ConfigError) as raised:
        _settings(tmp_path, """
            secret_column_patterns: ["("]
            tables:
              Users:
                replication_method: INCREMENTAL
              Events:
                replication_method: LOG_BASED
                colums: [x]
        """)
    message = str(raised.value)

    assert "INCREMENTAL needs replication_key" in message
    assert "replication_method='LOG_BASED' is invalid" in message
    assert "unknown keys ['colums']" in message
    assert "is not a valid regular expression" in message


def test_unknown_table_requested(tmp_path):
    settings = _settings(tmp_path, """
        tables:
          Users: {replication_method: FULL_TABLE}
    """)

    with pytest.raises(ConfigError, match="tables not in the replication settings: Stackz"):
        select_tables(settings, ["Stackz"])


def test_project_settings_load():
    settings = load_replication_settings(DEFAULT_SETTINGS_PATH)

    assert "ProgramUpdates" in settings.tables
    assert settings.tables["UpdateEvents"].replication_method == "FULL_TABLE"
    assert "passwordHash" in settings.tables["Users"].secret_columns


def test_warehouse_table_name_lower_case():
    assert warehouse_table_name("ProgramUpdates") == "programupdates"
    assert warehouse_table_name("my-table.v2") == "my_table_v2"
