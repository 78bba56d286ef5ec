"""Smoke tests: each pinned connector starts from its virtualenv and does its job."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
from dataclasses import replace

import psycopg
import pytest

from warehouse_sync import connectors
from warehouse_sync.config import S3Staging
from warehouse_sync.errors import PipelineError
from warehouse_sync.production import secret_redactor
from warehouse_sync.runner import Stage, run_pipeline

LOG = logging.getLogger("test-connectors")
NOTE = 'tab\there\nnew line, "quoted", back\\slash, ünïcödé'
MESSAGES = [
    {"type": "SCHEMA", "stream": "public-Things", "key_properties": ["id"],
     "schema": {"properties": {"id": {"type": ["integer"]}, "note": {"type": ["null", "string"]},
                               "email": {"type": ["null", "string"]}}}},
    {"type": "STATE", "value": {"bookmarks": {"public-Things": {"n": 0}}}},
    {"type": "RECORD", "stream": "public-Things", "record": {"id": 1, "note": NOTE, "email": "a@example.com"}},
    {"type": "RECORD", "stream": "public-Things", "record": {"id": 2, "note": "", "email": None}},
    {"type": "STATE", "value": {"bookmarks": {"public-Things": {"n": 2}}}},
]


def _fake_tap(messages) -> Stage:
    """A stage that writes the given Singer messages, standing in for a tap."""
    lines = "\n".join(json.dumps(m) for m in messages)
    code = f"import sys\nsys.stdout.write({lines!r} + '\\n')"
    return Stage(name="messages", argv=[sys.executable, "-c", code], env=connectors.connector_env())


@pytest.mark.parametrize("name", ["tap-postgres", "target-postgres", "target-redshift", "transform-field"])
def test_connector_starts(name):
    result = subprocess.run(
        connectors.stage(name, "--help").argv, capture_output=True, text=True, env=connectors.connector_env()
    )

    assert result.returncode == 0, result.stderr
    assert "--config" in result.stdout


def test_tap_postgres_discovers_tables(settings, pg_server, databases):
    with pg_server.connect(databases[0]) as conn:
        conn.execute('CREATE TABLE "Widgets" (id serial PRIMARY KEY, "Name" text)')
        conn.commit()

    with connectors.ConfigFolder() as folder:
        config = folder.write_json("tap.json", connectors.tap_postgres_config(settings.source, "public"))
        tap = connectors.stage("tap-postgres", "--config", str(config), "--discover")
        result = subprocess.run(tap.argv, env=tap.env, capture_output=True, check=True)

    streams = {s["tap_stream_id"]: s for s in json.loads(result.stdout)["streams"]}
    assert set(streams) == {"public-Widgets"}
    assert set(streams["public-Widgets"]["schema"]["properties"]) == {"id", "Name"}


def test_target_postgres_loads_records(settings):
    states = []
    with connectors.ConfigFolder() as folder:
        target = connectors.target_stage(settings, folder)
        run_pipeline([_fake_tap(MESSAGES), target], states.append, LOG)

    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        rows = conn.execute("SELECT id, note, email FROM pulumi.things ORDER BY id").fetchall()
    assert rows == [(1, NOTE, "a@example.com"), (2, "", None)]
    assert states[-1] == {"bookmarks": {"public-Things": {"n": 2}}}


def test_transform_field_hashes_and_keeps_state_order(settings):
    config = {"transformations": [{"tap_stream_name": "public-Things", "field_id": "email", "type": "HASH"}]}
    captured = []
    with connectors.ConfigFolder() as folder:
        transform = connectors.stage("transform-field", "--config", str(folder.write_json("t.json", config)))
        catch = Stage(name="collect", argv=[sys.executable, "-c", "import sys\nfor l in sys.stdin: print(l, end='')"],
                      env=connectors.connector_env())
        run_pipeline([_fake_tap(MESSAGES), transform, catch], captured.append, LOG)

    records = captured
    # The collector echoes every message; run_pipeline hands on the STATE ones.
    assert [r for r in records] == [
        {"bookmarks": {"public-Things": {"n": 0}}},
        {"bookmarks": {"public-Things": {"n": 2}}},
    ]


def test_transform_field_output_hashed():
    config = {"transformations": [{"tap_stream_name": "public-Things", "field_id": "email", "type": "HASH"}]}
    with connectors.ConfigFolder() as folder:
        transform = connectors.stage("transform-field", "--config", str(folder.write_json("t.json", config)))
        result = subprocess.run(
            transform.argv,
            input="\n".join(json.dumps(m) for m in MESSAGES) + "\n",
            capture_output=True, text=True, env=transform.env, check=True,
        )

    output = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [m["type"] for m in output]
    assert kinds == ["SCHEMA", "STATE", "RECORD", "RECORD", "STATE"]
    assert output[2]["record"]["email"] == hashlib.sha256(b"a@example.com").hexdigest()
    assert output[2]["record"]["note"] == NOTE


def test_target_redshift_stages_file_in_s3(settings, s3_client, moto_s3):
    """target-redshift against moto's S3 and a PostgreSQL standing in for Redshift.

    The upload of the staged CSV is real; Redshift's COPY from S3 is not
    exercised here (PostgreSQL has no COPY ... FROM 's3://...'), so the run is
    expected to fail at that statement.
    """
    s3_client.create_bucket(Bucket="staging")
    secret_key = "moto-secret-access-key-value"
    redshift = replace(
        settings,
        warehouse_type="redshift",
        s3=S3Staging(
            bucket="staging",
            key_prefix="singer/",
            region="us-east-1",
            access_key_id="AKIAMOTOTESTKEY",
            secret_access_key=secret_key,
            endpoint_url=moto_s3,
        ),
    )

    with connectors.ConfigFolder() as folder:
        target = connectors.target_stage(redshift, folder)
        target = replace(target, env={**target.env, "AWS_EC2_METADATA_DISABLED": "true"})
        with pytest.raises(PipelineError) as raised:
            run_pipeline([_fake_tap(MESSAGES), target], lambda state: None, LOG, redact=secret_redactor(redshift))

    message = str(raised.value)
    assert "target-redshift exited with code 1" in message
    assert "COPY" in message or "ACCESS_KEY_ID" in message
    assert secret_key not in message
    assert "AKIAMOTOTESTKEY" not in message

    objects = s3_client.list_objects_v2(Bucket="staging", Prefix="singer/")["Contents"]
    assert len(objects) == 1
    body = s3_client.get_object(Bucket="staging", Key=objects[0]["Key"])["Body"].read().decode()
    lines = body.split("\n")
    # Quoted fields; backslash and quote escaped, line breaks kept behind a
    # backslash as Redshift's COPY ... ESCAPE expects.
    assert lines[0].startswith('"a@example.com","1","tab\there\\')
    assert '\\"quoted\\"' in body
    assert "back\\\\slash" in body
    assert ',"2",""' in body


def test_config_folder_private_and_removed():
    with connectors.ConfigFolder() as folder:
        path = folder.write_json("secret.json", {"password": "p"})
        folder_mode = folder.path.stat().st_mode & 0o777
        file_mode = path.stat().st_mode & 0o777

    assert folder_mode == 0o700
    assert file_mode == 0o600
    assert not path.exists()
    assert not folder.path.exists()


def test_connector_environment_minimal(monkeypatch):
    monkeypatch.setenv("SOURCE_DB_PASSWORD", "must-not-pass")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-pass-either")

    env = connectors.connector_env()

    assert "SOURCE_DB_PASSWORD" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["TZ"] == "UTC"
