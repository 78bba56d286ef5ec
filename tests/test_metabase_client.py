"""The Metabase API client against the fake Metabase server: authentication, retries, errors, list shapes."""

from __future__ import annotations

import logging

import pytest
import requests
from fake_metabase import FakeMetabase, SleepRecorder

from warehouse_sync.metabase.client import MetabaseClient, MetabaseError, semantic_type, semantic_type_key

USER = "admin@example.com"
PASSWORD = "correct-horse-battery"
API_KEY = "mb_3CpZQ0vLxT2wVYk9aN4rS8uEfGhJ"


def user_client(fake: FakeMetabase, **options) -> MetabaseClient:
    return MetabaseClient(fake.url, username=USER, password=PASSWORD, **options)


def test_login_once_and_reuse_session(start_metabase):
    fake = start_metabase()
    fake.add_database("Warehouse", {})
    client = user_client(fake)

    client.get_databases()
    client.get_databases()
    client.get_collections()

    assert fake.logins == 1
    logins = fake.requests_to("POST", "/api/session")
    assert logins[0].body == {"username": USER, "password": PASSWORD}
    tokens = {r.headers.get("X-Metabase-Session") for r in fake.requests if r.path != "/api/session"}
    assert len(tokens) == 1
    assert None not in tokens


def test_expired_session_logs_in_again(start_metabase):
    fake = start_metabase(expire_session_after=2)
    fake.add_database("Warehouse", {})
    client = user_client(fake)

    for _ in range(5):
        assert client.get_databases()[0]["name"] == "Warehouse"

    assert fake.logins == 3
    rejected = [r for r in fake.requests if r.path == "/api/database"]
    assert len(rejected) == 7  # five served, two rejected with 401 and sent again


def test_session_rejected_twice_raises(start_metabase):
    fake = start_metabase(expire_session_after=0)
    client = user_client(fake)

    with pytest.raises(MetabaseError) as raised:
        client.get_databases()

    assert raised.value.status == 401
    assert fake.logins == 2
    assert str(raised.value) == (
        "Metabase GET /api/database failed with HTTP 401: Unauthenticated "
        "(check METABASE_USERNAME and METABASE_PASSWORD)"
    )


def test_wrong_password_names_metabase_message(start_metabase):
    fake = start_metabase()
    client = MetabaseClient(fake.url, username=USER, password="wrong-password")

    with pytest.raises(MetabaseError) as raised:
        client.get_databases()

    assert raised.value.method == "POST"
    assert raised.value.path == "/api/session"
    assert raised.value.status == 401
    assert "password: did not match stored password" in str(raised.value)
    assert "wrong-password" not in str(raised.value)


def test_api_key_header_and_no_login(start_metabase):
    fake = start_metabase()
    fake.add_database("Warehouse", {})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    client.get_databases()

    assert fake.logins == 0
    assert fake.requests[0].headers.get("x-api-key") == API_KEY
    assert "X-Metabase-Session" not in fake.requests[0].headers


def test_rejected_api_key_not_retried(start_metabase):
    fake = start_metabase()
    client = MetabaseClient(fake.url, api_key="mb_revoked_key_000000000")

    with pytest.raises(MetabaseError, match=r"HTTP 401: Unauthenticated \(check METABASE_API_KEY\)"):
        client.get_databases()

    assert len(fake.requests) == 1


def test_forbidden_plain_text_message(start_metabase):
    fake = start_metabase()
    fake.forbid("PUT", "/api/field/3")
    client = MetabaseClient(fake.url, api_key=API_KEY)

    with pytest.raises(MetabaseError) as raised:
        client.update_field(3, {"semantic_type": "type/PK"})

    assert raised.value.status == 403
    assert str(raised.value).startswith(
        "Metabase PUT /api/field/3 failed with HTTP 403: You don't have permissions to do that."
    )


def test_json_error_message_used(start_metabase):
    fake = start_metabase()
    client = MetabaseClient(fake.url, api_key=API_KEY)

    with pytest.raises(MetabaseError) as raised:
        client.create_card({"name": "No query", "display": "table"})

    assert raised.value.status == 400
    assert "dataset_query: value must be provided." in raised.value.message


