"""prefect.yaml, its entrypoints and schedules, and the automations file, without a Prefect server."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml
from prefect.server.schemas.schedules import CronSchedule

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS = yaml.safe_load((PROJECT_ROOT / "prefect.yaml").read_text())["deployments"]
sys.path.insert(0, str(PROJECT_ROOT / "deployments"))

import apply_automations  # noqa: E402


def _flow(entrypoint: str):
    path, name = entrypoint.split(":")
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return getattr(module, name)


def test_deployment_names_and_entrypoints():
    assert [d["name"] for d in DEPLOYMENTS] == ["nightly", "segment-hourly", "production-db", "metabase-refresh"]
    for deployment in DEPLOYMENTS:
        assert (PROJECT_ROOT / deployment["entrypoint"].split(":")[0]).exists()


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_parameters_match_flow_signature(deployment):
    flow = _flow(deployment["entrypoint"])
    signature = inspect.signature(flow.fn)

    assert set(deployment["parameters"]) == set(signature.parameters)
    for name, value in deployment["parameters"].items():
        assert signature.parameters[name].default == value, name


@pytest.mark.parametrize("deployment", DEPLOYMENTS, ids=lambda d: d["name"])
def test_one_run_at_a_time_on_process_pool(deployment):
    assert deployment["concurrency_limit"] == 1
    assert deployment["work_pool"]["name"] == "warehouse-sync"
    assert deployment["work_pool"]["job_variables"]["env"]["TZ"] == "UTC"


def _next_runs(schedule: dict, count: int, start: datetime) -> list[datetime]:
    cron = CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    return asyncio.run(cron.get_dates(n=count, start=start))


def test_nightly_fires_at_ten_utc():
    nightly = next(d for d in DEPLOYMENTS if d["name"] == "nightly")
    runs = _next_runs(nightly["schedules"][0], 3, datetime(2026, 3, 28, 12, tzinfo=timezone.utc))

    assert [r.astimezone(timezone.utc).strftime("%m-%d %H:%M") for r in runs] == [
        "03-29 10:00", "03-30 10:00", "03-31 10:00",
    ]


def test_every_schedule_parses_with_timezone():
    for deployment in DEPLOYMENTS:
        for schedule in deployment.get("schedules", []):
            assert schedule["timezone"] == "UTC"
            assert len(_next_runs(schedule, 2, datetime(2026, 1, 1, tzinfo=timezone.utc))) == 2


def test_segment_hourly_fires_every_hour():
    hourly = next(d for d in DEPLOYMENTS if d["name"] == "segment-hourly")
    runs = _next_runs(hourly["schedules"][0], 3, datetime(2026, 1, 1, tzinfo=timezone.utc))

    assert [r.strftime("%H:%M") for r in runs] == ["00:15", "01:15", "02:15"]


def test_automations_validate_with_block():
    automations = apply_automations.build(
        apply_automations.load_automations(block_document_id="00000000-0000-0000-0000-000000000001")
    )

    assert [a.name for a in automations] == [
        "warehouse-sync run failed or crashed",
        "warehouse-sync nightly run late",
        "warehouse-sync nightly run missing",
    ]
    assert all(a.actions[0].type == "send-notification" for a in automations)
    assert automations[1].trigger.within.total_seconds() == 3 * 3600


def test_automations_without_block_do_nothing():
    automations = apply_automations.build(apply_automations.load_automations())

    assert all(a.actions[0].type == "do-nothing" for a in automations)
