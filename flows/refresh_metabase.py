"""Prefect flow: bring Metabase up to date with the warehouse (see docs/metabase.md)."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from warehouse_sync.metabase import refresh
from warehouse_sync.metabase.settings import current_metabase_settings
from warehouse_sync.sandbox import current_settings


@task(name="refresh metabase")
def run_refresh(dry_run: bool, steps: list[str] | None) -> refresh.RefreshReport:
    logger = get_run_logger()
    settings = current_settings(logger)
    return refresh.refresh_metabase(settings, current_metabase_settings(), dry_run=dry_run, steps=steps, logger=logger)


@task(name="publish metabase refresh summary")
def publish_summary(report: refresh.RefreshReport) -> None:
    create_markdown_artifact(key="metabase-refresh", markdown=report.markdown(), description=report.headline())


@flow(name="refresh_metabase")
def refresh_metabase(dry_run: bool = False, steps: list[str] | None = None) -> dict:
    """Sync Metabase's schema, set foreign-key metadata, update the dashboards and run their cards.

    The summary artifact is written first; then the run fails with every
    problem listed if anything needs attention.

    Args:
        dry_run: log and summarise the plan, and send no changes to Metabase.
        steps: some of "sync", "foreign_keys", "dashboards", "health" (default: all, in that order).
    """
    report = run_refresh(dry_run, steps)
    publish_summary(report)
    refresh.raise_for_problems(report)
    return {"headline": report.headline(), "problems": report.problems, "summary": report.markdown()}
