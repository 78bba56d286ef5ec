"""Prefect flow: load Segment's event archive into one warehouse schema per source."""

from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact

from flows.sync_production_db import retry_if_transient
from warehouse_sync import segment
from warehouse_sync.production import format_table
from warehouse_sync.sandbox import current_segment_settings, current_settings


@task(name="load segment source", retries=2, retry_delay_seconds=[30, 120], retry_condition_fn=retry_if_transient,
      task_run_name="load segment source {schema}")
def load_source(schema: str) -> segment.SourceReport:
    logger = get_run_logger()
    settings = current_settings(logger)
    sources = current_segment_settings(settings)
    source = segment.select_sources(sources, [schema])[0]
    return segment.sync_source(settings, source, sources, logger=logger)


@flow(name="sync_segment")
def sync_segment(sources: list[str] | None = None) -> dict:
    """Load new Segment archive files into the warehouse, all sources in parallel.

    Args:
        sources: Segment sources to load, by name or schema (default: every
            source in taps/segment.yaml with a source_id).
    """
    logger = get_run_logger()
    settings = current_settings(logger)
    chosen = segment.select_sources(current_segment_settings(settings), sources)
    futures = {source.schema: load_source.submit(source.schema) for source in chosen}

    reports, failed = [], {}
    for schema, future in futures.items():
        future.wait()
        if future.state.is_completed():
            reports.append(future.result())
        else:
            failed[schema] = str(future.state.message or future.state.name)

    rows = segment.summary_rows(reports)
    if rows:
        create_table_artifact(key="segment-sync", table=rows, description="Segment archive load per source and table")
        logger.info("Segment load summary:\n%s", format_table(rows))
    if failed:
        raise RuntimeError("Segment sources failed: " + "; ".join(f"{s}: {m}" for s, m in failed.items()))
    return {
        "sources": [r.source.schema for r in reports],
        "events": sum(r.events for r in reports),
        "rejects": sum(r.rejects for r in reports),
        "duplicates": sum(r.duplicates for r in reports),
        "tables": rows,
    }
