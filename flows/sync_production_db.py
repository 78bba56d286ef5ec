"""Prefect flow: replicate the production database into the warehouse schema."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from warehouse_sync import production
from warehouse_sync.errors import PipelineError
from warehouse_sync.sandbox import current_settings


def retry_if_transient(task, task_run, state) -> bool:
    """Allow a retry only for a dropped connection or a time-out, never for bad configuration."""
    try:
        error = state.result(raise_on_failure=False)
    except Exception:  # noqa: BLE001 - an unreadable result is not a transient failure
        return False
    return isinstance(error, PipelineError) and error.transient


@task(name="replicate production database", retries=2, retry_delay_seconds=[30, 120],
      retry_condition_fn=retry_if_transient)
def replicate(tables: list[str] | None, full_refresh: bool) -> production.SyncReport:
    logger = get_run_logger()
    settings = current_settings(logger)
    return production.sync_production_db(
        settings, tables=tables, full_refresh_tables=full_refresh, logger=logger
    )


@task(name="publish production sync summary")
def publish_summary(report: production.SyncReport) -> None:
    create_table_artifact(
        key="production-db-sync",
        table=report.rows_for_table(),
        description=f"Production database sync: {report.headline()}",
    )
    excluded = ", ".join(f"`{t}.{c}`" for t, cols in report.excluded_columns.items() for c in cols)
    hashed = ", ".join(f"`{t}.{c}`" for t, cols in report.hashed_columns.items() for c in cols)
    create_markdown_artifact(
        key="production-db-sync-notes",
        markdown=(
            f"**{report.headline()}**\n\n"
            f"Secret columns not extracted: {excluded or 'none'}\n\n"
            f"Personal-data columns hashed: {hashed or 'none'}\n\n"
            f"Full refresh: {', '.join(report.reset_tables) or 'none'}\n"
        ),
    )


@flow(name="sync_production_db")
def sync_production_db(tables: list[str] | None = None, full_refresh: bool = False) -> dict:
    """Replicate the production database into the warehouse, incrementally.

    Args:
        tables: source table names to sync (default: every table in taps/production.yaml).
        full_refresh: forget these tables' bookmarks and empty their warehouse tables first.
    """
    report = replicate(tables, full_refresh)
    publish_summary(report)
    return {
        "rows": report.rows,
        "seconds": round(report.seconds, 1),
        "headline": report.headline(),
        "tables": report.rows_for_table(),
    }
