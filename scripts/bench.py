"""Benchmark the production-database sync and the Segment load against plain COPY baselines.

Runs in one process, on one machine, against a PostgreSQL server of its own
under .sandbox/bench (the sandbox itself is left alone):

  (a) baseline: ``COPY "ProgramUpdates" TO STDOUT`` piped into ``COPY ... FROM
      STDIN`` between the same two databases, by two psql processes;
  (b) a full sync of ProgramUpdates through the product;
  (c) an incremental sync after 1% of the rows changed;
  (d) an incremental sync with nothing changed.

and, for the Segment archive (``--segment-events``, default 1,000,000 events
of one source, generated once under .sandbox/bench):

  (e) baseline: decompress every archive file and COPY its raw lines into one
      jsonb column;
  (f) the product: tap-segment | target-postgres into the source's schema.

Prints rows per second and each time as a ratio to its baseline, and writes
the tables with the machine's description into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from warehouse_sync import production, sandbox_data, segment, segment_archive  # noqa: E402
from warehouse_sync.config import SegmentArchive, Settings  # noqa: E402
from warehouse_sync.pgserver import PostgresServer  # noqa: E402
from warehouse_sync.runner import exit_on_sigterm  # noqa: E402

RESULTS_FILE = PROJECT_ROOT / "docs" / "benchmarks.md"
SECTION_MARKERS = {
    "production-db": ("<!-- production-db benchmark: start -->", "<!-- production-db benchmark: end -->"),
    "segment": ("<!-- segment benchmark: start -->", "<!-- segment benchmark: end -->"),
}
TABLE = "ProgramUpdates"
SOURCE_DB = "bench_production"
WAREHOUSE_DB = "bench_warehouse"

log = logging.getLogger("bench")


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        memory = f", {kib / 1024 / 1024:.0f} GiB memory"
    except (OSError, AttributeError):
        pass
    load = "load average {:.1f}, {:.1f}, {:.1f} at the end".format(*os.getloadavg())
    return (
        f"{cpu}, {os.cpu_count()} cores{memory}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; {load}"
    )


def prepare(server: PostgresServer, scale: float) -> dict:
    server.start()
    if not _exists(server, SOURCE_DB):
        server.create_database(SOURCE_DB)
        started = time.monotonic()
        with server.connect(SOURCE_DB) as conn:
            sandbox_data.create_schema(conn)
            counts = sandbox_data.populate(conn, scale=scale)
        log.info("filled %s in %.0f s: %s", SOURCE_DB, time.monotonic() - started, counts)
    server.drop_database(WAREHOUSE_DB)
    server.create_database(WAREHOUSE_DB)
    with server.connect(SOURCE_DB) as conn:
        rows = conn.execute(f'SELECT count(*) FROM "{TABLE}"').fetchone()[0]
    return {"rows": rows}


def _exists(server: PostgresServer, name: str) -> bool:
    with server.connect() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def copy_pipe_baseline(server: PostgresServer) -> float:
    """Time COPY TO STDOUT | COPY FROM STDIN of the whole table into an empty copy of the product's table."""
    with server.connect(WAREHOUSE_DB, autocommit=True) as conn:
        conn.execute("DROP SCHEMA IF EXISTS baseline CASCADE")
        conn.execute("CREATE SCHEMA baseline")
        conn.execute("CREATE TABLE baseline.programupdates (LIKE pulumi.programupdates INCLUDING ALL)")
        columns = [
            row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns"
                " WHERE table_schema = 'pulumi' AND table_name = 'programupdates' ORDER BY ordinal_position"
            )
        ]
    with server.connect(SOURCE_DB) as conn:
        source_columns = {
            row[0].lower(): row[0]
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (TABLE,)
            )
        }
    select = ", ".join(f'"{source_columns[c]}"' for c in columns)
    env = {**os.environ, "PGPASSWORD": server.password, "PGTZ": "UTC"}
    psql = ["psql", "-X", "-q", "-h", "127.0.0.1", "-p", str(server.port), "-U", "postgres", "-v", "ON_ERROR_STOP=1"]

    started = time.monotonic()
    reader = subprocess.Popen(
        psql + [SOURCE_DB, "-c", f'COPY (SELECT {select} FROM "{TABLE}") TO STDOUT'],
        stdout=subprocess.PIPE,
        env=env,
    )
    writer = subprocess.Popen(
        psql + [WAREHOUSE_DB, "-c", f"COPY baseline.programupdates ({', '.join(columns)}) FROM STDIN"],
        stdin=reader.stdout,
        env=env,
    )
    reader.stdout.close()
    if writer.wait() != 0 or reader.wait() != 0:
        raise RuntimeError("the COPY pipe baseline failed; see the psql errors above")
    return time.monotonic() - started


