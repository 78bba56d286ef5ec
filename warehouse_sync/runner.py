"""Run a Singer pipeline: tap | [transform] | target, joined by OS pipes.

Rows flow from one connector process to the next through kernel pipes and
never pass through this Python process. This process reads only each
connector's stderr (log lines, sent on to the run logger) and the target's
stdout, which carries STATE messages once the target has committed the rows
before them. Each STATE is handed to ``on_state`` at once.

All processes share one new process group, so cancelling the run (an
exception or a termination signal in this process) kills every connector.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from warehouse_sync.errors import PipelineError

STDERR_TAIL_LINES = 20
PROGRESS_INTERVAL_SECONDS = 15.0
LOG_LINES_PER_WINDOW = 40
LOG_WINDOW_SECONDS = 10.0
MAX_LOG_LINE_CHARS = 1000
KILL_GRACE_SECONDS = 5.0

TRANSIENT_PATTERNS = re.compile(
    r"connection reset|server closed the connection unexpectedly|timed out|timeout expired"
    r"|terminating connection due to administrator command|SSL SYSCALL error|could not receive data",
    re.IGNORECASE,
)
_STREAM_START = re.compile(r"Beginning sync of stream\((?P<stream>[^)]+)\)")
_METRIC = re.compile(r"METRIC: (?P<json>\{.*\})")
# pipelinewise connectors log "time=... name=... level=INFO message=...".
_PIPELINEWISE_LINE = re.compile(r"^time=\S+ \S+ name=\S+ level=(?P<level>[A-Z]+) message=(?P<message>.*)$")
_TARGET_LOADED = re.compile(r'Loading into (?P<table>\S+): (?P<json>\{.*\})')


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit in this process.

    Python's default SIGTERM action ends the process without unwinding, which
    would leave the connector processes running. As an exception it reaches
    run_pipeline's clean-up, which kills them. Prefect's engine installs its
    own handler for flow runs it starts as a worker, with the same effect.
    """

    def stop(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)


def looks_transient(text: str) -> bool:
    """Tell whether an error text reads like a dropped connection or a time-out."""
    return bool(TRANSIENT_PATTERNS.search(text))


@dataclass(frozen=True)
class Stage:
    """One connector process of a pipeline."""

    name: str
    argv: Sequence[str]
    env: dict[str, str] = field(default_factory=dict, repr=False)


@dataclass
class StreamProgress:
    """Counts and timing of one stream as read from the connectors' log lines."""

    rows_extracted: int = 0
    rows_loaded: int = 0
    started: float | None = None
    finished: float | None = None

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.finished or time.monotonic()) - self.started


@dataclass
class PipelineResult:
    """Counts, states and duration of one pipeline run."""

    streams: dict[str, StreamProgress]
    states_received: int
    last_state: dict | None
    seconds: float


