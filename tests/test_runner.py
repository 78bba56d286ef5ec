"""The pipe runner, with small Python programs standing in for connectors."""

import logging
import os
import signal
import sys
import textwrap
import time

import pytest

from warehouse_sync.errors import PipelineError
from warehouse_sync.runner import Stage, run_pipeline

ENV = {"PATH": os.environ["PATH"], "PYTHONUNBUFFERED": "1"}

# Emits two records and a state per batch; exits with the code given as argv[1].
FAKE_TAP = textwrap.dedent("""
    import json, sys
    batches, code = int(sys.argv[1]), int(sys.argv[2])
    print("time=2026-01-01 00:00:00 name=tap level=INFO message=Beginning sync of stream(public-Things)", file=sys.stderr)
    for batch in range(batches):
        for row in range(2):
            print(json.dumps({"type": "RECORD", "stream": "public-Things", "record": {"id": batch * 2 + row}}))
        print(json.dumps({"type": "STATE", "value": {"bookmarks": {"public-Things": {"n": batch}}}}))
        sys.stdout.flush()
    print('INFO METRIC: {"type": "counter", "metric": "record_count", "value": %d, "tags": {}}' % (batches * 2),
          file=sys.stderr)
    if code:
        print("tap: lost the connection: connection reset by peer", file=sys.stderr)
    sys.exit(code)
""")

# Passes STATE values through to stdout as a pipelinewise target does.
FAKE_TARGET = textwrap.dedent("""
    import json, sys
    for line in sys.stdin:
        message = json.loads(line)
        if message["type"] == "STATE":
            print(json.dumps(message["value"]), flush=True)
    print("target: done", file=sys.stderr)
""")


def _python(name, code, *args):
    return Stage(name=name, argv=[sys.executable, "-c", code, *map(str, args)], env=ENV)


@pytest.fixture
def logger():
    return logging.getLogger("test-runner")


def test_states_handed_on_in_order(logger):
    states = []

    result = run_pipeline([_python("tap", FAKE_TAP, 3, 0), _python("target", FAKE_TARGET)], states.append, logger)

    assert [s["bookmarks"]["public-Things"]["n"] for s in states] == [0, 1, 2]
    assert result.states_received == 3
    assert result.streams["public-Things"].rows_extracted == 6


def test_tap_failure_with_clean_target_raises(logger):
    states = []

    with pytest.raises(PipelineError) as raised:
        run_pipeline([_python("tap", FAKE_TAP, 2, 3), _python("target", FAKE_TARGET)], states.append, logger)
    message = str(raised.value)

    assert "tap exited with code 3" in message
    assert "connection reset by peer" in message
    assert "target" not in message.split("\n")[0]
    assert raised.value.transient
    assert len(states) == 2


def test_target_failure_named_before_sigpipe(logger):
    endless_tap = _python("tap", "import sys\nwhile True: sys.stdout.write('x' * 1000 + '\\n')")
    failing_target = _python("target", "import sys\nsys.stdin.readline()\nprint('disk full', file=sys.stderr)\nsys.exit(7)")

    with pytest.raises(PipelineError) as raised:
        run_pipeline([endless_tap, failing_target], lambda state: None, logger)
    message = str(raised.value)

    assert message.startswith("target exited with code 7")
    assert "disk full" in message
    assert "\ntap exited with code 1" in message
    assert "BrokenPipeError" in message
    assert not raised.value.transient


def test_failed_state_save_stops_pipeline(logger):
    def refuse(state):
        raise OSError("state store unreachable")

    with pytest.raises(OSError, match="state store unreachable"):
        run_pipeline([_python("tap", FAKE_TAP, 2, 0), _python("target", FAKE_TARGET)], refuse, logger)


def _children_running(pids):
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
            alive.append(pid)
        except ProcessLookupError:
            pass
    return alive


def test_cancel_kills_whole_process_group(logger, tmp_path):
    pid_file = tmp_path / "pids"
    sleeper = textwrap.dedent(f"""
        import os, time
        with open({str(pid_file)!r}, "a") as out:
            out.write(f"{{os.getpid()}}\\n")
        time.sleep(120)
    """)

    class Cancelled(BaseException):
        pass

    def cancel(signum, frame):
        raise Cancelled()

    previous = signal.signal(signal.SIGALRM, cancel)
    signal.setitimer(signal.ITIMER_REAL, 1.5)
    started = time.monotonic()
    try:
        with pytest.raises(Cancelled):
            run_pipeline([_python("tap", sleeper), _python("target", sleeper)], lambda s: None, logger)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) == 2
    assert _children_running(pids) == []
    assert time.monotonic() - started < 30


def test_progress_logged_while_running(logger, caplog):
    slow_tap = textwrap.dedent("""
        import sys, time
        print("time=2026-01-01 00:00:00 name=tap level=INFO message=Beginning sync of stream(public-Big)", file=sys.stderr)
        for i in range(6):
            print('INFO METRIC: {"type": "counter", "metric": "record_count", "value": 1000, "tags": {}}',
                  file=sys.stderr, flush=True)
            time.sleep(0.25)
    """)
    caplog.set_level(logging.INFO, logger="test-runner")

    run_pipeline([_python("tap", slow_tap), _python("target", FAKE_TARGET)], lambda s: None, logger,
                 progress_interval=0.5)

    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("rows extracted so far")]
    assert progress
    assert "public-Big" in progress[-1]


def test_connector_log_format_parsed(logger, caplog):
    tap = _python("tap", "import sys\nprint('time=2026-01-01 00:00:00 name=t level=WARNING message=careful', file=sys.stderr)")
    caplog.set_level(logging.INFO, logger="test-runner")

    run_pipeline([tap, _python("target", FAKE_TARGET)], lambda s: None, logger)

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["tap: careful"]



def test_sigterm_stops_connectors(tmp_path):
    """A SIGTERM to the orchestrating process ends its connector processes too."""
    pid_file = tmp_path / "pids"
    script = tmp_path / "orchestrate.py"
    script.write_text(textwrap.dedent(f"""
        import logging, sys
        from warehouse_sync.runner import Stage, exit_on_sigterm, run_pipeline
        sleeper = "import os, time\\nopen({str(pid_file)!r}, 'a').write(f'{{os.getpid()}}\\\\n')\\ntime.sleep(120)"
        exit_on_sigterm()
        stages = [Stage(name=n, argv=[sys.executable, "-c", sleeper], env={{}}) for n in ("tap", "target")]
        run_pipeline(stages, lambda s: None, logging.getLogger("x"))
    """))
    import subprocess

    orchestrator = subprocess.Popen([sys.executable, str(script)], cwd=str(tmp_path),
                                    env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if pid_file.exists() and len(pid_file.read_text().split()) == 2:
            break
        time.sleep(0.1)
    orchestrator.send_signal(signal.SIGTERM)

    assert orchestrator.wait(timeout=30) == 128 + signal.SIGTERM
    pids = [int(line) for line in pid_file.read_text().split()]
    assert _children_running(pids) == []
