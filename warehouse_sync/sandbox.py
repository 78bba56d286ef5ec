"""The embedded default: a local PostgreSQL with a "production" and a "warehouse" database.

With no configuration, every command runs against this sandbox, kept under
``.sandbox/`` in the project (git-ignored). The production database is
filled once with synthetic, deterministic data (``warehouse_sync.sandbox_data``)
at the scale set by ``SANDBOX_SCALE`` (default 1).
"""

from __future__ import annotations

import fcntl
import logging
import os
from contextlib import contextmanager
from pathlib import Path

from warehouse_sync import sandbox_data, segment_archive
from warehouse_sync.config import SegmentArchive, Settings
from warehouse_sync.errors import ConfigError
from warehouse_sync.pgserver import PostgresServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DB = "production"
WAREHOUSE_DB = "warehouse"

log = logging.getLogger(__name__)


def sandbox_dir() -> Path:
    return Path(os.environ.get("SANDBOX_DIR") or PROJECT_ROOT / ".sandbox")


def server() -> PostgresServer:
    return PostgresServer(sandbox_dir() / "postgres")


def sandbox_scale() -> float:
    raw = os.environ.get("SANDBOX_SCALE", "1")
    try:
        scale = float(raw)
    except ValueError:
        raise ConfigError(f"SANDBOX_SCALE={raw!r} is not a number; use for example 1 or 0.5") from None
    if scale <= 0:
        raise ConfigError(f"SANDBOX_SCALE={raw!r} must be greater than 0")
    return scale


def archive_dir() -> Path:
    return sandbox_dir() / "segment-archive"


def sandbox_settings(pg: PostgresServer) -> Settings:
    return Settings(
        source=pg.settings(SOURCE_DB),
        warehouse=pg.settings(WAREHOUSE_DB),
        warehouse_type="postgres",
        state_store="warehouse",
        segment=SegmentArchive(local_path=archive_dir()),
        is_sandbox=True,
    )


def ensure_segment_archive(logger: logging.Logger = log) -> Path:
    """Generate the synthetic Segment archive on first use and return its folder."""
    root = archive_dir()
    if not (root / "segment-logs").exists():
        logger.info("generating the sandbox Segment archive in %s", root)
        generated = segment_archive.generate_archive(root)
        files = sum(len(s["files"]) for s in generated["sources"].values())
        logger.info("sandbox Segment archive: %d files for %d sources", files, len(generated["sources"]))
    return root


def sandbox_segment_settings():
    """Return the Segment settings with the sandbox archive's generated source ids."""
    from warehouse_sync.segment import SegmentSettings, SegmentSource, load_segment_settings

    options = load_segment_settings().tap_options
    sources = tuple(
        SegmentSource(name=s.name, source_id=s.source_id, schema=s.schema_name) for s in segment_archive.SOURCES
    )
    return SegmentSettings(sources=sources, tap_options=options)


@contextmanager
def _sandbox_lock():
    """Hold an exclusive lock on the sandbox folder.

    The nightly flow's two loads each ask for the sandbox at the same moment,
    and two initdb or pg_ctl runs on one folder break each other.
    """
    folder = sandbox_dir()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def ensure_sandbox(logger: logging.Logger = log) -> Settings:
    """Start the sandbox server, creating and filling its databases on first use."""
    with _sandbox_lock():
        return _ensure_sandbox(logger)


def _ensure_sandbox(logger: logging.Logger) -> Settings:
    pg = server()
    first_start = not pg.is_initialized()
    if not pg.is_running():
        logger.info("starting the sandbox PostgreSQL server in %s", pg.base_dir)
    pg.start()
    pg.create_database(WAREHOUSE_DB)
    pg.create_database(SOURCE_DB)
    with pg.connect(SOURCE_DB) as conn:
        filled = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()[0]
    if not filled:
        scale = sandbox_scale()
        logger.info("filling the sandbox production database (scale %s)", scale)
        with pg.connect(SOURCE_DB) as conn:
            sandbox_data.create_schema(conn)
            counts = sandbox_data.populate(conn, scale=scale)
        logger.info("sandbox production rows: %s", ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    elif first_start:
        logger.info("using the existing sandbox production database")
    ensure_segment_archive(logger)
    return sandbox_settings(pg)


def change_production(logger: logging.Logger = log) -> dict:
    """Insert and update rows in the sandbox production database, as a day of use would."""
    ensure_sandbox(logger)
    counter = sandbox_dir() / "changes"
    seed = int(counter.read_text()) + 1 if counter.exists() else 1
    with server().connect(SOURCE_DB) as conn:
        changes = sandbox_data.apply_changes(conn, seed=seed)
    counter.write_text(str(seed))
    return changes


def add_segment_hour(logger: logging.Logger = log) -> list[Path]:
    """Add one new hour of archive files for every Segment source."""
    root = ensure_segment_archive(logger)
    return segment_archive.add_hour(root)


def current_settings(logger: logging.Logger = log) -> Settings:
    """Return the configured settings, or the sandbox's when nothing is configured.

    Raises ConfigError listing every missing or invalid setting when some but
    not all are given.
    """
    from warehouse_sync.config import is_configured, load_settings, read_environment, resolve_secret_blocks

    env = read_environment(PROJECT_ROOT / ".env")
    if not is_configured(env):
        return ensure_sandbox(logger)
    return load_settings(resolve_secret_blocks(env))


def current_segment_settings(settings: Settings):
    """Return the Segment sources: the sandbox's generated ones, or taps/segment.yaml."""
    from warehouse_sync.segment import load_segment_settings

    return sandbox_segment_settings() if settings.is_sandbox else load_segment_settings()
