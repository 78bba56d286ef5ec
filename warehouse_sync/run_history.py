"""Run history in the warehouse: one row per stream per run, and a freshness view.

``_etl.run_history`` gets a row for every stream a run loaded or tried to
load: the Prefect flow run id (empty outside Prefect), the pipeline and
stream, rows, start and end times, the status (``succeeded`` or ``failed``)
and an error summary. ``_etl.table_freshness`` shows, per pipeline and
stream, the end of its last successful load. Plain SQL types only, so the
same statements run on Redshift.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

import psycopg
from psycopg import sql

from warehouse_sync.config import Settings
from warehouse_sync.state import run_ddl_once

HISTORY_TABLE = "run_history"
FRESHNESS_VIEW = "table_freshness"
MAX_ERROR_CHARS = 1000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamRun:
    """One stream's outcome in one run."""

    pipeline: str
    stream: str
    rows: int
    started_at: datetime
    finished_at: datetime
    status: str
    error: str | None = None


def current_flow_run_id() -> str:
    """Return the Prefect flow run id, or an empty string outside a flow run."""
    try:
        from prefect.context import FlowRunContext
    except ImportError:
        return ""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return ""
    return str(context.flow_run.id)


def summarize_error(error: str | None) -> str | None:
    """Cut an error to MAX_ERROR_CHARS, keeping its first line and its end, where the cause usually is."""
    if not error:
        return None
    if len(error) <= MAX_ERROR_CHARS:
        return error
    head = error.splitlines()[0][:300]
    return f"{head}\n...\n{error[-(MAX_ERROR_CHARS - len(head) - 5):]}"


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def ensure_objects(conn: psycopg.Connection, schema: str) -> None:
    """Create the history table and the freshness view if they are missing."""
    table = sql.Identifier(schema, HISTORY_TABLE)
    view = sql.Identifier(schema, FRESHNESS_VIEW)
    run_ddl_once(conn, [
        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)),
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            " flow_run_id VARCHAR(64) NOT NULL,"
            " pipeline VARCHAR(256) NOT NULL,"
            " stream VARCHAR(512) NOT NULL,"
            " rows_loaded BIGINT NOT NULL,"
            " started_at TIMESTAMP NOT NULL,"
            " finished_at TIMESTAMP NOT NULL,"
            " status VARCHAR(16) NOT NULL,"
            " error VARCHAR(4000))"
        ).format(table),
        # CREATE OR REPLACE keeps the view current when its definition changes.
        sql.SQL(
            "CREATE OR REPLACE VIEW {} AS"
            " SELECT pipeline, stream, max(finished_at) AS last_success_at,"
            " sum(rows_loaded) AS rows_loaded_total"
            " FROM {} WHERE status = 'succeeded' GROUP BY pipeline, stream"
        ).format(view, table),
    ])


def record(settings: Settings, runs: list[StreamRun], logger: logging.Logger = log) -> None:
    """Append ``runs`` to the history table in one transaction.

    A failure to write history is logged and not raised, so it never turns a
    successful load into a failed one.
    """
    if not runs:
        return
    flow_run_id = current_flow_run_id()
    try:
        with psycopg.connect(**settings.warehouse.conninfo(), connect_timeout=30) as conn:
            ensure_objects(conn, settings.state_schema)
            with conn.cursor() as cur:
                cur.executemany(
                    sql.SQL(
                        "INSERT INTO {} (flow_run_id, pipeline, stream, rows_loaded, started_at, finished_at,"
                        " status, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                    ).format(sql.Identifier(settings.state_schema, HISTORY_TABLE)),
                    [
                        (
                            flow_run_id,
                            run.pipeline,
                            run.stream,
                            run.rows,
                            _naive_utc(run.started_at),
                            _naive_utc(run.finished_at),
                            run.status,
                            summarize_error(run.error),
                        )
                        for run in runs
                    ],
                )
    except psycopg.Error as exc:
        logger.warning("could not write %d run history rows to %s.%s: %s",
                       len(runs), settings.state_schema, HISTORY_TABLE, exc)
