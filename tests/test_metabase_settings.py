"""Metabase settings conversion, without any server."""

import pytest

from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.settings import load_metabase_settings

USER_ENV = {
    "METABASE_URL": "https://metabase.example.com/",
    "METABASE_USERNAME": "sync@example.com",
    "METABASE_PASSWORD": "metabase-secret",
    "METABASE_DATABASE": "Warehouse",
}


def test_unset_url_means_no_metabase():
    assert load_metabase_settings({"METABASE_DATABASE": "Warehouse"}) is None


def test_user_settings_defaults():
    settings = load_metabase_settings(USER_ENV)

    assert settings.url == "https://metabase.example.com"
    assert settings.username == "sync@example.com"
    assert settings.api_key is None
    assert settings.database == "Warehouse"
    assert settings.database_id is None
    assert settings.collection == "Shared dashboards"
    assert settings.sync_timeout_seconds == 600
    assert settings.poll_seconds == 10


def test_api_key_and_numeric_database():
    env = {
        "METABASE_URL": "http://127.0.0.1:3000",
        "METABASE_API_KEY": "mb_key",
        "METABASE_DATABASE": "7",
        "METABASE_COLLECTION": "Warehouse dashboards",
        "METABASE_SYNC_TIMEOUT_SECONDS": "90",
        "METABASE_POLL_SECONDS": "2.5",
    }

    settings = load_metabase_settings(env)

    assert settings.api_key == "mb_key"
    assert settings.database_id == 7
    assert settings.collection == "Warehouse dashboards"
    assert settings.sync_timeout_seconds == 90
    assert settings.poll_seconds == 2.5


def test_repr_hides_secrets():
    text = repr(load_metabase_settings(USER_ENV))
    key_text = repr(load_metabase_settings({**USER_ENV, "METABASE_USERNAME": "", "METABASE_PASSWORD": "",
                                            "METABASE_API_KEY": "mb_secret_key"}))

    assert "metabase-secret" not in text
    assert "mb_secret_key" not in key_text


def test_problems_listed_together():
    env = {
        "METABASE_URL": "metabase.example.com",
        "METABASE_USERNAME": "sync@example.com",
        "METABASE_SYNC_TIMEOUT_SECONDS": "ten",
        "METABASE_POLL_SECONDS": "0",
    }

    with pytest.raises(ConfigError) as raised:
        load_metabase_settings(env)
    message = str(raised.value)

    assert "METABASE_URL='metabase.example.com' is not an http:// or https:// URL" in message
    assert "METABASE_DATABASE is missing" in message
    assert "METABASE_PASSWORD is missing" in message
    assert "METABASE_SYNC_TIMEOUT_SECONDS='ten' is not a number" in message
    assert "METABASE_POLL_SECONDS='0' must be greater than 0" in message


@pytest.mark.parametrize(
    ("credentials", "expected"),
    [
        ({}, "set METABASE_API_KEY, or METABASE_USERNAME and METABASE_PASSWORD"),
        ({"METABASE_PASSWORD": "x"}, "METABASE_USERNAME is missing"),
        ({"METABASE_API_KEY": "k", "METABASE_USERNAME": "u", "METABASE_PASSWORD": "p"}, "set the API key or the user, not both"),
    ],
)
def test_credential_problems(credentials, expected):
    env = {"METABASE_URL": "https://metabase.example.com", "METABASE_DATABASE": "Warehouse", **credentials}

    with pytest.raises(ConfigError, match=expected):
        load_metabase_settings(env)


def test_poll_longer_than_timeout_rejected():
    env = {**USER_ENV, "METABASE_SYNC_TIMEOUT_SECONDS": "5", "METABASE_POLL_SECONDS": "30"}

    with pytest.raises(ConfigError, match="poll more often than the time-out"):
        load_metabase_settings(env)
