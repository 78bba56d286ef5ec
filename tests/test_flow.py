"""The sync_production_db Prefect flow, run against a local Prefect test server."""

from __future__ import annotations

import inspect
import os
import json
import logging

import pytest
from prefect.testing.utilities import prefect_test_harness

from flows import sync_production_db as flow_module
from warehouse_sync import cli
from warehouse_sync.errors import ConfigError, PipelineError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=180):
        yield


def test_flow_parameters_match_cli():
    parameters = inspect.signature(flow_module.sync_production_db.fn).parameters

    assert list(parameters) == ["tables", "full_refresh"]
    assert parameters["tables"].default is None
    assert parameters["full_refresh"].default is False


def test_flow_writes_summary_artifact(prefect_server, settings, production_source, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    monkeypatch.setattr(flow_module, "current_settings", lambda logger: settings)

    result = flow_module.sync_production_db(tables=["Users", "Stacks"])

    assert [row["table"] for row in result["tables"]] == ["Users", "Stacks"]
    assert result["rows"] == production_source["Users"] + production_source["Stacks"]
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["production-db-sync"]))
        )
    assert artifacts
    table = json.loads(artifacts[-1].data)
    assert {row["table"] for row in table} == {"Users", "Stacks"}


class _FakeState:
    def __init__(self, error):
        self.error = error

    def result(self, raise_on_failure=False):
        return self.error


def test_retry_only_for_transient_failures():
    assert flow_module.retry_if_transient(None, None, _FakeState(PipelineError("reset", transient=True)))
    assert not flow_module.retry_if_transient(None, None, _FakeState(PipelineError("exit 1")))
    assert not flow_module.retry_if_transient(None, None, _FakeState(ConfigError("SOURCE_DB_HOST is missing")))


def test_cli_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as raised:
        cli.main(["--help"])

    assert raised.value.code == 0
    output = capsys.readouterr().out
    for command in ("sync", "discover", "bookmarks", "sandbox", "warehouse-sql"):
        assert command in output


