"""Prefect flow: the nightly sync. Both loads run at once; the Metabase refresh follows.

If one load fails, the other still completes, the Metabase refresh still runs
for what loaded, and the run then ends Failed, naming what failed.
"""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.refresh_metabase import refresh_metabase
from flows.sync_production_db import sync_production_db
from flows.sync_segment import sync_segment


@task(name="load production database")
def load_production(tables: list[str] | None, full_refresh: bool) -> dict:
    return sync_production_db(tables=tables, full_refresh=full_refresh)


@task(name="load segment archive")
def load_segment(sources: list[str] | None) -> dict:
    return sync_segment(sources=sources)


@task(name="refresh metabase")
def refresh_metabase_after(loaded: list[str], dry_run: bool) -> dict:
    get_run_logger().info("refreshing Metabase after: %s", ", ".join(loaded))
    return refresh_metabase(dry_run=dry_run)


def _summary_markdown(results: dict[str, dict], failures: dict[str, str], metabase: str) -> str:
    lines = ["# Warehouse sync", "", "| part | outcome |", "|---|---|"]
    production = results.get("production database")
    if production is not None:
        lines.append(f"| production database | {production['headline']} |")
    segment = results.get("segment archive")
    if segment is not None:
        lines.append(
            f"| segment archive | {segment['events']:,} events from {len(segment['sources'])} sources, "
            f"{segment['rejects']:,} lines rejected |"
        )
    for part, message in failures.items():
        lines.append(f"| {part} | **failed**: {message.splitlines()[0][:300]} |")
    lines.append(f"| metabase | {metabase} |")
    return "\n".join(lines)


@flow(name="warehouse_sync")
def warehouse_sync(
    tables: list[str] | None = None,
    full_refresh: bool = False,
    sources: list[str] | None = None,
    refresh_metabase: bool = True,
    metabase_dry_run: bool = False,
) -> dict:
    """Load the production database and the Segment archive at once, then refresh Metabase.

    Args:
        tables: production tables to sync (default: all in taps/production.yaml).
        full_refresh: forget those tables' bookmarks and reload them.
        sources: Segment sources to load, by name or schema (default: all).
        refresh_metabase: refresh Metabase after the loads.
        metabase_dry_run: plan the Metabase changes without writing them.
    """
    logger = get_run_logger()
    futures = {
        "production database": load_production.submit(tables, full_refresh),
        "segment archive": load_segment.submit(sources),
    }

    results, failures = {}, {}
    for part, future in futures.items():
        future.wait()
        if future.state.is_completed():
            results[part] = future.result()
        else:
            failures[part] = str(future.state.message or future.state.name)
            logger.error("%s failed: %s", part, failures[part])

    metabase, metabase_summary = "not requested", ""
    if refresh_metabase and results:
        refreshed = refresh_metabase_after.submit(list(results), metabase_dry_run)
        refreshed.wait()
        if refreshed.state.is_completed():
            outcome = refreshed.result()
            metabase, metabase_summary = outcome["headline"], outcome["summary"]
        else:
            failures["metabase"] = str(refreshed.state.message or refreshed.state.name)
            metabase = "failed"

    create_markdown_artifact(key="warehouse-sync", markdown=_summary_markdown(results, failures, metabase))
    if failures:
        raise RuntimeError("warehouse sync failed: " + "; ".join(f"{p}: {m.splitlines()[0]}" for p, m in failures.items()))
    return {"parts": results, "metabase": metabase, "metabase_summary": metabase_summary}
