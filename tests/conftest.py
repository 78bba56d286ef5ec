"""Shared fixtures: one real PostgreSQL server and one moto S3 server per test session.

Each test gets its own source and warehouse databases with unique names,
dropped afterwards, so tests do not see each other's rows.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from warehouse_sync import sandbox_data
from warehouse_sync.config import Settings
from warehouse_sync.pgserver import PostgresServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory):
    server = PostgresServer(tmp_path_factory.mktemp("postgres"))
    server.start()
    yield server
    server.remove()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def databases(pg_server):
    """Create an empty source and warehouse database; yield their names."""
    names = (_unique("source"), _unique("warehouse"))
    for name in names:
        pg_server.create_database(name, exist_ok=False)
    yield names
    for name in names:
        pg_server.drop_database(name)


@pytest.fixture
def settings(pg_server, databases) -> Settings:
    """Settings for a sync from the test's source database into its warehouse database."""
    source, warehouse = databases
    return Settings(
        source=pg_server.settings(source),
        warehouse=pg_server.settings(warehouse),
        warehouse_type="postgres",
        state_store="warehouse",
    )


@pytest.fixture
def production_source(pg_server, databases):
    """Fill the test's source database with the sandbox schema at a small scale."""
    with pg_server.connect(databases[0]) as conn:
        sandbox_data.create_schema(conn)
        counts = sandbox_data.populate(conn, scale=0.2, seed=11)
    return counts


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def moto_s3():
    """Run moto's S3 server over HTTP on loopback; yield its endpoint URL."""
    port = _free_port()
    moto_server = Path(sys.executable).parent / "moto_server"
    env = {**os.environ, "AWS_EC2_METADATA_DISABLED": "true"}
    process = subprocess.Popen(
        [str(moto_server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("moto_server did not start within 30 s")
            time.sleep(0.2)
    yield endpoint
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def s3_client(moto_s3, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return boto3.client(
        "s3",
        endpoint_url=moto_s3,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )


@pytest.fixture
def start_metabase(request):
    """Start fake Metabase servers that accept the test module's API_KEY; stop them afterwards."""
    from fake_metabase import FakeMetabase

    servers = []

    def start(**options):
        fake = FakeMetabase(api_keys=(request.module.API_KEY,), **options).start()
        servers.append(fake)
        return fake

    yield start
    for fake in servers:
        fake.stop()