def test_cli_config_error_exits_2(monkeypatch, caplog, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCE_DB_HOST", "db.internal")
    caplog.set_level(logging.ERROR)

    with pytest.raises(SystemExit) as raised:
        cli.main(["bookmarks", "list"])

    assert raised.value.code == 2
    assert "SOURCE_DB_NAME is missing" in caplog.text


def test_secret_read_from_prefect_block(prefect_server):
    from prefect.blocks.system import Secret

    from warehouse_sync.config import resolve_secret_blocks

    Secret(value="from-the-block").save("test-source-db-password", overwrite=True)

    env = resolve_secret_blocks({"SOURCE_DB_PASSWORD_BLOCK": "test-source-db-password"})

    assert env["SOURCE_DB_PASSWORD"] == "from-the-block"


def test_missing_prefect_block_named(prefect_server):
    from warehouse_sync.config import resolve_secret_blocks

    with pytest.raises(ConfigError, match="WAREHOUSE_PASSWORD_BLOCK names the Prefect Secret block 'no-such-block'"):
        resolve_secret_blocks({"WAREHOUSE_PASSWORD_BLOCK": "no-such-block"})


def _segment_setup(settings, tmp_path):
    from dataclasses import replace

    from warehouse_sync import segment, segment_archive
    from warehouse_sync.config import SegmentArchive

    root = tmp_path / "archive"
    segment_archive.generate_archive(root, days=1, files_per_day=2, events_per_file=20)
    blog = next(s for s in segment_archive.SOURCES if s.schema_name == "blog")
    sources = segment.SegmentSettings(sources=(segment.SegmentSource(blog.name, blog.source_id, "blog"),))
    return replace(settings, segment=SegmentArchive(local_path=root)), sources


def _history_statuses(settings):
    import psycopg

    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        return set(conn.execute("SELECT pipeline, status FROM _etl.run_history").fetchall())


def test_parent_flow_runs_both_loads(prefect_server, settings, production_source, tmp_path, monkeypatch):
    from flows import sync_segment as segment_flow
    from flows import warehouse_sync as parent

    with_archive, sources = _segment_setup(settings, tmp_path)
    monkeypatch.setattr(flow_module, "current_settings", lambda logger: with_archive)
    monkeypatch.setattr(segment_flow, "current_settings", lambda logger: with_archive)
    monkeypatch.setattr(segment_flow, "current_segment_settings", lambda s: sources)

    result = parent.warehouse_sync(tables=["Users"], refresh_metabase=False)

    assert result["parts"]["production database"]["rows"] == production_source["Users"]
    assert result["parts"]["segment archive"]["sources"] == ["blog"]
    assert result["parts"]["segment archive"]["events"] > 0
    assert _history_statuses(settings) == {("production-db", "succeeded"), ("segment-blog", "succeeded")}


def test_parent_flow_fails_but_other_load_completes(prefect_server, settings, production_source, tmp_path,
                                                    monkeypatch):
    from dataclasses import replace

    from flows import sync_segment as segment_flow
    from flows import warehouse_sync as parent

    with_archive, sources = _segment_setup(settings, tmp_path)
    broken = replace(with_archive, source=replace(with_archive.source, password="not-the-password"))
    monkeypatch.setattr(flow_module, "current_settings", lambda logger: broken)
    monkeypatch.setattr(segment_flow, "current_settings", lambda logger: with_archive)
    monkeypatch.setattr(segment_flow, "current_segment_settings", lambda s: sources)

    with pytest.raises(RuntimeError) as raised:
        parent.warehouse_sync(tables=["Users"], refresh_metabase=False)

    assert "production database" in str(raised.value)
    assert "segment archive" not in str(raised.value)
    assert _history_statuses(settings) == {("production-db", "failed"), ("segment-blog", "succeeded")}
    import psycopg

    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        assert conn.execute("SELECT count(*) FROM blog.pages").fetchone()[0] > 0


def test_local_prefect_home_created(tmp_path, monkeypatch):
    sandbox_dir = tmp_path / "not-yet" / "sandbox"
    monkeypatch.setenv("SANDBOX_DIR", str(sandbox_dir))
    # setenv first, so the monkeypatch removes what the call sets afterwards.
    for name in ("PREFECT_API_URL", "PREFECT_HOME"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)

    cli.use_local_prefect_defaults()

    assert (sandbox_dir / "prefect").is_dir()
    assert os.environ["PREFECT_HOME"] == str(sandbox_dir / "prefect")


def test_unknown_table_fails_before_prefect(capsys, caplog, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.ERROR)

    with pytest.raises(SystemExit) as raised:
        cli.main(["sync", "--tables", "NoSuchTable"])

    assert raised.value.code == 2
    assert "tables not in the replication settings: NoSuchTable" in caplog.text


def test_secret_blocks_created_from_env_file(prefect_server, tmp_path, capsys):
    from prefect.blocks.system import Secret

    env_file = tmp_path / ".env"
    env_file.write_text("SOURCE_DB_PASSWORD=from-env-file\nSOURCE_DB_HOST=db.internal\n")

    with pytest.raises(SystemExit) as raised:
        cli.main(["secret-blocks", "--env-file", str(env_file)])

    assert raised.value.code == 0
    assert Secret.load("source-db-password").get() == "from-env-file"
    output = capsys.readouterr().out
    assert "SOURCE_DB_PASSWORD_BLOCK=source-db-password" in output
    assert "from-env-file" not in output


def test_sandbox_created_once_when_asked_twice_at_once(tmp_path, monkeypatch):
    """The nightly flow's two loads ask for a new sandbox at the same moment."""
    from concurrent.futures import ThreadPoolExecutor

    from warehouse_sync import sandbox

    monkeypatch.setenv("SANDBOX_DIR", str(tmp_path / "sandbox"))
    monkeypatch.setenv("SANDBOX_SCALE", "0.05")
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(lambda _: sandbox.ensure_sandbox(), range(2)))

        assert results[0].source.port == results[1].source.port
        with sandbox.server().connect(sandbox.SOURCE_DB) as conn:
            users = conn.execute('SELECT count(*) FROM "Users"').fetchone()[0]
        assert users == 25
    finally:
        sandbox.server().remove()
