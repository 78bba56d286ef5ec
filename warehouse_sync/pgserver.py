"""A throwaway PostgreSQL server in a local folder, for the sandbox, tests and benchmarks.

PostgreSQL refuses to run as root. When this process is root, the server's
files are owned by, and its processes run as, an unprivileged account
(``postgres`` if the machine has one, else ``nobody``).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

from warehouse_sync.config import DatabaseSettings
from warehouse_sync.errors import ConfigError

SUPERUSER = "postgres"


def find_pg_bin() -> Path:
    """Return the folder with initdb and pg_ctl, preferring PATH."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    raise ConfigError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; install them, "
        "for example `apt-get install postgresql`, or put their folder on PATH"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_account() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ConfigError("running as root, and neither a 'postgres' nor a 'nobody' account exists to run PostgreSQL")


def _reachable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in [path, *path.parents] if p.exists())


class PostgresServer:
    """A PostgreSQL cluster under ``base_dir``, listening on 127.0.0.1 only.

    The superuser's password is generated at initdb time and kept in
    ``base_dir/password`` (mode 0600); connections need it.
    """

    def __init__(self, base_dir: str | os.PathLike):
        self.base_dir = Path(base_dir).resolve()
        self.account = _server_account()
        self.server_dir = self._server_dir()
        self.data_dir = self.server_dir / "data"
        self.log_file = self.server_dir / "server.log"
        self.port_file = self.base_dir / "port"
        self.password_file = self.base_dir / "password"

    def _server_dir(self) -> Path:
        """Return the folder for the cluster and its log, which the server account must reach."""
        if self.account is None or _reachable_by_others(self.base_dir.parent):
            return self.base_dir
        # The unprivileged account cannot reach a folder inside base_dir's
        # parent (for example pytest's 0700 temporary root). The cluster goes
        # to a per-folder place under the system temporary folder instead.
        digest = hashlib.sha1(str(self.base_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"warehouse-sync-pg-{digest}"

    @property
    def port(self) -> int:
        return int(self.port_file.read_text())

    @property
    def password(self) -> str:
        return self.password_file.read_text().strip()

    def settings(self, dbname: str) -> DatabaseSettings:
        return DatabaseSettings(
            host="127.0.0.1",
            port=self.port,
            dbname=dbname,
            user=SUPERUSER,
            password=self.password,
            sslmode="disable",
        )

    def _run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        if self.account is not None:
            kwargs.update(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        result = subprocess.run(argv, capture_output=True, text=True, **kwargs)
        if result.returncode != 0:
            raise RuntimeError(
                f"{Path(argv[0]).name} exited with code {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def _chown(self, path: Path) -> None:
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def is_initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists() and self.password_file.exists()

    def is_running(self) -> bool:
        if not self.port_file.exists() or not (self.data_dir / "postmaster.pid").exists():
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def initialize(self) -> None:
        bin_dir = find_pg_bin()
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.server_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.server_dir)
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)
        self.data_dir.mkdir(mode=0o700)
        self._chown(self.data_dir)

        password = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
        with tempfile.TemporaryDirectory() as scratch:
            pwfile = Path(scratch) / "pw"
            pwfile.write_text(password + "\n")
            os.chmod(scratch, 0o755)
            self._chown(pwfile)
            os.chmod(pwfile, 0o600)
            self._run([
                str(bin_dir / "initdb"), "-D", str(self.data_dir), "-U", SUPERUSER,
                "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8",
                "--locale=C", "--no-sync",
            ])

    def start(self) -> None:
        """Initialize the cluster if needed and start it; a running server is left as is."""
        if self.is_running():
            return
        if not self.is_initialized():
            self.initialize()
        bin_dir = find_pg_bin()
        if self.log_file.exists():
            self.log_file.unlink()
        self.log_file.touch()
        self._chown(self.log_file)
        for attempt in range(3):
            port = _free_port()
            self.port_file.write_text(str(port))
            options = (
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='{self.data_dir}'"
                " -c max_connections=60 -c shared_buffers=128MB"
            )
            try:
                self._run([
                    str(bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.log_file),
                    "-o", options, "-w", "-t", "60", "start",
                ])
                return
            except RuntimeError:
                if attempt == 2:
                    raise RuntimeError(
                        f"PostgreSQL did not start; see {self.log_file}:\n{self.log_file.read_text()[-2000:]}"
                    ) from None
                time.sleep(0.5)

    def stop(self) -> None:
        if not (self.data_dir / "postmaster.pid").exists():
            return
        self._run([str(find_pg_bin() / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "stop"])

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.server_dir, ignore_errors=True)
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def connect(self, dbname: str = "postgres", **kwargs) -> psycopg.Connection:
        return psycopg.connect(**self.settings(dbname).conninfo(), **kwargs)

    def create_database(self, name: str, exist_ok: bool = True) -> None:
        with self.connect(autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists and exist_ok:
                return
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop_database(self, name: str) -> None:
        with self.connect(autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
