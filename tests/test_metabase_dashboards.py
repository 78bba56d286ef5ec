"""Dashboards as code against the fake Metabase: files, markers, creating, updating only differences."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import requests
import yaml
from fake_metabase import FakeMetabase

from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.client import MetabaseClient
from warehouse_sync.metabase.dashboard_files import DASHBOARDS_DIR, load_dashboard_specs
from warehouse_sync.metabase.dashboards import marker_key, sync_dashboards

API_KEY = "mb_dashboards_test_key_00001"
LOG = logging.getLogger("test-metabase-dashboards")
COLLECTION = "Shared dashboards"


@pytest.fixture
def dashboards_dir(tmp_path) -> Path:
    """A copy of the shipped dashboard files that a test may edit."""
    target = tmp_path / "dashboards"
    shutil.copytree(DASHBOARDS_DIR, target)
    return target


def edit_yaml(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def run(fake: FakeMetabase, database_id: int, directory: Path = DASHBOARDS_DIR, dry_run: bool = False):
    client = MetabaseClient(fake.url, api_key=API_KEY)
    return sync_dashboards(client, load_dashboard_specs(directory), database_id, COLLECTION, dry_run, LOG)


SHIPPED_SPECS = load_dashboard_specs()
SHIPPED_CARDS = sum(len(spec.cards) for spec in SHIPPED_SPECS)


def dashcards(fake: FakeMetabase, key: str) -> list[dict]:
    return fake.dashboard_by_marker(key)["dashcards"]


def test_shipped_files_load():
    specs = load_dashboard_specs()

    assert [s.key for s in specs] == ["content", "engagement", "pipeline-health"]
    engagement = specs[1]
    assert [c.key for c in engagement.cards] == [
        "active-stacks", "weekly-active-users", "new-sign-ups", "destroy-ratio", "updates-by-kind",
    ]
    assert all(c.sql.lower().startswith("--") for s in specs for c in s.cards)
    assert engagement.collection is None


def test_invalid_files_listed_together(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "ok.sql").write_text("select 1")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump({
        "key": "broken",
        "name": "Broken",
        "cards": [
            {"key": "a", "name": "A", "display": "donut", "sql": "ok.sql",
             "position": {"row": 0, "col": 0, "size_x": 6, "size_y": 4}},
            {"key": "b", "name": "B", "display": "table", "sql": "missing.sql",
             "position": {"row": 0, "col": 0, "size_x": 6, "size_y": 4}},
            {"key": "c", "name": "C", "display": "table", "sql": "ok.sql",
             "position": {"row": 0, "col": 20, "size_x": 6, "size_y": 4}},
            {"key": "d", "name": "D", "display": "table", "sql": "ok.sql",
             "position": {"row": 10, "col": 0, "size_x": 6, "size_y": 4}},
            {"key": "e", "name": "E", "display": "table", "sql": "ok.sql",
             "position": {"row": 12, "col": 2, "size_x": 6, "size_y": 4}},
            {"key": "d", "name": "D again", "display": "table", "sql": "ok.sql",
             "position": {"row": 30, "col": 0, "size_x": 6, "size_y": 4}},
        ],
    }))

    with pytest.raises(ConfigError) as raised:
        load_dashboard_specs(tmp_path)
    message = str(raised.value)

    assert "broken.yaml card 1: display 'donut' is invalid" in message
    assert "broken.yaml card 2: SQL file broken/missing.sql does not exist" in message
    assert "broken.yaml card 3: col + size_x is 26, past the 24-column grid" in message
    assert "broken.yaml: card key 'd' is used twice" in message
    assert "broken.yaml: cards 'd' and 'e' overlap on the grid" in message


def test_first_run_creates_everything(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})

    report = run(fake, database.id)

    assert report.problems == []
    collection = next(c for c in fake.collections.values() if c["name"] == COLLECTION)
    assert len(fake.cards) == SHIPPED_CARDS
    assert {c["collection_id"] for c in fake.cards.values()} == {collection["id"]}
    card = fake.card_by_marker("engagement/weekly-active-users")
    assert card["name"] == "Weekly active users"
    assert card["display"] == "line"
    assert card["dataset_query"]["type"] == "native"
    assert card["dataset_query"]["database"] == database.id
    assert "count(distinct requestedby)" in card["dataset_query"]["native"]["query"]
    assert card["description"].endswith("\n\n[warehouse-sync:engagement/weekly-active-users]")
    engagement = fake.dashboard_by_marker("engagement")
    assert engagement["name"] == "Engagement"
    assert engagement["collection_id"] == collection["id"]
    placed = {d["card_id"]: (d["row"], d["col"], d["size_x"], d["size_y"]) for d in dashcards(fake, "engagement")}
    assert placed[card["id"]] == (0, 6, 18, 6)
    assert len(placed) == 5
    assert len(dashcards(fake, "content")) == 3


def test_rerun_sends_no_writes(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id)
    writes = len(fake.writes())

    report = run(fake, database.id)

    assert len(fake.writes()) == writes
    assert report.writes == 0
    assert {i.action for i in report.items} == {"up to date"}


def test_hand_added_dashcards_survive(start_metabase, dashboards_dir):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id, dashboards_dir)
    dashboard = fake.dashboard_by_marker("engagement")
    hand_card = fake.add_hand_made_card("Churned orgs", "select 1", database.id, dashboard["collection_id"])
    hand_dashcard = fake.add_hand_made_dashcard(
        dashboard["id"], hand_card["id"], {"row": 20, "col": 0, "size_x": 12, "size_y": 4}
    )
    text_dashcard = fake.add_hand_made_dashcard(
        dashboard["id"], None, {"row": 20, "col": 12, "size_x": 12, "size_y": 4}, text="Ask #data for help"
    )

    def move_and_add(data):
        data["cards"][0]["position"] = {"row": 24, "col": 0, "size_x": 8, "size_y": 4}
        data["cards"].append({"key": "stacks-per-week", "name": "Stacks created per week", "display": "bar",
                              "sql": "new_sign_ups.sql", "position": {"row": 28, "col": 0, "size_x": 12, "size_y": 6}})

    edit_yaml(dashboards_dir / "engagement.yaml", move_and_add)
    run(fake, database.id, dashboards_dir)

    after = {d["id"]: d for d in dashcards(fake, "engagement")}
    assert after[hand_dashcard["id"]]["card_id"] == hand_card["id"]
    assert (after[hand_dashcard["id"]]["row"], after[hand_dashcard["id"]]["col"]) == (20, 0)
    assert after[text_dashcard["id"]]["visualization_settings"] == {"text": "Ask #data for help"}
    moved = next(d for d in after.values() if d["card_id"] == fake.card_by_marker("engagement/active-stacks")["id"])
    assert (moved["row"], moved["col"], moved["size_x"], moved["size_y"]) == (24, 0, 8, 4)
    assert fake.card_by_marker("engagement/stacks-per-week") is not None
    # Five shipped cards, the one added to the file, and the two made by hand.
    assert len(after) == 8
    put = fake.requests_to("PUT", rf"/api/dashboard/{dashboard['id']}")[-1]
    new = [d for d in put.body["dashcards"] if d["id"] < 0]
    assert len(new) == 1
    assert new[0]["card_id"] == fake.card_by_marker("engagement/stacks-per-week")["id"]


def test_changed_sql_updates_one_card(start_metabase, dashboards_dir):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id, dashboards_dir)
    before = len(fake.writes())
    sql_file = dashboards_dir / "engagement" / "active_stacks.sql"
    sql_file.write_text(sql_file.read_text().replace("30 days", "14 days"))

    report = run(fake, database.id, dashboards_dir)

    writes = fake.writes()[before:]
    card = fake.card_by_marker("engagement/active-stacks")
    assert [(w.method, w.path) for w in writes] == [("PUT", f"/api/card/{card['id']}")]
    assert list(writes[0].body) == ["dataset_query"]
    assert "interval '14 days'" in card["dataset_query"]["native"]["query"]
    assert [i.changes for i in report.items if i.action == "updated"] == [["dataset_query"]]


def test_renamed_card_matched_by_marker(start_metabase, dashboards_dir):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id, dashboards_dir)
    card_id = fake.card_by_marker("content/top-pages")["id"]

    edit_yaml(dashboards_dir / "content.yaml", lambda data: data["cards"][2].update(name="Most read pages"))
    run(fake, database.id, dashboards_dir)

    assert fake.cards[card_id]["name"] == "Most read pages"
    assert len(fake.cards) == SHIPPED_CARDS


def test_hand_renamed_dashboard_restored(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id)
    dashboard = fake.dashboard_by_marker("content")
    dashboard["name"] = "Content (old)"

    run(fake, database.id)

    assert fake.dashboards[dashboard["id"]]["name"] == "Content"
    put = fake.requests_to("PUT", rf"/api/dashboard/{dashboard['id']}")[-1]
    assert put.body == {"name": "Content"}


def test_removed_card_archived_and_unplaced(start_metabase, dashboards_dir):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id, dashboards_dir)
    removed = fake.card_by_marker("engagement/destroy-ratio")

    edit_yaml(dashboards_dir / "engagement.yaml",
              lambda data: data.update(cards=[c for c in data["cards"] if c["key"] != "destroy-ratio"]))
    report = run(fake, database.id, dashboards_dir)

    assert fake.cards[removed["id"]]["archived"] is True
    assert removed["id"] not in {d["card_id"] for d in dashcards(fake, "engagement")}
    assert len(dashcards(fake, "engagement")) == 4
    assert ("card", "engagement/destroy-ratio", "archived") in {(i.kind, i.key, i.action) for i in report.items}


def test_dry_run_writes_nothing(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})

    report = run(fake, database.id, dry_run=True)

    assert fake.writes() == []
    assert {i.action for i in report.items} == {"would create"}
    assert len(report.items) == SHIPPED_CARDS + len(SHIPPED_SPECS)


def test_old_ordered_cards_answers_read(start_metabase):
    fake = start_metabase(dashcards_key="ordered_cards")
    database = fake.add_database("Warehouse", {})
    run(fake, database.id)
    writes = len(fake.writes())

    report = run(fake, database.id)

    answer = requests.get(f"{fake.url}/api/dashboard/{fake.dashboard_by_marker('content')['id']}",
                          headers={"x-api-key": API_KEY}).json()
    assert "dashcards" not in answer
    assert len(answer["ordered_cards"]) == 3
    assert len(fake.writes()) == writes
    assert report.writes == 0


def test_copied_card_warned_and_left_alone(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id)
    original = fake.card_by_marker("content/top-pages")
    copy = fake.add_hand_made_card("Top pages - Duplicate", "select 2", database.id, original["collection_id"])
    fake.cards[copy["id"]]["description"] = original["description"]
    writes = len(fake.writes())

    report = run(fake, database.id)

    assert len(fake.writes()) == writes
    expected = (
        f"cards {original['id']}, {copy['id']} all carry the marker [warehouse-sync:content/top-pages]; "
        f"using {original['id']} and leaving the others alone (a copied description copies the marker; "
        "remove it from the copies)"
    )
    assert report.warnings == [expected]
    assert fake.cards[copy["id"]]["name"] == "Top pages - Duplicate"


def test_hand_tuned_visualization_kept(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id)
    card = fake.card_by_marker("engagement/weekly-active-users")
    card["visualization_settings"]["graph.colors"] = ["#509EE3"]
    writes = len(fake.writes())

    run(fake, database.id)

    assert len(fake.writes()) == writes
    assert fake.cards[card["id"]]["visualization_settings"]["graph.colors"] == ["#509EE3"]


def test_new_dashcards_go_on_first_tab(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    run(fake, database.id)
    dashboard = fake.dashboard_by_marker("content")
    dashboard["tabs"] = [{"id": 71, "name": "Traffic", "position": 0}, {"id": 72, "name": "Notes", "position": 1}]
    for dashcard in dashboard["dashcards"]:
        dashcard["dashboard_tab_id"] = 71
    dashboard["dashcards"] = dashboard["dashcards"][1:]

    run(fake, database.id)

    put = fake.requests_to("PUT", rf"/api/dashboard/{dashboard['id']}")[-1]
    assert put.body["tabs"] == [{"id": 71, "name": "Traffic"}, {"id": 72, "name": "Notes"}]
    assert [d["dashboard_tab_id"] for d in put.body["dashcards"]] == [71, 71, 71]
    assert len(dashcards(fake, "content")) == 3


def test_marker_parsed_from_description():
    assert marker_key("Weekly numbers.\n\n[warehouse-sync:engagement/new-sign-ups]") == "engagement/new-sign-ups"
    assert marker_key("[warehouse-sync:content]") == "content"
    assert marker_key("Made by hand") is None
    assert marker_key(None) is None


def test_unknown_collection_id_reported(start_metabase):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    report = sync_dashboards(client, load_dashboard_specs(), database.id, "999", logger=LOG)

    assert fake.writes() == []
    assert len(report.problems) == len(SHIPPED_SPECS)
    assert "Metabase has no collection with id 999 that this user can see" in report.problems[0]
