"""Helpers for the tap-segment tests: running the tap, reading its output, a moto S3 server."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TAP_PACKAGE_DIR = PROJECT_ROOT / "taps" / "tap_segment"
VENVS_DIR = Path(os.environ.get("CONNECTOR_VENVS", PROJECT_ROOT / ".venvs"))
TAP_EXECUTABLE = VENVS_DIR / "tap-segment" / "bin" / "tap-segment"
MOTO_SERVER = Path(sys.executable).parent / "moto_server"
SUMMARY_PATTERN = re.compile(r"SEGMENT_SUMMARY (\{.*\})\s*$", re.MULTILINE)
TAP_TIMEOUT_SECONDS = 300

# Fake credentials for moto; boto3 must never look for real ones.
FAKE_AWS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region": "us-east-1"}


def import_tap_modules() -> None:
    """Make ``tap_segment`` importable; the modules used in unit tests need only the standard library."""
    if str(TAP_PACKAGE_DIR) not in sys.path:
        sys.path.insert(0, str(TAP_PACKAGE_DIR))


@dataclass
class TapRun:
    """The outcome of one tap process: exit code, parsed Singer messages and stderr."""

    returncode: int
    messages: list[dict]
    stderr: str
    records: dict[str, list[dict]] = field(default_factory=dict)
    schemas: dict[str, list[dict]] = field(default_factory=dict)
    states: list[dict] = field(default_factory=list)

    @property
    def final_state(self) -> dict:
        return self.states[-1] if self.states else {}

    @property
    def record_count(self) -> int:
        return sum(len(rows) for rows in self.records.values())

    def last_schema(self, stream: str) -> dict:
        return self.schemas[stream][-1]["schema"]["properties"]

    def summary(self) -> dict:
        found = SUMMARY_PATTERN.findall(self.stderr)
        assert found, f"no SEGMENT_SUMMARY line in stderr:\n{self.stderr[-3000:]}"
        return json.loads(found[-1])

    def counts(self) -> dict[str, int]:
        return {stream: len(rows) for stream, rows in self.records.items()}


def parse_messages(stdout: str) -> TapRun:
    messages = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    run = TapRun(returncode=0, messages=messages, stderr="")
    for message in messages:
        if message["type"] == "RECORD":
            run.records.setdefault(message["stream"], []).append(message["record"])
        elif message["type"] == "SCHEMA":
            run.schemas.setdefault(message["stream"], []).append(message)
        elif message["type"] == "STATE":
            run.states.append(message["value"])
    return run


def tap_env(home: Path) -> dict[str, str]:
    """Return an environment that keeps boto3 away from real credentials and metadata servers."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": str(home / "aws-config-absent"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials-absent"),
    }


def write_private_json(path: Path, document: dict) -> Path:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(document, out)
    return path


def run_tap(work_dir: Path, config: dict, state: dict | None = None, catalog: dict | None = None,
            extra_args: tuple[str, ...] = (), expect_success: bool = True) -> TapRun:
    """Run the tap from its virtualenv with ``config`` (and ``state``) and parse what it writes."""
    if not TAP_EXECUTABLE.exists():
        raise AssertionError(f"{TAP_EXECUTABLE} is missing; run `make setup` to build the tap's virtualenv")
    work_dir.mkdir(parents=True, exist_ok=True)
    run_number = len(list(work_dir.glob("config-*.json")))
    args = [str(TAP_EXECUTABLE), "--config", str(write_private_json(work_dir / f"config-{run_number}.json", config))]
    if state is not None:
        args += ["--state", str(write_private_json(work_dir / f"state-{run_number}.json", state))]
    if catalog is not None:
        args += ["--catalog", str(write_private_json(work_dir / f"catalog-{run_number}.json", catalog))]
    args += list(extra_args)

    process = subprocess.run(
        args, capture_output=True, text=True, env=tap_env(work_dir), cwd=work_dir, timeout=TAP_TIMEOUT_SECONDS,
    )
    run = parse_messages(process.stdout)
    run.returncode = process.returncode
    run.stderr = process.stderr
    if expect_success:
        assert process.returncode == 0, f"tap-segment exited with {process.returncode}:\n{process.stderr[-5000:]}"
    return run


def discover(work_dir: Path, config: dict) -> dict:
    """Run the tap in discovery mode and return the catalog it prints."""
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = write_private_json(work_dir / "config-discover.json", config)
    process = subprocess.run(
        [str(TAP_EXECUTABLE), "--config", str(config_path), "--discover"],
        capture_output=True, text=True, env=tap_env(work_dir), cwd=work_dir, timeout=TAP_TIMEOUT_SECONDS,
    )
    assert process.returncode == 0, f"tap-segment --discover exited with {process.returncode}:\n{process.stderr[-5000:]}"
    return json.loads(process.stdout)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def moto_server(log_path: Path):
    """Run moto's S3 server on a free loopback port; yield its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {**tap_env(log_path.parent), **{"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}}
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(endpoint + "/", timeout=1).close()
                break
            except OSError as error:
                # URLError and ConnectionError are OSErrors.
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"moto_server did not start on {endpoint}:\n{log_path.read_text()}") from error
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def s3_client(endpoint: str):
    import boto3

    os.environ["AWS_EC2_METADATA_DISABLED"] = "true"
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=FAKE_AWS["aws_access_key_id"],
        aws_secret_access_key=FAKE_AWS["aws_secret_access_key"],
        region_name=FAKE_AWS["region"],
    )