def change_rows(server: PostgresServer, fraction: float) -> int:
    with server.connect(SOURCE_DB) as conn:
        changed = conn.execute(
            f'UPDATE "{TABLE}" SET "lastModified" = (SELECT max("lastModified") FROM "{TABLE}")'
            f' + interval \'1 second\' * (id %% 3600 + 1), "pinned" = NOT "pinned" WHERE id %% %s = 0',
            (round(1 / fraction),),
        ).rowcount
        conn.commit()
    return changed


def timed_sync(settings: Settings, full_refresh: bool) -> tuple[float, int]:
    started = time.monotonic()
    report = production.sync_production_db(
        settings, tables=[TABLE], full_refresh_tables=full_refresh, logger=logging.getLogger("sync")
    )
    return time.monotonic() - started, report.rows


def write_results(section_name: str, markdown: str) -> None:
    start, end = SECTION_MARKERS[section_name]
    text = RESULTS_FILE.read_text() if RESULTS_FILE.exists() else "# Benchmarks\n"
    section = f"{start}\n{markdown}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), lambda m: section, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    RESULTS_FILE.write_text(text)


def segment_archive_root(events: int) -> tuple[Path, dict]:
    root = PROJECT_ROOT / ".sandbox" / "bench" / f"segment-{events}"
    marker = root / "generated.json"
    if not marker.exists():
        started = time.monotonic()
        summary = segment_archive.generate_large(root, events)
        marker.write_text(json.dumps(summary))
        log.info("generated %s Segment events in %.0f s", f"{events:,}", time.monotonic() - started)
    return root, json.loads(marker.read_text())


