"""Run history rows and the freshness view in the warehouse."""

from dataclasses import replace

import psycopg
import pytest

from warehouse_sync import production, sandbox_data
from warehouse_sync.errors import PipelineError

pytestmark = pytest.mark.slow


def _history(settings):
    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        return conn.execute(
            "SELECT pipeline, stream, rows_loaded, status, error, finished_at >= started_at"
            " FROM _etl.run_history ORDER BY stream, status"
        ).fetchall()


def test_history_rows_for_success_and_failure(settings, production_source):
    production.sync_production_db(settings, tables=["Users", "Stacks"])
    wrong = replace(settings, source=replace(settings.source, password="not-the-password"))
    with pytest.raises(PipelineError):
        production.sync_production_db(wrong, tables=["Users"])

    rows = _history(settings)

    succeeded = [r for r in rows if r[3] == "succeeded"]
    failed = [r for r in rows if r[3] == "failed"]
    assert sorted((r[1], r[2]) for r in succeeded) == [
        ("Stacks", production_source["Stacks"]), ("Users", production_source["Users"]),
    ]
    assert len(failed) == 1
    assert failed[0][1] == "Users"
    assert "password authentication failed" in failed[0][4]
    assert "not-the-password" not in failed[0][4]
    assert all(r[5] for r in rows)


def test_freshness_view_shows_last_success(settings, production_source):
    production.sync_production_db(settings)

    with psycopg.connect(**settings.warehouse.conninfo()) as conn:
        fresh = dict(conn.execute(
            "SELECT stream, rows_loaded_total FROM _etl.table_freshness WHERE pipeline = 'production-db'"
        ).fetchall())

    assert set(fresh) == set(sandbox_data.TABLES)
    assert fresh["ProgramUpdates"] == production_source["ProgramUpdates"]
