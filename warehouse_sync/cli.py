"""Command line: ``python -m warehouse_sync COMMAND`` (the Makefile's targets call it).

With no configuration every command uses the local sandbox; see
docs/configuration.md for the settings that point it at production.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys

from warehouse_sync import production, sandbox
from warehouse_sync.errors import ConfigError, PipelineError
from warehouse_sync.replication import load_replication_settings, select_tables, stream_name
from warehouse_sync.runner import exit_on_sigterm

log = logging.getLogger("warehouse_sync")


def _table_list(raw: str | None) -> list[str] | None:
    if not raw:
        return None
    return [name.strip() for name in raw.split(",") if name.strip()]


def _check_before_prefect(tables: list[str] | None, sources: list[str] | None) -> None:
    """Raise ConfigError for unknown tables or invalid settings before a Prefect server starts."""
    from warehouse_sync import config, segment

    select_tables(load_replication_settings(), tables)
    env = config.read_environment(sandbox.PROJECT_ROOT / ".env")
    if config.is_configured(env):
        config.load_settings(config.resolve_secret_blocks(env))
        if sources:
            segment.select_sources(segment.load_segment_settings(), sources)
    elif sources:
        segment.select_sources(sandbox.sandbox_segment_settings(), sources)


def cmd_sync(args) -> int:
    tables = _table_list(args.tables)
    sources = _table_list(args.sources)
    if args.dry_run:
        return cmd_discover(args)
    _check_before_prefect(tables, sources)
    if args.without_prefect:
        return _sync_without_prefect(tables, sources, args)
    if args.only == "production":
        from flows.sync_production_db import sync_production_db

        _print_production(sync_production_db(tables=tables, full_refresh=args.full_refresh))
    elif args.only == "segment":
        from flows.sync_segment import sync_segment

        _print_segment(sync_segment(sources=sources))
    else:
        from flows.warehouse_sync import warehouse_sync

        result = warehouse_sync(tables=tables, full_refresh=args.full_refresh, sources=sources)
        _print_production(result["parts"]["production database"])
        _print_segment(result["parts"]["segment archive"])
        if result["metabase_summary"]:
            print(result["metabase_summary"])
        print(f"\nMetabase: {result['metabase']}")
    return 0


def _sync_without_prefect(tables, sources, args) -> int:
    from warehouse_sync import segment

    settings = sandbox.current_settings(log)
    if args.only in (None, "production"):
        report = production.sync_production_db(settings, tables=tables, full_refresh_tables=args.full_refresh)
        _print_production({"tables": report.rows_for_table(), "headline": report.headline()})
    if args.only in (None, "segment"):
        chosen = sandbox.current_segment_settings(settings)
        reports = [
            segment.sync_source(settings, source, chosen) for source in segment.select_sources(chosen, sources)
        ]
        _print_segment({
            "tables": segment.summary_rows(reports),
            "events": sum(r.events for r in reports),
            "rejects": sum(r.rejects for r in reports),
        })
    return 0


def _print_production(result: dict) -> None:
    print()
    print(production.format_table(result["tables"]))
    print(f"\nproduction database sync: {result['headline']}\n")


def _print_segment(result: dict) -> None:
    print()
    print(production.format_table(result["tables"]))
    print(f"\nSegment sync: {result['events']:,} events loaded, {result['rejects']:,} lines rejected\n")


def cmd_discover(args) -> int:
    """Print which tables and columns a sync would read, without loading anything."""
    from warehouse_sync import connectors
    from warehouse_sync.replication import build_catalog

    settings = sandbox.current_settings(log)
    replication = load_replication_settings()
    tables = _table_list(getattr(args, "tables", None))
    with connectors.ConfigFolder() as folder:
        plan = build_catalog(production.discover(settings, replication, folder), replication, tables)
    store = production.open_state_store(settings)
    try:
        state = store.load(production.PIPELINE)
    finally:
        store.close()
    rows = []
    for table in plan.tables:
        stream = next(s for s in plan.catalog["streams"] if s["table_name"] == table)
        bookmark = state["bookmarks"].get(stream_name(plan.source_schema, table), {})
        rows.append({
            "table": table,
            "method": plan.methods[table],
            "columns": len(stream["schema"]["properties"]),
            "excluded (secret)": ", ".join(plan.excluded_columns.get(table, [])) or "-",
            "hashed": ", ".join(plan.hashed_columns.get(table, [])) or "-",
            "bookmark": str(bookmark.get("replication_key_value", "-")),
        })
    print(production.format_table(rows))
    print("\nnothing was loaded (dry run)")
    return 0


def cmd_bookmarks(args) -> int:
    settings = sandbox.current_settings(log)
    store = production.open_state_store(settings)
    try:
        state = store.load(production.PIPELINE)
        bookmarks = state.get("bookmarks", {})
        if args.action == "list":
            rows = [
                {
                    "table": stream.split("-", 1)[-1],
                    "stream": stream,
                    "method": b.get("last_replication_method", "-"),
                    "bookmark": f"{b['replication_key']} = {b['replication_key_value']}"
                    if "replication_key_value" in b else "-",
                }
                for stream, b in sorted(bookmarks.items())
            ]
            print(production.format_table(rows) if rows else "no bookmarks saved yet")
            return 0
        replication = load_replication_settings()
        if args.action == "show":
            tables = select_tables(replication, _table_list(args.tables))
            requested = {
                stream_name(replication.source_schema, t): bookmarks.get(stream_name(replication.source_schema, t))
                for t in tables
            }
            print(json.dumps(requested, indent=2, sort_keys=True))
            return 0
        if not args.tables:
            raise ConfigError("bookmarks reset needs --tables (for example --tables Users,Stacks)")
        tables = select_tables(replication, _table_list(args.tables))
        quiet = logging.getLogger("warehouse_sync.quiet")
        quiet.setLevel(logging.WARNING)
        actions = production.full_refresh(
            settings, store, tables, replication.source_schema, dry_run=args.dry_run, logger=quiet
        )
        prefix = "would " if args.dry_run else ""
        for action in actions:
            print(f"{prefix}{action}")
        return 0
    finally:
        store.close()


def cmd_sandbox(args) -> int:
    if args.action == "start":
        settings = sandbox.ensure_sandbox(log)
        print(f"sandbox PostgreSQL on 127.0.0.1:{settings.source.port} "
              f"(databases {sandbox.SOURCE_DB}, {sandbox.WAREHOUSE_DB})")
    elif args.action == "change":
        changes = sandbox.change_production(log)
        rows = [{"table": t, "inserted": c["inserted"], "updated": c["updated"]} for t, c in changes.items()]
        print(production.format_table(rows))
        files = sandbox.add_segment_hour(log)
        print(f"\nadded {len(files)} Segment archive files (one new hour for every source)")
        print("\nrun `make sync` to load these changes")
    elif args.action == "stop":
        server = sandbox.server()
        if not server.is_running():
            print("the sandbox PostgreSQL server is not running")
            return 0
        server.stop()
        print("sandbox PostgreSQL stopped")
    elif args.action == "clean":
        sandbox.server().remove()
        print(f"removed {sandbox.sandbox_dir() / 'postgres'}")
    return 0


def cmd_warehouse_sql(args) -> int:
    settings = sandbox.ensure_sandbox(log)
    warehouse = settings.warehouse
    env = {**os.environ, "PGPASSWORD": warehouse.password}
    argv = ["psql", "-h", warehouse.host, "-p", str(warehouse.port), "-U", warehouse.user, warehouse.dbname]
    if args.sql:
        argv += ["-v", "ON_ERROR_STOP=1", "-c", args.sql]
    return subprocess.call(argv, env=env)


def cmd_secret_blocks(args) -> int:
    """Create a Prefect Secret block for each secret set in the .env file."""
    from dotenv import dotenv_values

    from warehouse_sync.config import SECRET_NAMES

    values = {k: v for k, v in dotenv_values(args.env_file).items() if k in SECRET_NAMES and v}
    if not values:
        raise ConfigError(f"{args.env_file} sets none of {', '.join(SECRET_NAMES)}; nothing to create")
    if not args.dry_run:
        from prefect.blocks.system import Secret
    for name, value in sorted(values.items()):
        block = name.lower().replace("_", "-")
        if args.dry_run:
            print(f"would create Secret block {block!r} from {name}")
        else:
            Secret(value=value).save(block, overwrite=True)
            print(f"created Secret block {block!r} from {name}")
    print("\nOn the worker, set these instead of the secrets themselves:")
    for name in sorted(values):
        print(f"{name}_BLOCK={name.lower().replace('_', '-')}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m warehouse_sync",
        description="Replicate the production database and Segment's event archive into the warehouse, "
        "then refresh Metabase. With no configuration "
        "(see docs/configuration.md) every command uses the local sandbox under .sandbox/.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="replicate the production database and load the Segment archive")
    sync.add_argument("--tables", help="comma-separated source tables (default: all in taps/production.yaml)")
    sync.add_argument("--sources", help="comma-separated Segment sources, by name or schema (default: all)")
    sync.add_argument("--only", choices=["production", "segment"],
                      help="run only the production-database sync or only the Segment load")
    sync.add_argument("--full-refresh", action="store_true",
                      help="forget the tables' bookmarks and empty their warehouse tables before loading")
    sync.add_argument("--dry-run", action="store_true",
                      help="print the tables, columns and bookmarks a sync would use, and load nothing")
    sync.add_argument("--without-prefect", action="store_true",
                      help="call the sync directly instead of as a Prefect flow run")
    sync.set_defaults(func=cmd_sync)

    discover = commands.add_parser("discover", help="print the catalog plan: tables, methods, excluded columns")
    discover.add_argument("--tables", help="comma-separated source tables")
    discover.set_defaults(func=cmd_discover)

    bookmarks = commands.add_parser("bookmarks", help="list, show or reset the saved bookmarks")
    bookmarks.add_argument("action", choices=["list", "show", "reset"])
    bookmarks.add_argument("--tables", help="comma-separated source tables (show: default all; reset: required)")
    bookmarks.add_argument("--dry-run", action="store_true", help="reset: print what would change, change nothing")
    bookmarks.set_defaults(func=cmd_bookmarks)

    box = commands.add_parser("sandbox", help="manage the local sandbox PostgreSQL server")
    box.add_argument("action", choices=["start", "change", "stop", "clean"],
                     help="change: insert and update production rows and add an hour of Segment files")
    box.set_defaults(func=cmd_sandbox)

    blocks = commands.add_parser("secret-blocks",
                                 help="create Prefect Secret blocks from the secrets in a .env file")
    blocks.add_argument("--env-file", default=".env", help="the file to read (default: .env)")
    blocks.add_argument("--dry-run", action="store_true", help="print the blocks that would be created")
    blocks.set_defaults(func=cmd_secret_blocks)

    sql_parser = commands.add_parser("warehouse-sql", help="run one statement on the sandbox warehouse, or open psql")
    sql_parser.add_argument("--sql", help="the statement; without it psql opens interactively")
    sql_parser.set_defaults(func=cmd_warehouse_sql)
    return parser


def use_local_prefect_defaults() -> None:
    """Prepare Prefect's temporary local server when no Prefect API is configured.

    The first start creates its SQLite database, which takes longer than
    Prefect's default 20-second start-up limit on a small machine.
    """
    if os.environ.get("PREFECT_API_URL"):
        return
    if "PREFECT_HOME" not in os.environ:
        home = sandbox.sandbox_dir() / "prefect"
        # Prefect creates its home folder but not missing parents.
        home.mkdir(parents=True, exist_ok=True)
        os.environ["PREFECT_HOME"] = str(home)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    use_local_prefect_defaults()
    exit_on_sigterm()
    try:
        sys.exit(args.func(args))
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)
    except PipelineError as exc:
        log.error("sync failed: %s", exc)
        sys.exit(1)
    except RuntimeError as exc:
        # A Prefect flow run that ended Failed raises its error here; the
        # run's log above has the details of each part.
        log.error("%s", exc)
        sys.exit(1)