def raw_lines_baseline(server: PostgresServer, root: Path) -> tuple[float, int]:
    """Time decompressing every archive file and COPYing its lines into one jsonb column."""
    with server.connect(WAREHOUSE_DB, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS baseline.segment_raw")
        conn.execute("CREATE SCHEMA IF NOT EXISTS baseline")
        conn.execute("CREATE TABLE baseline.segment_raw (line jsonb)")
    files = sorted((root / "segment-logs").rglob("*.gz"))
    lines = 0
    started = time.monotonic()
    with server.connect(WAREHOUSE_DB) as conn:
        with conn.cursor().copy("COPY baseline.segment_raw (line) FROM STDIN") as copy:
            for path in files:
                for line in gzip.decompress(path.read_bytes()).splitlines():
                    if line:
                        copy.write_row((line.decode("utf-8"),))
                        lines += 1
        conn.commit()
    return time.monotonic() - started, lines


def segment_benchmark(server: PostgresServer, settings: Settings, events: int) -> str:
    root, generated = segment_archive_root(events)
    log.info("(e) baseline: raw lines of %s events into one jsonb column", f"{generated['events']:,}")
    baseline_seconds, lines = raw_lines_baseline(server, root)
    log.info("(e) took %.1f s", baseline_seconds)

    source = segment.SegmentSource(name="bench", source_id=generated["source_id"], schema=generated["schema"])
    with server.connect(WAREHOUSE_DB, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{source.schema}" CASCADE')
    sources = segment.SegmentSettings(sources=(source,), tap_options={})
    archive_settings = replace(settings, segment=SegmentArchive(local_path=root))
    log.info("(f) product: tap-segment piped into target-postgres")
    started = time.monotonic()
    report = segment.sync_source(archive_settings, source, sources, logger=logging.getLogger("sync"))
    product_seconds = time.monotonic() - started
    log.info("(f) took %.1f s", product_seconds)

    rows = [
        ("(e) baseline: gunzip, COPY raw lines into one jsonb column", lines, baseline_seconds),
        ("(f) tap-segment piped into target-postgres, Segment layout", report.events, product_seconds),
    ]
    table = [
        f"Segment archive: {generated['events']:,} events of one source in {generated['files']} gzip files,",
        f"measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by `make bench` (scripts/bench.py) on:",
        f"{machine_description()}. The warehouse is PostgreSQL 15 on the same machine.",
        "",
        "| case | events | seconds | events/s | time / baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, count, seconds in rows:
        table.append(f"| {name} | {count:,} | {seconds:.1f} | {count / seconds:,.0f} | {seconds / baseline_seconds:.1f}x |")
    return "\n".join(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=200,
                        help="sandbox scale; 200 gives 1,000,000 ProgramUpdates rows (default 200)")
    parser.add_argument("--segment-events", type=int, default=1_000_000,
                        help="events in the Segment benchmark archive; 0 skips that benchmark (default 1,000,000)")
    parser.add_argument("--only", choices=["production-db", "segment"], help="run one of the two benchmarks")
    parser.add_argument("--no-record", action="store_true", help="print the results only; leave docs/benchmarks.md")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("sync").setLevel(logging.WARNING)
    exit_on_sigterm()

    server = PostgresServer(PROJECT_ROOT / ".sandbox" / "bench")
    rows = prepare(server, args.scale)["rows"]
    settings = Settings(
        source=server.settings(SOURCE_DB),
        warehouse=server.settings(WAREHOUSE_DB),
        warehouse_type="postgres",
        state_store="warehouse",
    )

    if args.only in (None, "production-db"):
        markdown = production_benchmark(server, settings, rows, args.scale)
        print("\n" + markdown)
        if not args.no_record:
            write_results("production-db", markdown)
    if args.only in (None, "segment") and args.segment_events > 0:
        markdown = segment_benchmark(server, settings, args.segment_events)
        print("\n" + markdown)
        if not args.no_record:
            write_results("segment", markdown)
    if not args.no_record:
        print(f"\nrecorded in {RESULTS_FILE.relative_to(PROJECT_ROOT)}")


def production_benchmark(server: PostgresServer, settings: Settings, rows: int, scale: float) -> str:
    log.info("(b) full sync of %s rows through the product", f"{rows:,}")
    full_seconds, full_rows = timed_sync(settings, full_refresh=True)
    log.info("(b) took %.1f s", full_seconds)
    log.info("(a) baseline: COPY pipe of the same table")
    baseline_seconds = copy_pipe_baseline(server)
    log.info("(a) took %.1f s", baseline_seconds)
    changed = change_rows(server, 0.01)
    log.info("(c) incremental sync after changing %s rows", f"{changed:,}")
    incremental_seconds, incremental_rows = timed_sync(settings, full_refresh=False)
    log.info("(c) took %.1f s", incremental_seconds)
    log.info("(d) incremental sync with nothing changed")
    idle_seconds, idle_rows = timed_sync(settings, full_refresh=False)
    log.info("(d) took %.1f s", idle_seconds)

    cases = [
        ("(a) baseline: COPY TO STDOUT piped into COPY FROM STDIN", rows, baseline_seconds),
        ("(b) full sync through the product", full_rows, full_seconds),
        (f"(c) incremental sync, {changed:,} rows changed (1%)", incremental_rows, incremental_seconds),
        ("(d) incremental sync, nothing changed", idle_rows, idle_seconds),
    ]
    lines = [
        f"Production database, table `{TABLE}` ({rows:,} rows), measured {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"by `make bench` (scripts/bench.py, scale {scale:g}) on: {machine_description()}.",
        "Source and warehouse are two databases of one local PostgreSQL 15 server; target-postgres",
        "stands in for Redshift, so these figures say nothing about Redshift's COPY from S3.",
        "",
        "| case | rows sent | seconds | rows/s | time / baseline |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, count, seconds in cases:
        rate = count / seconds if seconds else 0
        lines.append(f"| {name} | {count:,} | {seconds:.1f} | {rate:,.0f} | {seconds / baseline_seconds:.1f}x |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