@pytest.mark.parametrize("wrap_lists", [True, False])
def test_lists_bare_or_wrapped(start_metabase, wrap_lists):
    fake = start_metabase(wrap_lists=wrap_lists)
    fake.add_database("Warehouse", {})
    collection = fake.add_collection("Shared dashboards")
    client = MetabaseClient(fake.url, api_key=API_KEY)
    headers = {"x-api-key": API_KEY}

    databases = client.get_databases()
    collections = client.get_collections()
    items = client.get_collection_items(collection["id"], ["card", "dashboard"])

    assert isinstance(requests.get(f"{fake.url}/api/database", headers=headers).json(), dict) is wrap_lists
    assert isinstance(requests.get(f"{fake.url}/api/collection", headers=headers).json(), dict) is wrap_lists
    assert [d["name"] for d in databases] == ["Warehouse"]
    assert "Shared dashboards" in [c["name"] for c in collections]
    assert items == []


def test_special_type_read_like_semantic_type(start_metabase):
    fake = start_metabase(semantic_key="special_type")
    fake.add_database("Warehouse", {("pulumi", "users"): [("id", "type/BigInteger", "type/PK")]})
    client = MetabaseClient(fake.url, api_key=API_KEY)

    field = fake.field_by_name("pulumi", "users", "id")
    answer = client.get_field(field["id"])

    assert "semantic_type" not in answer
    assert semantic_type_key(answer) == "special_type"
    assert semantic_type(answer) == "type/PK"
    assert semantic_type_key({"semantic_type": None, "special_type": "type/PK"}) == "semantic_type"


def test_429_waits_for_retry_after(start_metabase):
    fake = start_metabase()
    fake.add_database("Warehouse", {})
    fake.script("GET", "/api/database", 429, "Too Many Requests", {"Retry-After": "7"}, times=2)
    sleeps = SleepRecorder()
    client = MetabaseClient(fake.url, api_key=API_KEY, sleep=sleeps)

    databases = client.get_databases()

    assert [d["name"] for d in databases] == ["Warehouse"]
    assert sleeps.delays == [7.0, 7.0]
    assert len(fake.requests_to("GET", "/api/database")) == 3


def test_500_then_success(start_metabase, caplog):
    fake = start_metabase()
    database = fake.add_database("Warehouse", {})
    fake.script("POST", r"/api/database/\d+/sync_schema", 500, {"message": "Connection reset"})
    sleeps = SleepRecorder()
    client = MetabaseClient(fake.url, api_key=API_KEY, sleep=sleeps, backoff_seconds=0.5)
    caplog.set_level(logging.WARNING)

    answer = client.sync_database_schema(database.id)

    assert answer == {"status": "ok"}
    assert sleeps.delays == [0.5]
    assert "returned HTTP 500; retry 1 of 4 in 0.5 s" in caplog.text


def test_5xx_until_retries_run_out(start_metabase):
    fake = start_metabase()
    fake.script("GET", "/api/collection", 503, "<html>Service Unavailable</html>", times=10)
    sleeps = SleepRecorder()
    client = MetabaseClient(fake.url, api_key=API_KEY, sleep=sleeps, max_retries=3, backoff_seconds=1)

    with pytest.raises(MetabaseError) as raised:
        client.get_collections()

    assert raised.value.status == 503
    assert "<html>Service Unavailable</html>" in str(raised.value)
    assert sleeps.delays == [1, 2, 4]
    assert len(fake.requests) == 4


def test_connection_refused_named(start_metabase):
    fake = start_metabase()
    fake.stop()
    sleeps = SleepRecorder()
    client = MetabaseClient(fake.url, api_key=API_KEY, sleep=sleeps, max_retries=2)

    with pytest.raises(MetabaseError, match="GET /api/database failed: ConnectionError.*check METABASE_URL"):
        client.get_databases()

    assert len(sleeps.delays) == 2


def test_secrets_never_logged(start_metabase, caplog):
    fake = start_metabase(expire_session_after=1)
    fake.add_database("Warehouse", {})
    fake.script("GET", "/api/database", 502, "Bad Gateway")
    caplog.set_level(logging.DEBUG)
    client = user_client(fake, sleep=SleepRecorder())

    client.get_databases()
    client.get_databases()
    key_client = MetabaseClient(fake.url, api_key=API_KEY, sleep=SleepRecorder())
    key_client.get_databases()

    tokens = {r.headers.get("X-Metabase-Session") for r in fake.requests} - {None}
    assert tokens
    for secret in (PASSWORD, API_KEY, *tokens):
        assert secret not in caplog.text
    assert "logging in to Metabase" in caplog.text