class _Progress:
    """Per-stream counts, updated by the stderr reader threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.streams: dict[str, StreamProgress] = {}
        self.current: str | None = None

    def stream(self, name: str) -> StreamProgress:
        return self.streams.setdefault(name, StreamProgress())

    def on_tap_line(self, line: str) -> None:
        started = _STREAM_START.search(line)
        if started:
            with self.lock:
                now = time.monotonic()
                if self.current:
                    self.stream(self.current).finished = now
                self.current = started.group("stream")
                self.stream(self.current).started = now
            return
        metric = _METRIC.search(line)
        if not metric:
            return
        try:
            point = json.loads(metric.group("json"))
        except ValueError:
            return
        if point.get("metric") != "record_count":
            return
        # singer-sdk taps tag each count with its stream; pipelinewise taps do
        # not, and count for the stream whose sync began last.
        stream = (point.get("tags") or {}).get("stream") or self.current
        if stream:
            with self.lock:
                progress = self.stream(stream)
                if progress.started is None:
                    progress.started = time.monotonic()
                progress.rows_extracted += int(point.get("value", 0))

    def on_target_line(self, line: str) -> None:
        loaded = _TARGET_LOADED.search(line)
        if not loaded:
            return
        try:
            counts = json.loads(loaded.group("json"))
        except ValueError:
            return
        table = loaded.group("table").split(".")[-1].strip('"')
        with self.lock:
            self.stream(table).rows_loaded += int(counts.get("inserts", 0)) + int(counts.get("updates", 0))

    def finish(self) -> None:
        with self.lock:
            if self.current:
                self.stream(self.current).finished = time.monotonic()

    def describe(self) -> str:
        with self.lock:
            parts = [
                f"{name} {p.rows_extracted:,}"
                for name, p in self.streams.items()
                if p.started is not None
            ]
        return ", ".join(parts)


class Redactor:
    """Replace known secret values in text taken from connector output.

    Connectors can echo their configuration in errors (a failed COPY names its
    credentials), so every stderr line is passed through this before it is
    logged or kept.
    """

    def __init__(self, secrets: Sequence[str] = ()):
        # Very short values would blank out ordinary words.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class _LogForwarder:
    """Send a process's stderr lines to the logger, at most N lines per window."""

    def __init__(self, logger: logging.Logger, name: str):
        self.logger = logger
        self.name = name
        self.window_start = time.monotonic()
        self.sent = 0
        self.suppressed = 0

    def forward(self, line: str) -> None:
        now = time.monotonic()
        if now - self.window_start >= LOG_WINDOW_SECONDS:
            if self.suppressed:
                self.logger.info("%s: %d log lines not shown", self.name, self.suppressed)
            self.window_start, self.sent, self.suppressed = now, 0, 0
        if self.sent >= LOG_LINES_PER_WINDOW:
            self.suppressed += 1
            return
        self.sent += 1
        level, message = logging.INFO, line
        parsed = _PIPELINEWISE_LINE.match(line)
        if parsed:
            message = parsed.group("message")
            level = logging.getLevelName(parsed.group("level"))
            if not isinstance(level, int):
                level = logging.INFO
        self.logger.log(level, "%s: %s", self.name, message[:MAX_LOG_LINE_CHARS])

    def close(self) -> None:
        if self.suppressed:
            self.logger.info("%s: %d log lines not shown", self.name, self.suppressed)


def run_pipeline(
    stages: Sequence[Stage],
    on_state: Callable[[dict], None],
    logger: logging.Logger,
    progress_interval: float = PROGRESS_INTERVAL_SECONDS,
    redact: Redactor | None = None,
    watch: Callable[[str, str], None] | None = None,
) -> PipelineResult:
    """Run the stages joined by pipes and wait for all of them.

    ``on_state`` receives every STATE value the last stage writes, in order, as
    soon as it is written. Raises PipelineError if any process exits non-zero,
    naming each failed process with its exit code and last stderr lines. The
    states received before the failure have already been handed on. Every
    stderr line passes through ``redact`` before it is logged or kept, then
    goes to ``watch(stage name, line)`` if given.
    """
    redact = redact or Redactor()
    if len(stages) < 2:
        raise ValueError("a pipeline needs at least a tap and a target")

    started = time.monotonic()
    progress = _Progress()
    processes: list[subprocess.Popen] = []
    tails: list[deque] = []
    threads: list[threading.Thread] = []
    state_box: dict = {"count": 0, "last": None, "error": None}
    stop_ticker = threading.Event()

    try:
        previous_stdout = None
        for index, stage in enumerate(stages):
            process = subprocess.Popen(
                list(stage.argv),
                stdin=previous_stdout if previous_stdout is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=stage.env,
                process_group=0 if not processes else processes[0].pid,
            )
            if previous_stdout is not None:
                # The next process has its own copy, so closing ours lets a
                # dying reader send SIGPIPE back up the pipe.
                previous_stdout.close()
            processes.append(process)
            previous_stdout = process.stdout
            tail: deque = deque(maxlen=STDERR_TAIL_LINES)
            tails.append(tail)
            on_line = _line_handler(stage.name, index, len(stages), progress, watch)
            threads.append(_start_stderr_reader(process, stage.name, tail, logger, on_line, redact))
        logger.info("started %s", " | ".join(stage.name for stage in stages))

        states_thread = threading.Thread(
            target=_read_states,
            args=(processes[-1], on_state, state_box, logger),
            name="singer-states",
            daemon=True,
        )
        states_thread.start()
        ticker = threading.Thread(
            target=_log_progress,
            args=(progress, stop_ticker, progress_interval, logger),
            name="singer-progress",
            daemon=True,
        )
        ticker.start()

        for process in processes:
            process.wait()
        states_thread.join()
        for thread in threads:
            thread.join()
    except BaseException:
        _kill_group(processes, logger)
        raise
    finally:
        stop_ticker.set()
        progress.finish()

    if state_box["error"] is not None:
        _kill_group(processes, logger)
        raise state_box["error"]

    failures = [
        (stage, process, tail)
        for stage, process, tail in zip(stages, processes, tails)
        if process.returncode != 0
    ]
    if failures:
        raise _pipeline_error(failures)

    seconds = time.monotonic() - started
    logger.info("pipeline finished in %.1f s; %d STATE messages saved", seconds, state_box["count"])
    return PipelineResult(
        streams=progress.streams,
        states_received=state_box["count"],
        last_state=state_box["last"],
        seconds=seconds,
    )


