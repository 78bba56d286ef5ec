"""Settings conversion, without any database."""

import pytest

from warehouse_sync.config import is_configured, load_settings, read_environment
from warehouse_sync.errors import ConfigError

REDSHIFT_ENV = {
    "SOURCE_DB_HOST": "prod-replica.internal",
    "SOURCE_DB_NAME": "pulumi",
    "SOURCE_DB_USER": "replicator",
    "SOURCE_DB_PASSWORD": "source-secret",
    "SOURCE_DB_SSLMODE": "require",
    "WAREHOUSE_HOST": "warehouse.example.redshift.amazonaws.com",
    "WAREHOUSE_DB": "analytics",
    "WAREHOUSE_USER": "loader",
    "WAREHOUSE_PASSWORD": "warehouse-secret",
    "S3_STAGING_BUCKET": "staging-bucket",
    "S3_STAGING_PREFIX": "singer/",
    "REDSHIFT_COPY_ROLE_ARN": "arn:aws:iam::123456789012:role/redshift-copy",
}


def test_redshift_settings_defaults():
    settings = load_settings(REDSHIFT_ENV)

    assert settings.warehouse_type == "redshift"
    assert settings.warehouse.port == 5439
    assert settings.warehouse.sslmode == "require"
    assert settings.warehouse_schema == "pulumi"
    assert settings.source.port == 5432
    assert settings.s3.bucket == "staging-bucket"
    assert settings.s3.iam_role_arn.endswith("role/redshift-copy")
    assert settings.state_store == "warehouse"
    assert settings.state_schema == "_etl"


def test_settings_repr_hides_secrets():
    env = {**REDSHIFT_ENV, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "aws-secret"}
    text = repr(load_settings(env))

    for secret in ("source-secret", "warehouse-secret", "aws-secret", "AKIAEXAMPLE"):
        assert secret not in text


def test_missing_settings_listed_together():
    with pytest.raises(ConfigError) as raised:
        load_settings({"SOURCE_DB_HOST": "db", "WAREHOUSE_TYPE": "redshift"})
    message = str(raised.value)

    for name in (
        "SOURCE_DB_NAME",
        "SOURCE_DB_USER",
        "SOURCE_DB_PASSWORD",
        "WAREHOUSE_HOST",
        "WAREHOUSE_DB",
        "WAREHOUSE_USER",
        "WAREHOUSE_PASSWORD",
        "S3_STAGING_BUCKET",
        "REDSHIFT_COPY_ROLE_ARN",
    ):
        assert f"{name} is missing" in message


def test_invalid_values_named():
    env = {
        **REDSHIFT_ENV,
        "SOURCE_DB_PORT": "54x",
        "SOURCE_DB_SSLMODE": "sometimes",
        "WAREHOUSE_TYPE": "snowflake",
        "WAREHOUSE_SCHEMA": "Pulumi",
        "STATE_STORE": "file",
    }
    with pytest.raises(ConfigError) as raised:
        load_settings(env)
    message = str(raised.value)

    assert "SOURCE_DB_PORT='54x' is not a port number" in message
    assert "SOURCE_DB_SSLMODE='sometimes' is invalid" in message
    assert "WAREHOUSE_TYPE='snowflake' is invalid; use one of: redshift, postgres" in message
    assert "WAREHOUSE_SCHEMA='Pulumi' is invalid" in message
    assert "STATE_FILE is missing" in message


def test_half_set_aws_keys_rejected():
    env = {k: v for k, v in REDSHIFT_ENV.items() if k != "REDSHIFT_COPY_ROLE_ARN"}
    env["AWS_ACCESS_KEY_ID"] = "AKIAEXAMPLE"
    with pytest.raises(ConfigError, match="must be set together"):
        load_settings(env)


def test_postgres_warehouse_needs_no_s3():
    env = {k: v for k, v in REDSHIFT_ENV.items() if not k.startswith(("S3_", "REDSHIFT_"))}
    env["WAREHOUSE_TYPE"] = "postgres"
    settings = load_settings(env)

    assert settings.s3 is None
    assert settings.warehouse.port == 5432


def test_env_file_under_environment(tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text("SOURCE_DB_HOST=from-file\nWAREHOUSE_DB=from-file\n")
    monkeypatch.setenv("SOURCE_DB_HOST", "from-environment")

    env = read_environment(env_file)

    assert env["SOURCE_DB_HOST"] == "from-environment"
    assert env["WAREHOUSE_DB"] == "from-file"
    assert is_configured(env)


def test_nothing_configured_means_sandbox():
    assert not is_configured({"PATH": "/usr/bin"})
