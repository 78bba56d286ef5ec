"""State stores and bookmark resets."""

import json

from warehouse_sync.state import FileStateStore, WarehouseStateStore, empty_state, reset_streams

STATE = {
    "bookmarks": {
        "public-Users": {"replication_key": "lastModified", "replication_key_value": "2026-04-01T00:00:00+00:00"},
        "public-Stacks": {"replication_key": "lastModified", "replication_key_value": "2026-03-01T00:00:00+00:00"},
    },
    "currently_syncing": "public-Users",
}


def test_file_store_round_trip(tmp_path):
    store = FileStateStore(tmp_path / "state" / "bookmarks.json")

    assert store.load("production-db") == empty_state()
    store.save("production-db", STATE)
    store.save("other", {"bookmarks": {}})

    assert FileStateStore(store.path).load("production-db") == STATE
    assert [name for name, _ in store.pipelines()] == ["other", "production-db"]
    assert list(tmp_path.joinpath("state").iterdir()) == [store.path]


def test_warehouse_store_round_trip(pg_server, databases):
    store = WarehouseStateStore(pg_server.settings(databases[1]), schema="_etl_test")
    try:
        assert store.load("production-db") == empty_state()
        store.save("production-db", STATE)
        store.save("production-db", {**STATE, "currently_syncing": None})

        assert store.load("production-db")["currently_syncing"] is None
        assert store.load("production-db")["bookmarks"] == STATE["bookmarks"]
        assert [name for name, _ in store.pipelines()] == ["production-db"]
    finally:
        store.close()

    with pg_server.connect(databases[1]) as conn:
        rows = conn.execute("SELECT pipeline, state FROM _etl_test.singer_state").fetchall()
    assert len(rows) == 1
    assert json.loads(rows[0][1])["bookmarks"] == STATE["bookmarks"]


def test_reset_streams_removes_bookmarks():
    new_state, removed = reset_streams(STATE, ["public-Users", "public-Programs"])

    assert removed == ["public-Users"]
    assert list(new_state["bookmarks"]) == ["public-Stacks"]
    assert new_state["currently_syncing"] is None
    assert "public-Users" in STATE["bookmarks"]


def test_concurrent_stores_create_schema_once(pg_server, databases):
    """Several stores opened at once on an empty warehouse all succeed."""
    from concurrent.futures import ThreadPoolExecutor

    def open_and_save(index):
        store = WarehouseStateStore(pg_server.settings(databases[1]), schema="_etl_race")
        try:
            store.save(f"pipeline-{index}", STATE)
        finally:
            store.close()

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(open_and_save, range(6)))

    with pg_server.connect(databases[1]) as conn:
        count = conn.execute("SELECT count(*) FROM _etl_race.singer_state").fetchone()[0]
    assert count == 6
