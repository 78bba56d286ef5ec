"""Replicate the production database into the warehouse schema.

``sync_production_db`` is the whole job as plain functions: discover the
source, build the catalog from the replication settings, run
tap-postgres | [transform-field] | target, save each STATE as it comes, and
report per table. The Prefect flow of the same name only calls it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

import psycopg
from psycopg import sql

from warehouse_sync import connectors, run_history
from warehouse_sync.config import Settings
from warehouse_sync.errors import PipelineError
from warehouse_sync.replication import (
    CatalogPlan,
    ReplicationSettings,
    build_catalog,
    load_replication_settings,
    select_tables,
    stream_name,
    warehouse_table_name,
)
from warehouse_sync.runner import Redactor, looks_transient, run_pipeline
from warehouse_sync.state import FileStateStore, StateStore, WarehouseStateStore, reset_streams

PIPELINE = "production-db"
DISCOVERY_TIMEOUT_SECONDS = 600

log = logging.getLogger(__name__)


@dataclass
class TableSummary:
    """One table's line in a run's summary."""

    table: str
    warehouse_table: str
    method: str
    rows: int
    seconds: float
    bookmark: str | None
    resumed: bool


@dataclass
class SyncReport:
    """Per-table results of one run of the production-database sync."""

    tables: list[TableSummary]
    seconds: float
    excluded_columns: dict[str, list[str]] = field(default_factory=dict)
    hashed_columns: dict[str, list[str]] = field(default_factory=dict)
    reset_tables: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    @property
    def is_incremental(self) -> bool:
        return any(t.resumed for t in self.tables)

    def headline(self) -> str:
        resumed = sum(t.resumed for t in self.tables)
        if self.reset_tables:
            kind = f"full refresh of {', '.join(self.reset_tables)}"
        elif resumed:
            kind = f"incremental: {resumed} of {len(self.tables)} tables resumed from their bookmarks"
        else:
            kind = "initial load: no bookmarks existed for these tables"
        return f"{self.rows:,} rows in {self.seconds:.1f} s ({kind})"

    def rows_for_table(self) -> list[dict]:
        return [
            {
                "table": t.table,
                "warehouse table": t.warehouse_table,
                "method": t.method,
                "rows": t.rows,
                "seconds": round(t.seconds, 1),
                "bookmark": t.bookmark or "",
            }
            for t in self.tables
        ]


def open_state_store(settings: Settings) -> StateStore:
    if settings.state_store == "file":
        return FileStateStore(settings.state_file)
    return WarehouseStateStore(settings.warehouse, settings.state_schema)


def discover(settings: Settings, replication: ReplicationSettings, folder: connectors.ConfigFolder) -> dict:
    """Run tap-postgres in discovery mode and return its catalog."""
    config = folder.write_json(
        "tap-postgres-discover.json", connectors.tap_postgres_config(settings.source, replication.source_schema)
    )
    discover_stage = connectors.stage("tap-postgres", "--config", str(config), "--discover")
    try:
        result = subprocess.run(
            discover_stage.argv,
            env=discover_stage.env,
            capture_output=True,
            timeout=DISCOVERY_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired as exc:
        raise PipelineError(
            f"tap-postgres discovery timed out after {DISCOVERY_TIMEOUT_SECONDS} s", transient=True
        ) from exc
    if result.returncode != 0:
        stderr = secret_redactor(settings)(result.stderr.decode("utf-8", "replace"))
        tail = "\n    ".join(stderr.strip().splitlines()[-15:])
        raise PipelineError(
            f"tap-postgres discovery exited with code {result.returncode}; last stderr lines:\n    {tail}",
            transient=looks_transient(tail),
        )
    return json.loads(result.stdout)


def secret_redactor(settings: Settings) -> Redactor:
    """Return a Redactor for every password and key in the settings."""
    secrets = [settings.source.password, settings.warehouse.password]
    if settings.s3:
        secrets += [settings.s3.access_key_id, settings.s3.secret_access_key, settings.s3.session_token]
    return Redactor([s for s in secrets if s])


def full_refresh(
    settings: Settings,
    store: StateStore,
    tables: list[str],
    source_schema: str = "public",
    dry_run: bool = False,
    logger: logging.Logger = log,
) -> list[str]:
    """Forget the bookmarks of ``tables`` and empty their warehouse tables.

    The next sync then copies every row again, and rows deleted in the source
    disappear from the warehouse. Returns a line per action; with ``dry_run``
    nothing is changed and the lines describe what would change.
    """
    actions = []
    state = store.load(PIPELINE)
    streams = [stream_name(source_schema, t) for t in tables]
    new_state, removed = reset_streams(state, streams)
    for stream in streams:
        if stream in removed:
            actions.append(f"remove the bookmark of {stream}: {json.dumps(state['bookmarks'][stream])}")
        else:
            actions.append(f"{stream} has no bookmark")

    with psycopg.connect(**settings.warehouse.conninfo(), connect_timeout=30) as conn:
        for table in tables:
            name = warehouse_table_name(table)
            exists = conn.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                (settings.warehouse_schema, name),
            ).fetchone()
            if not exists:
                actions.append(f"{settings.warehouse_schema}.{name} does not exist yet")
                continue
            actions.append(f"empty {settings.warehouse_schema}.{name}")
            if not dry_run:
                conn.execute(sql.SQL("TRUNCATE TABLE {}").format(sql.Identifier(settings.warehouse_schema, name)))
        if not dry_run:
            conn.commit()

    if not dry_run:
        store.save(PIPELINE, new_state)
    prefix = "would " if dry_run else ""
    for action in actions:
        logger.info("full refresh: %s%s", prefix, action)
    return actions


def sync_production_db(
    settings: Settings,
    tables: list[str] | None = None,
    full_refresh_tables: bool = False,
    replication: ReplicationSettings | None = None,
    logger: logging.Logger = log,
) -> SyncReport:
    """Replicate the chosen tables (all listed in the settings by default).

    Writes one run-history row per table, whether the run succeeds or fails.
    """
    started_at = datetime.now(timezone.utc)
    replication = replication or load_replication_settings()
    chosen = select_tables(replication, tables)
    try:
        report = _sync(settings, replication, chosen, full_refresh_tables, logger)
    except Exception as exc:
        finished_at = datetime.now(timezone.utc)
        run_history.record(settings, [
            run_history.StreamRun(PIPELINE, table, 0, started_at, finished_at, "failed", str(exc))
            for table in chosen
        ], logger)
        raise
    finished_at = datetime.now(timezone.utc)
    run_history.record(settings, [
        run_history.StreamRun(PIPELINE, t.table, t.rows, started_at, finished_at, "succeeded")
        for t in report.tables
    ], logger)
    return report


def _sync(
    settings: Settings,
    replication: ReplicationSettings,
    chosen: list[str],
    full_refresh_tables: bool,
    logger: logging.Logger,
) -> SyncReport:
    started = time.monotonic()
    store = open_state_store(settings)
    try:
        reset = []
        if full_refresh_tables:
            full_refresh(settings, store, chosen, replication.source_schema, logger=logger)
            reset = chosen

        with connectors.ConfigFolder() as folder:
            plan = build_catalog(discover(settings, replication, folder), replication, chosen)
            _log_plan(plan, logger)
            state = store.load(PIPELINE)
            resumed = {t for t in chosen if stream_name(replication.source_schema, t) in state["bookmarks"]}

            def save_state(new_state: dict) -> None:
                merged = dict(new_state)
                merged["bookmarks"] = {**state["bookmarks"], **(new_state.get("bookmarks") or {})}
                store.save(PIPELINE, merged)
                state["bookmarks"] = merged["bookmarks"]

            stages = _pipeline_stages(settings, plan, state, folder)
            result = run_pipeline(stages, save_state, logger, redact=secret_redactor(settings))

        report = _report(plan, result, state, resumed, time.monotonic() - started)
        report.reset_tables = reset
        _log_report(report, logger)
        return report
    finally:
        store.close()


def _pipeline_stages(settings: Settings, plan: CatalogPlan, state: dict, folder: connectors.ConfigFolder):
    tap_config = folder.write_json(
        "tap-postgres.json", connectors.tap_postgres_config(settings.source, plan.source_schema)
    )
    catalog = folder.write_json("catalog.json", plan.catalog)
    state_file = folder.write_json("state.json", state)
    stages = [
        connectors.stage(
            "tap-postgres", "--config", str(tap_config), "--properties", str(catalog), "--state", str(state_file)
        )
    ]
    transformations = plan.transformations()
    if transformations:
        transform_config = folder.write_json("transform-field.json", {"transformations": transformations})
        stages.append(connectors.stage("transform-field", "--config", str(transform_config)))
    stages.append(connectors.target_stage(settings, folder))
    return stages


def _log_plan(plan: CatalogPlan, logger: logging.Logger) -> None:
    for table in plan.tables:
        logger.info("%s: %s", table, plan.methods[table])
    if plan.excluded_columns:
        listed = ", ".join(f"{t}.{c}" for t, cols in plan.excluded_columns.items() for c in cols)
        logger.info("secret columns excluded from extraction: %s", listed)
    if plan.hashed_columns:
        listed = ", ".join(f"{t}.{c}" for t, cols in plan.hashed_columns.items() for c in cols)
        logger.info("personal-data columns hashed (SHA-256) on the way: %s", listed)


def _bookmark_text(bookmark: dict | None) -> str | None:
    if not bookmark:
        return None
    if "replication_key_value" in bookmark:
        return f"{bookmark.get('replication_key')} = {bookmark['replication_key_value']}"
    return None


def _report(plan: CatalogPlan, result, state: dict, resumed: set[str], seconds: float) -> SyncReport:
    summaries = []
    for table in plan.tables:
        stream = stream_name(plan.source_schema, table)
        progress = result.streams.get(stream)
        summaries.append(
            TableSummary(
                table=table,
                warehouse_table=warehouse_table_name(table),
                method=plan.methods[table],
                rows=progress.rows_extracted if progress else 0,
                seconds=progress.seconds if progress else 0.0,
                bookmark=_bookmark_text(state["bookmarks"].get(stream)),
                resumed=table in resumed and plan.methods[table] == "INCREMENTAL",
            )
        )
    return SyncReport(
        tables=summaries,
        seconds=seconds,
        excluded_columns=plan.excluded_columns,
        hashed_columns=plan.hashed_columns,
    )


def format_table(rows: list[dict]) -> str:
    """Render rows of equal keys as a plain-text table."""
    if not rows:
        return "(no rows)"
    headers = list(rows[0])
    cells = [[str(r[h]) for h in headers] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(r[h], (int, float)) for r in rows) for h in headers]

    def line(values):
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(c) for c in cells)])


def _log_report(report: SyncReport, logger: logging.Logger) -> None:
    for t in report.tables:
        logger.info(
            "%s: %s rows, %.1f s, %s, bookmark %s", t.table, f"{t.rows:,}", t.seconds, t.method, t.bookmark or "-"
        )
    logger.info("production database sync: %s", report.headline())
