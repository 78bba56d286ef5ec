"""Command lines, environments and config files for the Singer connectors.

Each connector runs from its own virtualenv under ``.venvs/`` through
``connectors/launch.py``. Config files contain passwords, so they are written
0600 into a private temporary folder that is removed when the run ends.
Command lines carry only those files' paths.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from warehouse_sync.config import DatabaseSettings, Settings
from warehouse_sync.errors import ConfigError
from warehouse_sync.runner import Stage

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENVS_DIR = Path(os.environ.get("CONNECTOR_VENVS", PROJECT_ROOT / ".venvs"))
LAUNCHER = PROJECT_ROOT / "connectors" / "launch.py"
TARGET_BATCH_SIZE_ROWS = 100_000
# Redshift's COPY options for target-redshift. The package's default adds
# EMPTYASNULL, BLANKSASNULL, TRIMBLANKS and TRUNCATECOLUMNS, which turn empty
# strings into NULL, trim trailing blanks and cut long values without an error.
REDSHIFT_COPY_OPTIONS = "TIMEFORMAT 'auto' COMPUPDATE OFF STATUPDATE OFF"
# Environment variables passed on to connector processes; nothing else is.
PASSED_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


def connector_python(name: str) -> Path:
    python = VENVS_DIR / name / "bin" / "python"
    if not python.exists():
        raise ConfigError(f"the {name} virtualenv is missing at {python.parent.parent}; run `make setup`")
    return python


def connector_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENVIRONMENT if k in os.environ}
    env.update(PYTHONUNBUFFERED="1", TZ="UTC", SINGER_METRIC_INTERVAL=os.environ.get("SINGER_METRIC_INTERVAL", "10"))
    env.update(extra or {})
    return env


def stage(name: str, *args: str, env: dict[str, str] | None = None) -> Stage:
    """Return a Stage that runs connector ``name`` with ``args`` through the launcher."""
    return Stage(name=name, argv=[str(connector_python(name)), str(LAUNCHER), name, *args], env=connector_env(env))


class ConfigFolder:
    """A private temporary folder for connector files, removed on exit."""

    def __init__(self):
        self.path: Path | None = None

    def __enter__(self) -> "ConfigFolder":
        self.path = Path(tempfile.mkdtemp(prefix="warehouse-sync-"))
        os.chmod(self.path, 0o700)
        return self

    def __exit__(self, *exc_info) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def write_json(self, name: str, document: dict) -> Path:
        """Write ``document`` to a new file readable by this user only."""
        path = self.path / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(document, out)
        return path


def tap_postgres_config(source: DatabaseSettings, schema: str) -> dict:
    return {
        "host": source.host,
        "port": source.port,
        "user": source.user,
        "password": source.password,
        "dbname": source.dbname,
        "filter_schemas": schema,
        "ssl": "true" if source.sslmode in ("require", "verify-ca", "verify-full") else "false",
        "default_replication_method": "FULL_TABLE",
        "break_at_end_lsn": True,
        "tap_id": "production",
    }


def target_stage(settings: Settings, folder: ConfigFolder, schema: str | None = None) -> Stage:
    """Return the target stage for the configured warehouse type, loading into ``schema``.

    ``schema`` defaults to the warehouse schema of the production tables.
    """
    warehouse = settings.warehouse
    common = {
        "host": warehouse.host,
        "port": warehouse.port,
        "user": warehouse.user,
        "password": warehouse.password,
        "dbname": warehouse.dbname,
        "default_target_schema": schema or settings.warehouse_schema,
        "batch_size_rows": TARGET_BATCH_SIZE_ROWS,
        "primary_key_required": True,
        "validate_records": False,
        "flush_all_streams": False,
    }
    if settings.warehouse_type == "postgres":
        config = folder.write_json(f"target-postgres-{common['default_target_schema']}.json", common)
        return stage("target-postgres", "--config", str(config))

    s3 = settings.s3
    redshift = {
        **common,
        "s3_bucket": s3.bucket,
        "s3_key_prefix": s3.key_prefix,
        "copy_options": REDSHIFT_COPY_OPTIONS,
    }
    if s3.iam_role_arn:
        redshift["aws_redshift_copy_role_arn"] = s3.iam_role_arn
    if s3.access_key_id:
        redshift.update(
            aws_access_key_id=s3.access_key_id,
            aws_secret_access_key=s3.secret_access_key,
        )
        if s3.session_token:
            redshift["aws_session_token"] = s3.session_token
    extra_env = {}
    if s3.region:
        extra_env["AWS_DEFAULT_REGION"] = s3.region
    if s3.endpoint_url:
        # target-redshift has no endpoint setting; boto3 reads this variable.
        extra_env["AWS_ENDPOINT_URL_S3"] = s3.endpoint_url
    config = folder.write_json(f"target-redshift-{common['default_target_schema']}.json", redshift)
    return stage("target-redshift", "--config", str(config), env=extra_env)
