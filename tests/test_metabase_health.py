"""Card health: queries through the fake Metabase (202 with status failed), and directly on a real warehouse."""

from __future__ import annotations

import logging

import pytest
from fake_metabase import FakeMetabase

from warehouse_sync.metabase.card_health import check_cards, query_outcome
from warehouse_sync.metabase.client import MetabaseClient
from warehouse_sync.metabase.dashboard_files import load_dashboard_specs
from warehouse_sync.metabase.dashboards import sync_dashboards

API_KEY = "mb_card_health_test_key_0001"
LOG = logging.getLogger("test-metabase-health")
COLLECTION = "Shared dashboards"


def stub_rows(sql: str) -> tuple[list, list]:
    return [[1], [2], [3]], ["value"]


def prepared(fake: FakeMetabase) -> tuple[MetabaseClient, list, int]:
    database = fake.add_database("Warehouse", {})
    client = MetabaseClient(fake.url, api_key=API_KEY)
    specs = load_dashboard_specs()
    sync_dashboards(client, specs, database.id, COLLECTION, logger=LOG)
    return client, specs, database.id


def test_failed_query_with_202_fails_health(start_metabase):
    error = 'ERROR: column "requestedby" does not exist\n  Position: 71'
    fake = start_metabase(query_runner=stub_rows, failing_cards={"Weekly active users": error})
    client, specs, _ = prepared(fake)

    report = check_cards(client, specs, COLLECTION, LOG)

    queries = fake.requests_to("POST", r"/api/card/\d+/query")
    assert len(queries) == sum(len(spec.cards) for spec in specs)
    assert queries[0].body == {"ignore_cache": True}
    failed = [o for o in report.outcomes if o.failed]
    assert [o.card for o in failed] == ["Weekly active users"]
    assert failed[0].error == 'ERROR: column "requestedby" does not exist Position: 71'
    expected = (
        "card 'Weekly active users' on dashboard 'Engagement' failed in Metabase: "
        'ERROR: column "requestedby" does not exist Position: 71'
    )
    assert report.problems == [expected]
    completed = [o for o in report.outcomes if not o.failed]
    assert {o.rows for o in completed} == {3}
    total = sum(len(spec.cards) for spec in specs)
    assert report.headline() == f"{total} cards run in Metabase: {total - 1} completed, 1 failed"


def test_hand_added_cards_run_too(start_metabase):
    fake = start_metabase(query_runner=stub_rows, failing_cards={"Churn by plan": "Table CHURN not found"})
    client, specs, database_id = prepared(fake)
    dashboard = fake.dashboard_by_marker("content")
    card = fake.add_hand_made_card("Churn by plan", "select * from churn", database_id, dashboard["collection_id"])
    fake.add_hand_made_dashcard(dashboard["id"], card["id"], {"row": 20, "col": 0, "size_x": 6, "size_y": 4})

    report = check_cards(client, specs, COLLECTION, LOG)

    assert len(report.outcomes) == sum(len(spec.cards) for spec in specs) + 1
    assert report.problems == ["card 'Churn by plan' on dashboard 'Content' failed in Metabase: Table CHURN not found"]


def test_http_failure_counts_as_failed_card(start_metabase):
    fake = start_metabase(query_runner=stub_rows)
    client, specs, _ = prepared(fake)
    card = fake.card_by_marker("content/top-pages")
    fake.script("POST", rf"/api/card/{card['id']}/query", 504, "Gateway Time-out", times=10)
    client = MetabaseClient(fake.url, api_key=API_KEY, max_retries=1, sleep=lambda seconds: None)

    report = check_cards(client, specs, COLLECTION, LOG)

    failed = [o for o in report.outcomes if o.failed]
    assert [o.card for o in failed] == ["Top pages (last 90 days)"]
    assert "HTTP 504: Gateway Time-out" in failed[0].error


def test_missing_dashboard_reported(start_metabase):
    fake = start_metabase()
    fake.add_database("Warehouse", {})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    report = check_cards(client, load_dashboard_specs(), COLLECTION, LOG)

    assert report.outcomes == []
    assert report.problems == [
        "dashboard 'content' was not found in Metabase; run the dashboards step first",
        "dashboard 'engagement' was not found in Metabase; run the dashboards step first",
        "dashboard 'pipeline-health' was not found in Metabase; run the dashboards step first",
    ]


def test_query_outcome_reads_status():
    completed = query_outcome({"status": "completed", "row_count": 12, "running_time": 250}, "D", "C", 1, 9.0)
    unknown = query_outcome({"status": "running"}, "D", "C", 1, 1.0)
    rows_only = query_outcome({"status": "completed", "data": {"rows": [[1], [2]]}}, "D", "C", 1, 0.5)

    assert (completed.status, completed.rows, completed.seconds) == ("completed", 12, 0.25)
    assert unknown.failed
    assert unknown.error == "the query ended with status 'running'"
    assert (rows_only.rows, rows_only.seconds) == (2, 0.5)