def _line_handler(name, index, count, progress, watch):
    parse = None
    if index == 0:
        parse = progress.on_tap_line
    elif index == count - 1:
        parse = progress.on_target_line

    def on_line(line: str) -> None:
        if parse is not None:
            parse(line)
        if watch is not None:
            watch(name, line)

    return on_line


def _start_stderr_reader(process, name, tail, logger, on_line, redact) -> threading.Thread:
    forwarder = _LogForwarder(logger, name)

    def read():
        for raw in process.stderr:
            line = redact(raw.decode("utf-8", "replace").rstrip())
            if not line:
                continue
            tail.append(line[:MAX_LOG_LINE_CHARS])
            on_line(line)
            forwarder.forward(line)
        forwarder.close()

    thread = threading.Thread(target=read, name=f"{name}-stderr", daemon=True)
    thread.start()
    return thread


def _read_states(process, on_state, box, logger) -> None:
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace").strip()
        if not line:
            continue
        try:
            message = json.loads(line)
        except ValueError:
            logger.debug("target wrote a line that is not JSON; ignored")
            continue
        # pipelinewise targets write the bare state value; Singer SDK targets
        # may wrap it as a STATE message.
        if isinstance(message, dict) and "type" in message:
            if message["type"] != "STATE":
                continue
            message = message.get("value")
        if not isinstance(message, dict):
            continue
        try:
            on_state(message)
        except Exception as exc:  # noqa: BLE001 - raised again by run_pipeline
            box["error"] = exc
            logger.error("saving a STATE message failed: %s", exc)
            process.kill()
            return
        box["count"] += 1
        box["last"] = message


def _log_progress(progress: _Progress, stop: threading.Event, interval: float, logger) -> None:
    last = None
    while not stop.wait(interval):
        described = progress.describe()
        if described and described != last:
            logger.info("rows extracted so far: %s", described)
            last = described


def _kill_group(processes: list[subprocess.Popen], logger: logging.Logger) -> None:
    if not processes:
        return
    group = processes[0].pid
    alive = [p for p in processes if p.poll() is None]
    if not alive:
        return
    logger.warning("stopping the connector processes (process group %d)", group)
    try:
        os.killpg(group, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    for process in alive:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(group, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for process in alive:
        process.wait()


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _pipeline_error(failures) -> PipelineError:
    # A process that died of a broken pipe only lost its reader; the reader's
    # own failure is the cause, so it is reported first. Python connectors
    # ignore SIGPIPE and exit with BrokenPipeError instead of the signal.
    def lost_its_reader(failure) -> bool:
        _, process, tail = failure
        return process.returncode == -signal.SIGPIPE or any("BrokenPipeError" in line for line in tail)

    failures = sorted(failures, key=lost_its_reader)
    parts = []
    transient = False
    for stage, process, tail in failures:
        lines = "\n    ".join(tail) or "(no stderr output)"
        parts.append(f"{stage.name} {_describe_exit(process.returncode)}; last stderr lines:\n    {lines}")
        transient = transient or any(looks_transient(line) for line in tail)
    return PipelineError("\n".join(parts), transient=transient)
