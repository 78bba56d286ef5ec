"""Synthetic production database for the local sandbox, the tests and the benchmarks.

The schema models a hosted infrastructure-as-code service: users belong to
organizations, organizations own programs, programs have stacks, and every
``update``, ``preview``, ``destroy`` or ``refresh`` run on a stack is a
``ProgramUpdates`` row with its log lines in ``UpdateEvents``. Table and column
names are quoted mixed case, and two columns are reserved words (``"user"``,
``"order"``). The data contains fake secrets, personal data, NULLs, empty
strings and text with newlines, tabs, backslashes, quotes and non-ASCII
characters. A replication run can so be checked for fidelity and for columns
that must never reach the warehouse.

Generation is deterministic: the same ``(scale, seed)`` gives the same rows, and
every timestamp is derived from ``BASE_TIME`` (2026-01-01 UTC), never from the
clock. Rows are loaded with ``COPY``.

Rows per table (``rows_for_scale``; rounded, at least 1 each):

===================  =========  ===========  ======================================
table                scale 1    scale 200    rule
===================  =========  ===========  ======================================
Users                500        100,000      500 x scale
Organizations        50         10,000       50 x scale
OrganizationMembers  809        164,854      an admin per organization, and 1 to 3
                                             per user (1.55 on average) less
                                             duplicates
Programs             200        40,000       200 x scale
Stacks               600        120,000      600 x scale
ProgramUpdates       5,000      1,000,000    5,000 x scale
UpdateEvents         6,279      1,251,024    0 to 3 per update, 1.25 on average
AccessTokens         750        150,000      750 x scale
===================  =========  ===========  ======================================

The OrganizationMembers and UpdateEvents counts are those of seed 7, and
``populate`` returns the exact counts for any seed. Entities are created over
the first 60 days after ``BASE_TIME``, and updates start over the first 90 days
and run for up to 35 minutes. ``apply_changes`` then simulates one day of
activity after the latest ``"lastModified"`` value in the database.
"""

from __future__ import annotations

import itertools
import json
import random
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TypeVar

import psycopg
from psycopg import sql

__all__ = [
    "BASE_TIME",
    "FOREIGN_KEYS",
    "FULL_TABLE_TABLES",
    "LAST_MODIFIED_COLUMN",
    "PERSONAL_DATA_COLUMNS",
    "ROWS_AT_SCALE_1",
    "SCHEMA_SQL",
    "SECRET_COLUMNS",
    "TABLES",
    "apply_changes",
    "create_schema",
    "populate",
    "rows_for_scale",
    "updates_rows_for_scale",
]

T = TypeVar("T")

BASE_TIME = datetime(2026, 1, 1, tzinfo=timezone.utc)
UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

TABLES: tuple[str, ...] = (
    "Users",
    "Organizations",
    "OrganizationMembers",
    "Programs",
    "Stacks",
    "ProgramUpdates",
    "UpdateEvents",
    "AccessTokens",
)

LAST_MODIFIED_COLUMN = "lastModified"

# Tables without a last-modified column, which can only be replicated in full.
FULL_TABLE_TABLES: tuple[str, ...] = ("OrganizationMembers", "UpdateEvents")

# (table, column, referenced table). SCHEMA_SQL declares them inline, so each
# constraint has PostgreSQL's default name, "<table>_<column>_fkey".
FOREIGN_KEYS: tuple[tuple[str, str, str], ...] = (
    ("OrganizationMembers", "organizationId", "Organizations"),
    ("OrganizationMembers", "userId", "Users"),
    ("Programs", "organizationId", "Organizations"),
    ("Stacks", "programId", "Programs"),
    ("ProgramUpdates", "stackId", "Stacks"),
    ("ProgramUpdates", "requestedBy", "Users"),
    ("UpdateEvents", "updateId", "ProgramUpdates"),
    ("AccessTokens", "user", "Users"),
)

SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "Users": ("passwordHash",),
    "Organizations": ("encryptedSecret",),
    "AccessTokens": ("tokenHash",),
}

PERSONAL_DATA_COLUMNS: dict[str, tuple[str, ...]] = {
    "Users": ("email", "displayName", "githubLogin"),
}

# Planned rows at scale 1.0 for the tables whose size is fixed by the scale.
# OrganizationMembers and UpdateEvents are drawn at random per parent row.
ROWS_AT_SCALE_1: dict[str, int] = {
    "Users": 500,
    "Organizations": 50,
    "Programs": 200,
    "Stacks": 600,
    "ProgramUpdates": 5_000,
    "AccessTokens": 750,
}

ENTITY_SPAN_SECONDS = 60 * 86_400
UPDATE_SPAN_SECONDS = 90 * 86_400
CHANGE_DAY_SECONDS = 86_400

SCHEMA_SQL = """
DO $$
BEGIN
    CREATE TYPE "UpdateKind" AS ENUM ('update', 'preview', 'destroy', 'refresh');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

DO $$
BEGIN
    CREATE TYPE "UpdateResult" AS ENUM ('in-progress', 'succeeded', 'failed', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL;
END $$;

CREATE TABLE IF NOT EXISTS "Users" (
    "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "userName" text NOT NULL UNIQUE,
    "displayName" text,
    "email" text NOT NULL UNIQUE,
    "githubLogin" text,
    "passwordHash" text NOT NULL,
    "isSiteAdmin" boolean NOT NULL DEFAULT false,
    "createdAt" timestamptz NOT NULL,
    "lastModified" timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS "Organizations" (
    "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "orgName" text NOT NULL UNIQUE,
    "displayName" text,
    "billingEmail" text,
    "plan" text NOT NULL,
    "creditBalance" numeric(12, 2) NOT NULL DEFAULT 0,
    "samlEnabled" boolean NOT NULL DEFAULT false,
    "allowedDomains" text[],
    "encryptedSecret" text NOT NULL,
    "createdAt" timestamptz NOT NULL,
    "lastModified" timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS "OrganizationMembers" (
    "organizationId" bigint NOT NULL REFERENCES "Organizations" ("id"),
    "userId" bigint NOT NULL REFERENCES "Users" ("id"),
    "role" text NOT NULL,
    "joinedAt" timestamptz NOT NULL,
    PRIMARY KEY ("organizationId", "userId")
);

CREATE TABLE IF NOT EXISTS "Programs" (
    "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "organizationId" bigint NOT NULL REFERENCES "Organizations" ("id"),
    "name" text NOT NULL,
    "description" text,
    "runtime" text NOT NULL,
    "repositoryUrl" text,
    "createdAt" timestamptz NOT NULL,
    "lastModified" timestamptz NOT NULL,
    UNIQUE ("organizationId", "name")
);

CREATE TABLE IF NOT EXISTS "Stacks" (
    "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "programId" bigint NOT NULL REFERENCES "Programs" ("id"),
    "name" text NOT NULL,
    "tags" jsonb NOT NULL DEFAULT '{}',
    "resourceCount" integer NOT NULL DEFAULT 0,
    "createdAt" timestamptz NOT NULL,
    "lastModified" timestamptz NOT NULL,
    UNIQUE ("programId", "name")
);

CREATE TABLE IF NOT EXISTS "ProgramUpdates" (
    "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "stackId" bigint NOT NULL REFERENCES "Stacks" ("id"),
    "requestedBy" bigint NOT NULL REFERENCES "Users" ("id"),
    "kind" "UpdateKind" NOT NULL,
    "result" "UpdateResult" NOT NULL,
    "version" integer NOT NULL,
    "startTime" timestamptz NOT NULL,
    "endTime" timestamptz,
    "message" text,
    "config" jsonb,
    -- json, unlike config: it keeps the text as written, and COPY parses it
    -- faster than jsonb, whose numbers are converted to numeric.
    "resourceChanges" json,
    "pinned" boolean NOT NULL DEFAULT false,
    "lastModified" timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS "UpdateEvents" (
    "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "updateId" bigint NOT NULL REFERENCES "ProgramUpdates" ("id"),
    "order" integer NOT NULL,
    "kind" text NOT NULL,
    "message" text,
    "timestamp" timestamptz NOT NULL
);

CREATE TABLE IF NOT EXISTS "AccessTokens" (
    "id" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    "user" bigint NOT NULL REFERENCES "Users" ("id"),
    "description" text,
    "tokenHash" text NOT NULL UNIQUE,
    "scopes" text[] NOT NULL,
    "lastUsed" timestamptz,
    "expiresAt" timestamptz,
    "revoked" boolean NOT NULL DEFAULT false,
    "createdAt" timestamptz NOT NULL,
    "lastModified" timestamptz NOT NULL
);
"""

# Incremental replication reads the largest table in "lastModified" order.
UPDATES_INDEX_NAME = "ProgramUpdates_lastModified_idx"
UPDATES_INDEX_SQL = f'CREATE INDEX IF NOT EXISTS "{UPDATES_INDEX_NAME}" ON "ProgramUpdates" ("lastModified")'
SCHEMA_SQL += UPDATES_INDEX_SQL + ";\n"

# Text that breaks naive CSV, COPY or JSON handling. "\\N" is the COPY text
# format's NULL marker, and "" must stay distinct from NULL. Programs and
# AccessTokens cycle through all of them, so even small databases contain each.
TRICKY_TEXTS: tuple[str, ...] = (
    "Line one\nline two",
    "Windows line\r\nending",
    "Tab\tseparated\tvalues",
    "Back\\slash C:\\Users\\deploy\\",
    "Quoted \"double\" and 'single'",
    "Zürich café — naïve façade",
    "日本語のスタック 🚀",
    "Ελληνικά и русский текст",
    "",
    "  leading and trailing spaces  ",
    "Literal \\n is not a newline",
    "\\N",
    "NULL",
    "Comma, semicolon; pipe | end",
)

# (display form, ASCII form for user names and logins)
FIRST_NAMES: tuple[tuple[str, str], ...] = (
    ("Ana", "ana"), ("José", "jose"), ("Zoë", "zoe"), ("Björn", "bjorn"),
    ("Siobhán", "siobhan"), ("Łukasz", "lukasz"), ("Mei", "mei"),
    ("Ngozi", "ngozi"), ("Raj", "raj"), ("Ólafur", "olafur"), ("Hana", "hana"),
    ("Søren", "soren"), ("Chloé", "chloe"), ("Dmitri", "dmitri"),
    ("Aiko", "aiko"), ("Mateus", "mateus"), ("Fatima", "fatima"),
    ("Kwame", "kwame"), ("Ingrid", "ingrid"), ("Tomás", "tomas"),
)
LAST_NAMES: tuple[tuple[str, str], ...] = (
    ("García", "garcia"), ("Müller", "muller"), ("O'Brien", "obrien"),
    ("Nguyen", "nguyen"), ("Kowalski", "kowalski"), ("Svensson", "svensson"),
    ("Okafor", "okafor"), ("田中", "tanaka"), ("Rossi", "rossi"),
    ("Dubois", "dubois"), ("Patel", "patel"), ("Иванов", "ivanov"),
    ("Smith", "smith"), ("Núñez", "nunez"), ("Schäfer", "schafer"),
    ("Yılmaz", "yilmaz"), ("Kim", "kim"), ("Haddad", "haddad"),
    ("Larsen", "larsen"), ("Costa", "costa"),
)
ORG_WORDS: tuple[str, ...] = (
    "acme", "globex", "initech", "umbrella", "stark", "wayne", "tyrell",
    "cyberdyne", "soylent", "hooli", "vandelay", "wonka", "oscorp", "aperture",
)
ORG_PLANS: tuple[str, ...] = (
    ("individual",) * 3 + ("team",) * 4 + ("enterprise",) * 2 + ("business-critical",)
)
PROGRAM_WORDS: tuple[str, ...] = (
    "webapp", "api", "data-pipeline", "networking", "k8s-cluster", "dns",
    "monitoring", "iam", "billing-service", "search", "landing-page", "vpc",
)
RUNTIMES: tuple[str, ...] = ("nodejs",) * 4 + ("python",) * 3 + ("go",) * 2 + ("dotnet", "java", "yaml")
STACK_NAMES: tuple[str, ...] = ("dev", "staging", "prod", "prod-eu", "test", "qa", "sandbox")
TEAMS: tuple[str, ...] = ("platform", "payments", "growth", "data", "security", "ml")
MEMBER_ROLES: tuple[str, ...] = ("member",) * 7 + ("admin",) * 2 + ("billing-manager",)
# PostgreSQL array literals for the text[] column "scopes".
TOKEN_SCOPES: tuple[str, ...] = (
    "{read}", "{read,write}", "{read,write,admin}", "{}", '{"stacks:read","stacks:write"}',
)
TOKEN_DESCRIPTIONS: tuple[str, ...] = (
    "GitHub Actions deploy", "laptop", "CI", "Terraform import", "Backstage plugin",
    "Jenkins (legacy)", "ops automation",
)
TOKEN_LIFETIME_DAYS: tuple[int, ...] = (30, 90, 365)
COMMIT_MESSAGES: tuple[str, ...] = (
    "Bump instance size", "Add staging bucket", "Fix IAM policy for lambda",
    "Rotate database credentials", "Upgrade provider to v6", "Remove unused VPC",
    "Scale node pool to 5", "Enable deletion protection", "Refactor networking component",
    "Merge pull request #412 from feature/cdn\n\nAdd CloudFront distribution",
    "Revert \"Scale node pool\"", "Update README", "Pin AMI version", "Tag all resources",
)
RESOURCE_TYPES: tuple[str, ...] = (
    "aws:s3/bucket:Bucket", "aws:ec2/instance:Instance", "aws:iam/role:Role",
    "aws:lambda/function:Function", "gcp:compute/network:Network", "azure-native:web:WebApp",
    "kubernetes:apps/v1:Deployment", "random:index/randomPassword:RandomPassword",
)
UPDATE_CONFIGS: tuple[str, ...] = tuple(
    json.dumps(config, ensure_ascii=False)
    for config in (
        {"aws:region": "us-west-2"},
        {"aws:region": "eu-central-1", "app:replicas": 3},
        {"gcp:project": "acme-prod", "gcp:zone": "us-central1-a"},
        {"azure-native:location": "westeurope", "app:debug": False},
        {"app:greeting": "Grüß Gott\n\"quoted\"", "app:path": "C:\\deploy"},
        {"kubernetes:context": "prod", "app:limits": {"cpu": "500m", "memory": "1Gi"}},
        {},
    )
)

WEIGHT_TABLE_SIZE = 128


def _weighted_table(weights: Sequence[tuple[object, int]]) -> tuple:
    """Expand (value, weight) pairs into a 128-entry table indexed by ``getrandbits(7)``.

    One table lookup per row is several times cheaper than ``random.choices``,
    which matters for the million-row tables.
    """
    table = tuple(value for value, weight in weights for _ in range(weight))
    if len(table) != WEIGHT_TABLE_SIZE:
        raise ValueError(f"weights add up to {len(table)}, expected {WEIGHT_TABLE_SIZE}")
    return table


# About 45% update, 45% preview, 5.5% refresh and 4% destroy.
UPDATE_KIND_TABLE = _weighted_table([("update", 58), ("preview", 58), ("refresh", 7), ("destroy", 5)])
# About 85% succeeded, 9% failed, 2% cancelled and 3% still in progress.
UPDATE_RESULT_TABLE = _weighted_table(
    [("succeeded", 109), ("failed", 12), ("cancelled", 3), ("in-progress", 4)]
)
FINISHED_RESULT_TABLE = _weighted_table([("succeeded", 112), ("failed", 13), ("cancelled", 3)])
# 0 to 3 events per update, 1.25 on average. UpdateEvents has no last-modified
# column, so every sync copies it whole, which more events per update would slow.
EVENTS_PER_UPDATE_TABLE = _weighted_table([(0, 32), (1, 48), (2, 32), (3, 16)])
RESOURCE_EVENT_KIND_TABLE = _weighted_table(
    [("resource-pre", 32), ("resource-outputs", 64), ("diagnostic", 32)]
)

COPY_NULL = "\\N"


def _copy_text(value: str | None) -> str:
    """Return ``value`` as a field of COPY's text format: escaped, or the NULL marker.

    The membership tests skip the replacements for the common plain value.
    """
    if value is None:
        return COPY_NULL
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _copy_bool(value: bool) -> str:
    return "t" if value else "f"


def _copy_line(*fields: str) -> str:
    """Join fields that are already in COPY text format into one line."""
    return "\t".join(fields) + "\n"


# Commit messages: 12.5% NULL, 11% one of the tricky texts, the rest ordinary.
COPY_MESSAGE_TABLE = _weighted_table(
    [(COPY_NULL, 16)]
    + [(_copy_text(text), 1) for text in TRICKY_TEXTS]
    + [(_copy_text(message), 7) for message in COMMIT_MESSAGES]
)
COPY_CONFIG_TABLE = _weighted_table(
    [(_copy_text(config), weight) for config, weight in zip(UPDATE_CONFIGS, (32, 24, 24, 16, 8, 16, 8))]
)
COPY_TRICKY_TEXTS = tuple(_copy_text(text) for text in TRICKY_TEXTS)


def rows_for_scale(scale: float) -> dict[str, int]:
    """Return the planned row counts of the tables sized directly by ``scale``."""
    _check_scale(scale)
    return {table: max(1, round(rows * scale)) for table, rows in ROWS_AT_SCALE_1.items()}


def updates_rows_for_scale(scale: float) -> int:
    """Return the number of ``ProgramUpdates`` rows that ``populate(scale=...)`` creates."""
    return rows_for_scale(scale)["ProgramUpdates"]


def create_schema(conn: psycopg.Connection) -> None:
    """Create the enum types, tables and index that do not exist yet, then commit."""
    with conn.transaction():
        conn.execute(SCHEMA_SQL)
    _commit(conn)


def populate(
    conn: psycopg.Connection,
    scale: float = 1.0,
    seed: int = 7,
    *,
    replace: bool = False,
) -> dict[str, int]:
    """Fill every table with generated rows, commit, and return the rows per table.

    The tables must exist (see ``create_schema``). Tables that already contain
    rows raise ``ValueError`` unless ``replace`` is true, which truncates them
    first so that the result depends only on ``scale`` and ``seed``. The
    foreign keys and the ``"lastModified"`` index of ``ProgramUpdates`` are
    dropped for the load and created again afterwards, because one pass per
    key or index costs less than a trigger call or an index insert per row.
    """
    _check_scale(scale)
    planned = rows_for_scale(scale)

    with conn.transaction(), conn.cursor() as cur:
        non_empty = [table for table in TABLES if _table_has_rows(cur, table)]
        if non_empty and not replace:
            raise ValueError(
                f"cannot populate: tables {', '.join(non_empty)} already contain rows. "
                "Pass replace=True to truncate them first."
            )
        if non_empty:
            cur.execute(
                sql.SQL("TRUNCATE {} RESTART IDENTITY").format(
                    sql.SQL(", ").join(sql.Identifier(table) for table in TABLES)
                )
            )

        _drop_foreign_keys(cur)
        cur.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(UPDATES_INDEX_NAME)))
        generator = _Generator(seed=f"populate:{seed}", origin=BASE_TIME, context=_Context())
        counts = generator.write_all(
            cur,
            users=planned["Users"],
            organizations=planned["Organizations"],
            programs=planned["Programs"],
            stacks=planned["Stacks"],
            updates=planned["ProgramUpdates"],
            tokens=planned["AccessTokens"],
            entity_span=ENTITY_SPAN_SECONDS,
            update_span=UPDATE_SPAN_SECONDS,
        )
        _add_foreign_keys(cur)
        cur.execute(UPDATES_INDEX_SQL)
        _restart_identities(cur)

    _commit(conn)
    return counts


def apply_changes(
    conn: psycopg.Connection,
    seed: int,
    fraction: float = 0.01,
    new_rows_scale: float = 0.02,
) -> dict[str, dict[str, int]]:
    """Simulate one day of activity, commit, and return the inserted and updated rows per table.

    The day starts one second after the latest ``"lastModified"`` value of any
    table, so every inserted or updated row of a table with that column is
    newer than all of its rows before the call. ``fraction`` of the existing
    rows of each table except ``UpdateEvents`` is updated, and
    ``new_rows_scale`` sizes the new rows like ``populate(scale=...)`` sizes a
    database, so 0.02 adds 10 users and 100 updates. The result depends only on
    ``seed`` and the database contents, so call it again with a new seed to
    simulate the next day.
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"invalid fraction {fraction!r}: expected a number from 0 to 1")
    if new_rows_scale < 0:
        raise ValueError(f"invalid new_rows_scale {new_rows_scale!r}: expected 0 or more")

    with conn.transaction(), conn.cursor() as cur:
        if not (_table_has_rows(cur, "Users") and _table_has_rows(cur, "Stacks")):
            raise ValueError("cannot apply changes: the database has no users or stacks. Run populate first.")
        day_start = _next_change_time(cur)
        rng_seed = f"changes:{seed}"
        updated = _update_existing_rows(cur, _Random(f"{rng_seed}:updates"), day_start, fraction)

        inserted = {table: 0 for table in TABLES}
        if new_rows_scale > 0:
            planned = {
                table: round(rows * new_rows_scale) for table, rows in ROWS_AT_SCALE_1.items()
            }
            generator = _Generator(seed=rng_seed, origin=day_start, context=_load_context(cur))
            inserted = generator.write_all(
                cur,
                users=planned["Users"],
                organizations=planned["Organizations"],
                programs=planned["Programs"],
                stacks=planned["Stacks"],
                updates=planned["ProgramUpdates"],
                tokens=planned["AccessTokens"],
                entity_span=CHANGE_DAY_SECONDS // 2,
                update_span=CHANGE_DAY_SECONDS // 2,
            )
            _restart_identities(cur)

    _commit(conn)
    return {table: {"inserted": inserted[table], "updated": updated[table]} for table in TABLES}


def _check_scale(scale: float) -> None:
    if not scale > 0:
        raise ValueError(f"invalid scale {scale!r}: expected a number greater than 0")


def _commit(conn: psycopg.Connection) -> None:
    if not conn.autocommit:
        conn.commit()


def _table_has_rows(cur: psycopg.Cursor, table: str) -> bool:
    cur.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(sql.Identifier(table)))
    return cur.fetchone()[0]


def _foreign_key_name(table: str, column: str) -> sql.Identifier:
    return sql.Identifier(f"{table}_{column}_fkey")


def _drop_foreign_keys(cur: psycopg.Cursor) -> None:
    for table, column, _ in FOREIGN_KEYS:
        cur.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(
                sql.Identifier(table), _foreign_key_name(table, column)
            )
        )


def _add_foreign_keys(cur: psycopg.Cursor) -> None:
    for table, column, referenced_table in FOREIGN_KEYS:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})").format(
                sql.Identifier(table),
                _foreign_key_name(table, column),
                sql.Identifier(column),
                sql.Identifier(referenced_table),
                sql.Identifier("id"),
            )
        )


def _restart_identities(cur: psycopg.Cursor) -> None:
    """Move each identity sequence past the explicit ids that COPY wrote."""
    for table in TABLES:
        if table == "OrganizationMembers":
            continue
        cur.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max({id}), 0) + 1, false)"
                " FROM {table}"
            ).format(id=sql.Identifier("id"), table=sql.Identifier(table)),
            (sql.Identifier(table).as_string(cur),),
        )


COPY_BATCH_LINES = 10_000


def _copy_lines(cur: psycopg.Cursor, table: str, columns: Sequence[str], lines: Iterable[str]) -> int:
    """Load COPY text-format lines into ``table`` and return how many were written.

    Lines are sent in batches because one ``write`` call per row costs more than
    generating the row.
    """
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(column) for column in columns)
    )
    count = 0
    line_iterator = iter(lines)
    with cur.copy(statement) as copy:
        while batch := list(itertools.islice(line_iterator, COPY_BATCH_LINES)):
            copy.write("".join(batch))
            count += len(batch)
    return count


class _Random(random.Random):
    """``random.Random`` with cheaper draws for the loops that run per row.

    ``below`` and ``pick`` scale 32 random bits instead of calling
    ``randrange``, which is several times slower. The relative bias is at most
    bound / 2**32, under 0.2% for the largest bound used here (90 days in seconds).
    """

    def below(self, bound: int) -> int:
        return (self.getrandbits(32) * bound) >> 32

    def pick(self, values: Sequence[T]) -> T:
        return values[(self.getrandbits(32) * len(values)) >> 32]

    def chance(self, probability: float) -> bool:
        return self.random() < probability


class _TimestampFormatter:
    """Formatter of times, given in whole seconds from ``origin``, as UTC timestamptz text.

    Joining a cached hour prefix to one of 3,600 precomputed "MM:SS+00"
    suffixes is several times faster than ``datetime`` arithmetic and
    ``isoformat``, which matters at millions of values.
    """

    SUFFIXES = tuple(f"{second // 60:02d}:{second % 60:02d}+00" for second in range(3_600))

    def __init__(self, origin: datetime) -> None:
        self.origin_seconds = int(origin.timestamp())
        self.hour_prefixes: dict[int, str] = {}

    def __call__(self, seconds: int) -> str:
        hour, second_of_hour = divmod(self.origin_seconds + seconds, 3_600)
        prefix = self.hour_prefixes.get(hour) or self.hour_prefix(hour)
        return prefix + self.SUFFIXES[second_of_hour]

    def hour_prefix(self, hour: int) -> str:
        """Return and cache the "YYYY-MM-DD HH:" text of ``hour`` hours after the Unix epoch."""
        prefix = (UNIX_EPOCH + timedelta(hours=hour)).strftime("%Y-%m-%d %H:")
        self.hour_prefixes[hour] = prefix
        return prefix

    def optional(self, seconds: int | None) -> str:
        return COPY_NULL if seconds is None else self(seconds)


USER_COLUMNS = (
    "id", "userName", "displayName", "email", "githubLogin", "passwordHash",
    "isSiteAdmin", "createdAt", "lastModified",
)
ORGANIZATION_COLUMNS = (
    "id", "orgName", "displayName", "billingEmail", "plan", "creditBalance",
    "samlEnabled", "allowedDomains", "encryptedSecret", "createdAt", "lastModified",
)
MEMBER_COLUMNS = ("organizationId", "userId", "role", "joinedAt")
PROGRAM_COLUMNS = (
    "id", "organizationId", "name", "description", "runtime", "repositoryUrl",
    "createdAt", "lastModified",
)
STACK_COLUMNS = ("id", "programId", "name", "tags", "resourceCount", "createdAt", "lastModified")
UPDATE_COLUMNS = (
    "id", "stackId", "requestedBy", "kind", "result", "version", "startTime", "endTime",
    "message", "config", "resourceChanges", "pinned", "lastModified",
)
EVENT_COLUMNS = ("id", "updateId", "order", "kind", "message", "timestamp")
TOKEN_COLUMNS = (
    "id", "user", "description", "tokenHash", "scopes", "lastUsed", "expiresAt",
    "revoked", "createdAt", "lastModified",
)


@dataclass
class _Parents:
    """Ids of rows that new child rows may reference, in creation order.

    ``created`` contains creation times in seconds from the generator's origin, in
    ascending order, so the rows that existed at a given time are a prefix.
    """

    ids: list[int] = field(default_factory=list)
    created: list[int] = field(default_factory=list)

    def add(self, row_id: int, created: int) -> None:
        self.ids.append(row_id)
        self.created.append(created)

    def pick(self, rng: _Random, at: int) -> int:
        """Return a random id among the rows created at or before ``at`` (the first row if none)."""
        existing = bisect_right(self.created, at) or 1
        return self.ids[rng.below(existing)]


@dataclass
class _Context:
    """Rows already in the database that generated rows refer to or must not collide with."""

    next_ids: dict[str, int] = field(default_factory=lambda: {table: 1 for table in TABLES})
    users: _Parents = field(default_factory=_Parents)
    organizations: _Parents = field(default_factory=_Parents)
    programs: _Parents = field(default_factory=_Parents)
    stacks: _Parents = field(default_factory=_Parents)
    organization_names: dict[int, str] = field(default_factory=dict)
    organization_members: dict[int, list[int]] = field(default_factory=dict)
    program_organization: dict[int, int] = field(default_factory=dict)
    stack_organization: dict[int, int] = field(default_factory=dict)
    stack_names: set[tuple[int, str]] = field(default_factory=set)
    stack_versions: dict[int, int] = field(default_factory=dict)


def _load_context(cur: psycopg.Cursor) -> _Context:
    """Read the ids and relations that new rows of ``apply_changes`` build on.

    Existing rows get creation time -1, before the day's origin, so every one of
    them may be referenced. Each query orders its rows so the generated
    changes depend only on the database contents.
    """
    context = _Context()
    for table in TABLES:
        if table == "OrganizationMembers":
            continue
        cur.execute(
            sql.SQL("SELECT coalesce(max({}), 0) + 1 FROM {}").format(
                sql.Identifier("id"), sql.Identifier(table)
            )
        )
        context.next_ids[table] = cur.fetchone()[0]

    for (user_id,) in cur.execute('SELECT "id" FROM "Users" ORDER BY "id"'):
        context.users.add(user_id, -1)
    for org_id, org_name in cur.execute('SELECT "id", "orgName" FROM "Organizations" ORDER BY "id"'):
        context.organizations.add(org_id, -1)
        context.organization_names[org_id] = org_name
    for org_id, user_id in cur.execute(
        'SELECT "organizationId", "userId" FROM "OrganizationMembers" ORDER BY 1, 2'
    ):
        context.organization_members.setdefault(org_id, []).append(user_id)
    for program_id, org_id in cur.execute('SELECT "id", "organizationId" FROM "Programs" ORDER BY "id"'):
        context.programs.add(program_id, -1)
        context.program_organization[program_id] = org_id
    for stack_id, program_id, name in cur.execute(
        'SELECT "id", "programId", "name" FROM "Stacks" ORDER BY "id"'
    ):
        context.stacks.add(stack_id, -1)
        context.stack_organization[stack_id] = context.program_organization[program_id]
        context.stack_names.add((program_id, name))
    for stack_id, version in cur.execute(
        'SELECT "stackId", max("version") FROM "ProgramUpdates" GROUP BY 1 ORDER BY 1'
    ):
        context.stack_versions[stack_id] = version
    return context


class _Generator:
    """Generator of the rows of every table, which it writes with ``COPY``.

    Times are whole seconds from ``origin``. Each table draws from its own
    random stream, so a change to one table's generator leaves the other
    tables' values as they were.
    """

    def __init__(self, seed: str, origin: datetime, context: _Context) -> None:
        self.seed = seed
        self.timestamp = _TimestampFormatter(origin)
        self.context = context
        self.organization_creators: dict[int, int] = {}
        self.first_update_id = context.next_ids["ProgramUpdates"]
        self.update_starts = array("q")
        self.update_ends = array("q")

    def rng(self, table: str) -> _Random:
        return _Random(f"{self.seed}:{table}")

    def write_all(
        self,
        cur: psycopg.Cursor,
        *,
        users: int,
        organizations: int,
        programs: int,
        stacks: int,
        updates: int,
        tokens: int,
        entity_span: int,
        update_span: int,
    ) -> dict[str, int]:
        """Write the rows of all tables in dependency order and return the counts."""
        counts = {table: 0 for table in TABLES}
        counts["Users"] = _copy_lines(cur, "Users", USER_COLUMNS, self.users(users, entity_span))
        counts["Organizations"] = _copy_lines(
            cur, "Organizations", ORGANIZATION_COLUMNS, self.organizations(organizations, entity_span)
        )
        new_user_ids = self.context.users.ids[len(self.context.users.ids) - counts["Users"]:]
        new_org_ids = self.context.organizations.ids[
            len(self.context.organizations.ids) - counts["Organizations"]:
        ]
        counts["OrganizationMembers"] = _copy_lines(
            cur, "OrganizationMembers", MEMBER_COLUMNS, self.members(new_user_ids, new_org_ids)
        )
        counts["Programs"] = _copy_lines(
            cur, "Programs", PROGRAM_COLUMNS, self.programs(programs, entity_span)
        )
        counts["Stacks"] = _copy_lines(cur, "Stacks", STACK_COLUMNS, self.stacks(stacks, entity_span))
        counts["ProgramUpdates"] = _copy_lines(
            cur, "ProgramUpdates", UPDATE_COLUMNS, self.updates(updates, update_span)
        )
        counts["UpdateEvents"] = _copy_lines(cur, "UpdateEvents", EVENT_COLUMNS, self.events())
        counts["AccessTokens"] = _copy_lines(
            cur, "AccessTokens", TOKEN_COLUMNS, self.tokens(tokens, entity_span, update_span)
        )
        return counts

    @staticmethod
    def spread(rng: _Random, index: int, count: int, span: int) -> int:
        """Return the time of row ``index`` of ``count``, ascending over ``span`` seconds."""
        return span * index // count + rng.below(span // count)

    @staticmethod
    def modified_after(rng: _Random, created: int, span: int) -> int:
        """Return a last-modified time after ``created``: half the rows never changed."""
        if rng.chance(0.5) or created >= span:
            return created
        return created + rng.below(span - created)

    def users(self, count: int, span: int) -> Iterator[str]:
        rng = self.rng("Users")
        first_id = self.context.next_ids["Users"]
        for index in range(count):
            user_id = first_id + index
            first, first_ascii = rng.pick(FIRST_NAMES)
            last, last_ascii = rng.pick(LAST_NAMES)
            user_name = f"{first_ascii}-{last_ascii}-{user_id}"
            display_name = None if rng.chance(0.05) else f"{first} {last}"
            github_login = None if rng.chance(0.3) else f"{first_ascii}{last_ascii}{user_id}"
            password_hash = f"$2b$12${rng.getrandbits(212):053x}"
            created = self.spread(rng, index, count, span)
            modified = self.modified_after(rng, created, span)
            self.context.users.add(user_id, created)
            yield _copy_line(
                str(user_id),
                user_name,
                _copy_text(display_name),
                f"{user_name}@example.com",
                _copy_text(github_login),
                password_hash,
                _copy_bool(rng.chance(0.01)),
                self.timestamp(created),
                self.timestamp(modified),
            )

    def organizations(self, count: int, span: int) -> Iterator[str]:
        rng = self.rng("Organizations")
        first_id = self.context.next_ids["Organizations"]
        for index in range(count):
            org_id = first_id + index
            word = rng.pick(ORG_WORDS)
            org_name = f"{word}-{org_id}"
            created = self.spread(rng, index, count, span)
            modified = self.modified_after(rng, created, span)
            domains_roll = rng.random()
            if domains_roll < 0.3:
                allowed_domains = None
            elif domains_roll < 0.5:
                allowed_domains = "{}"
            else:
                allowed_domains = f"{{{org_name}.example,{word}.example}}"
            cents = rng.below(5_000_000)
            self.context.organizations.add(org_id, created)
            self.context.organization_names[org_id] = org_name
            self.organization_creators[org_id] = self.context.users.pick(rng, created)
            yield _copy_line(
                str(org_id),
                org_name,
                _copy_text(None if rng.chance(0.1) else f"{word.title()} Org {org_id}"),
                _copy_text(None if rng.chance(0.2) else f"billing@{org_name}.example"),
                rng.pick(ORG_PLANS),
                f"{cents // 100}.{cents % 100:02d}",
                _copy_bool(rng.chance(0.15)),
                _copy_text(allowed_domains),
                f"enc:v1:{rng.getrandbits(256):064x}",
                self.timestamp(created),
                self.timestamp(modified),
            )

    def members(self, user_ids: Sequence[int], org_ids: Sequence[int]) -> Iterator[str]:
        """Yield an admin for each new organization and 1 to 3 memberships per new user."""
        rng = self.rng("OrganizationMembers")
        user_created = dict(zip(self.context.users.ids, self.context.users.created))
        org_created = dict(zip(self.context.organizations.ids, self.context.organizations.created))
        seen: set[tuple[int, int]] = set()
        pairs: list[tuple[int, int, str]] = []
        for org_id in org_ids:
            creator = self.organization_creators[org_id]
            seen.add((org_id, creator))
            pairs.append((org_id, creator, "admin"))
        all_orgs = self.context.organizations.ids
        for user_id in user_ids:
            memberships = 1 + rng.chance(0.4) + rng.chance(0.15)
            for _ in range(memberships):
                org_id = rng.pick(all_orgs)
                if (org_id, user_id) in seen:
                    continue
                seen.add((org_id, user_id))
                pairs.append((org_id, user_id, rng.pick(MEMBER_ROLES)))
        for org_id, user_id, role in pairs:
            self.context.organization_members.setdefault(org_id, []).append(user_id)
            joined = max(user_created[user_id], org_created[org_id], 0) + rng.below(86_400)
            yield _copy_line(str(org_id), str(user_id), role, self.timestamp(joined))

    def programs(self, count: int, span: int) -> Iterator[str]:
        rng = self.rng("Programs")
        first_id = self.context.next_ids["Programs"]
        tricky_texts = itertools.cycle(TRICKY_TEXTS)
        for index in range(count):
            program_id = first_id + index
            created = self.spread(rng, index, count, span)
            org_id = self.context.organizations.pick(rng, created)
            name = f"{rng.pick(PROGRAM_WORDS)}-{program_id}"
            runtime = rng.pick(RUNTIMES)
            roll = rng.random()
            if roll < 0.15:
                description = None
            elif roll < 0.35:
                description = next(tricky_texts)
            else:
                description = f"{runtime} program that manages {name}"
            repository_url = (
                None
                if rng.chance(0.2)
                else f"https://github.com/{self.context.organization_names[org_id]}/{name}"
            )
            self.context.programs.add(program_id, created)
            self.context.program_organization[program_id] = org_id
            yield _copy_line(
                str(program_id),
                str(org_id),
                name,
                _copy_text(description),
                runtime,
                _copy_text(repository_url),
                self.timestamp(created),
                self.timestamp(self.modified_after(rng, created, span)),
            )

    def stacks(self, count: int, span: int) -> Iterator[str]:
        rng = self.rng("Stacks")
        first_id = self.context.next_ids["Stacks"]
        for index in range(count):
            stack_id = first_id + index
            created = self.spread(rng, index, count, span)
            program_id = self.context.programs.pick(rng, created)
            name = rng.pick(STACK_NAMES)
            if (program_id, name) in self.context.stack_names:
                name = f"{name}-{stack_id}"
            self.context.stack_names.add((program_id, name))
            self.context.stacks.add(stack_id, created)
            self.context.stack_organization[stack_id] = self.context.program_organization[program_id]
            yield _copy_line(
                str(stack_id),
                str(program_id),
                name,
                _copy_text(_stack_tags(rng, name)),
                str(rng.below(400)),
                self.timestamp(created),
                self.timestamp(self.modified_after(rng, created, span)),
            )

    def updates(self, count: int, span: int) -> Iterator[str]:
        """Yield updates in start-time order and record their times for ``events``.

        Each update runs on a stack that existed when it started and is
        requested by a member of the stack's organization. This loop runs a
        million times at scale 200, so it binds methods to local names, formats
        timestamps inline and draws small numbers with ``getrandbits``.
        """
        rng = self.rng("ProgramUpdates")
        bits = rng.getrandbits
        stack_ids = self.context.stacks.ids
        stack_created = self.context.stacks.created
        stack_members = {
            stack_id: self.context.organization_members.get(org_id) or self.context.users.ids
            for stack_id, org_id in self.context.stack_organization.items()
        }
        versions = self.context.stack_versions
        starts = self.update_starts
        ends = self.update_ends
        origin_seconds = self.timestamp.origin_seconds
        hour_prefixes = self.timestamp.hour_prefixes
        hour_prefix = self.timestamp.hour_prefix
        suffixes = _TimestampFormatter.SUFFIXES
        slot = span // count if count else 0

        for index in range(count):
            update_id = self.first_update_id + index
            start = span * index // count + ((bits(32) * slot) >> 32)
            stack_id = stack_ids[(bits(32) * (bisect_right(stack_created, start) or 1)) >> 32]
            members = stack_members[stack_id]
            requested_by = members[(bits(32) * len(members)) >> 32]
            version = versions.get(stack_id, 0) + 1
            versions[stack_id] = version
            kind = UPDATE_KIND_TABLE[bits(7)]
            result = UPDATE_RESULT_TABLE[bits(7)]

            hour, second = divmod(origin_seconds + start, 3_600)
            start_text = (hour_prefixes.get(hour) or hour_prefix(hour)) + suffixes[second]
            if result == "in-progress":
                end = -1
                end_text = COPY_NULL
                modified_text = start_text
            else:
                end = start + 5 + (bits(7) if kind == "preview" else bits(11))
                hour, second = divmod(origin_seconds + end, 3_600)
                end_text = (hour_prefixes.get(hour) or hour_prefix(hour)) + suffixes[second]
                modified_text = end_text

            if kind == "refresh" or bits(5) == 0:
                changes = COPY_NULL
            else:
                changes = (
                    f'{{"create": {bits(3)}, "same": {bits(6)}, "update": {bits(2)}, "delete": {bits(2)}}}'
                )
            message = COPY_MESSAGE_TABLE[bits(7)]
            config = COPY_CONFIG_TABLE[bits(7)]
            pinned = "t" if bits(6) == 0 else "f"

            starts.append(start)
            ends.append(end)
            yield (
                f"{update_id}\t{stack_id}\t{requested_by}\t{kind}\t{result}\t{version}\t"
                f"{start_text}\t{end_text}\t{message}\t{config}\t{changes}\t{pinned}\t"
                f"{modified_text}\n"
            )

    def events(self) -> Iterator[str]:
        """Yield 0 to 3 log events per update written by ``updates``, within its run time.

        Like ``updates``, this loop is written for speed: about 1.25 million
        rows at scale 200.
        """
        rng = self.rng("UpdateEvents")
        bits = rng.getrandbits
        event_id = self.context.next_ids["UpdateEvents"]
        origin_seconds = self.timestamp.origin_seconds
        hour_prefixes = self.timestamp.hour_prefixes
        hour_prefix = self.timestamp.hour_prefix
        suffixes = _TimestampFormatter.SUFFIXES

        for offset, start in enumerate(self.update_starts):
            update_id = self.first_update_id + offset
            end = self.update_ends[offset]
            event_count = EVENTS_PER_UPDATE_TABLE[bits(7)]
            run_seconds = 60 if end < 0 else end - start
            for order in range(1, event_count + 1):
                if order == 1:
                    kind = "prelude"
                    message = f"Updating stack with {bits(5)} config values"
                elif order == event_count and end >= 0:
                    kind = "summary"
                    # Written in COPY text format, where "\\n" is a newline.
                    message = f"Resources: {bits(6)} unchanged\\nDuration: {run_seconds}s"
                else:
                    kind = RESOURCE_EVENT_KIND_TABLE[bits(7)]
                    if bits(7) < 13:
                        message = COPY_TRICKY_TEXTS[(bits(32) * len(COPY_TRICKY_TEXTS)) >> 32]
                    else:
                        resource_type = RESOURCE_TYPES[(bits(32) * len(RESOURCE_TYPES)) >> 32]
                        message = f"+  {resource_type} resource-{event_id} created"
                at = start + run_seconds * order // (event_count + 1)
                hour, second = divmod(origin_seconds + at, 3_600)
                at_text = (hour_prefixes.get(hour) or hour_prefix(hour)) + suffixes[second]
                yield f"{event_id}\t{update_id}\t{order}\t{kind}\t{message}\t{at_text}\n"
                event_id += 1

    def tokens(self, count: int, span: int, history_end: int) -> Iterator[str]:
        rng = self.rng("AccessTokens")
        first_id = self.context.next_ids["AccessTokens"]
        tricky_texts = itertools.cycle(TRICKY_TEXTS)
        for index in range(count):
            token_id = first_id + index
            created = self.spread(rng, index, count, span)
            user_id = self.context.users.pick(rng, created)
            roll = rng.random()
            if roll < 0.1:
                description = None
            elif roll < 0.15:
                description = ""
            elif roll < 0.25:
                description = next(tricky_texts)
            else:
                description = rng.pick(TOKEN_DESCRIPTIONS)
            last_used = None if rng.chance(0.2) else created + rng.below(max(1, history_end - created))
            expires = None if rng.chance(0.5) else created + rng.pick(TOKEN_LIFETIME_DAYS) * 86_400
            modified = created if last_used is None else last_used
            yield _copy_line(
                str(token_id),
                str(user_id),
                _copy_text(description),
                f"pul-{rng.getrandbits(160):040x}",
                rng.pick(TOKEN_SCOPES),
                self.timestamp.optional(last_used),
                self.timestamp.optional(expires),
                _copy_bool(rng.chance(0.05)),
                self.timestamp(created),
                self.timestamp(modified),
            )


def _stack_tags(rng: _Random, stack_name: str) -> str:
    """Return a stack's tags as JSON text. 10% are empty and 10% contain a tricky text."""
    roll = rng.random()
    team = rng.pick(TEAMS)
    if roll < 0.1:
        return "{}"
    if roll < 0.3:
        return f'{{"env": "{stack_name}", "team": "{team}", "cost-center": "cc-{rng.below(1000):03d}"}}'
    if roll < 0.4:
        tags = {
            "env": stack_name,
            "team": team,
            "owner": rng.pick(FIRST_NAMES)[0],
            "note": rng.pick(TRICKY_TEXTS),
        }
        return json.dumps(tags, ensure_ascii=False)
    return f'{{"env": "{stack_name}", "team": "{team}"}}'


def _next_change_time(cur: psycopg.Cursor) -> datetime:
    """Return one second after the latest last-modified value of any table, in whole seconds."""
    tables = [table for table in TABLES if table not in FULL_TABLE_TABLES]
    latest = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT max({}) AS latest FROM {}").format(
            sql.Identifier(LAST_MODIFIED_COLUMN), sql.Identifier(table)
        )
        for table in tables
    )
    cur.execute(sql.SQL("SELECT max(latest) FROM ({}) AS per_table").format(latest))
    latest_time = cur.fetchone()[0]
    if latest_time is None:
        latest_time = BASE_TIME
    return latest_time.replace(microsecond=0) + timedelta(seconds=1)


def _sample_ids(cur: psycopg.Cursor, rng: _Random, table: str, fraction: float) -> list[int]:
    """Pick ``fraction`` of the ids between the minimum and maximum id of ``table``.

    Ids are dense because rows are never deleted, so sampling the range picks
    existing rows. An id that was deleted by hand is simply not updated.
    """
    cur.execute(
        sql.SQL("SELECT min({id}), max({id}), count(*) FROM {table}").format(
            id=sql.Identifier("id"), table=sql.Identifier(table)
        )
    )
    low, high, row_count = cur.fetchone()
    sample_size = round(row_count * fraction)
    if sample_size == 0:
        return []
    return rng.sample(range(low, high + 1), min(sample_size, high - low + 1))


def _change_times(rng: _Random, day_start: datetime, count: int) -> list[datetime]:
    return [day_start + timedelta(seconds=rng.below(CHANGE_DAY_SECONDS)) for _ in range(count)]


def _update_existing_rows(
    cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float
) -> dict[str, int]:
    """Change ``fraction`` of the rows of each table except UpdateEvents and return the rows changed."""
    updated = {table: 0 for table in TABLES}
    updated["Users"] = _update_users(cur, rng, day_start, fraction)
    updated["Organizations"] = _update_organizations(cur, rng, day_start, fraction)
    updated["OrganizationMembers"] = _update_members(cur, rng, day_start, fraction)
    updated["Programs"] = _update_programs(cur, rng, day_start, fraction)
    updated["Stacks"] = _update_stacks(cur, rng, day_start, fraction)
    updated["ProgramUpdates"] = _update_program_updates(cur, rng, day_start, fraction)
    updated["AccessTokens"] = _update_tokens(cur, rng, day_start, fraction)
    return updated


def _update_users(cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float) -> int:
    """Rename users."""
    user_ids = _sample_ids(cur, rng, "Users", fraction)
    display_names = [
        None if rng.chance(0.05) else f"{rng.pick(FIRST_NAMES)[0]} {rng.pick(LAST_NAMES)[0]}"
        for _ in user_ids
    ]
    cur.execute(
        """
        UPDATE "Users" AS target
        SET "displayName" = change.display_name, "lastModified" = change.modified
        FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS change(id, display_name, modified)
        WHERE target."id" = change.id
        """,
        (user_ids, display_names, _change_times(rng, day_start, len(user_ids))),
    )
    return cur.rowcount


def _update_organizations(cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float) -> int:
    """Change organizations' credit balance and plan."""
    org_ids = _sample_ids(cur, rng, "Organizations", fraction)
    balances = [f"{rng.below(5_000_000) / 100:.2f}" for _ in org_ids]
    plans = [rng.pick(ORG_PLANS) for _ in org_ids]
    cur.execute(
        """
        UPDATE "Organizations" AS target
        SET "creditBalance" = change.balance, "plan" = change.plan, "lastModified" = change.modified
        FROM unnest(%s::bigint[], %s::numeric[], %s::text[], %s::timestamptz[])
            AS change(id, balance, plan, modified)
        WHERE target."id" = change.id
        """,
        (org_ids, balances, plans, _change_times(rng, day_start, len(org_ids))),
    )
    return cur.rowcount


def _update_members(cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float) -> int:
    """Change members' roles. The table has no last-modified column."""
    members = cur.execute(
        'SELECT "organizationId", "userId" FROM "OrganizationMembers" ORDER BY 1, 2'
    ).fetchall()
    changed_members = rng.sample(members, round(len(members) * fraction))
    cur.execute(
        """
        UPDATE "OrganizationMembers" AS target
        SET "role" = change.role
        FROM unnest(%s::bigint[], %s::bigint[], %s::text[]) AS change(organization_id, user_id, role)
        WHERE target."organizationId" = change.organization_id AND target."userId" = change.user_id
        """,
        (
            [org_id for org_id, _ in changed_members],
            [user_id for _, user_id in changed_members],
            [rng.pick(MEMBER_ROLES) for _ in changed_members],
        ),
    )
    return cur.rowcount


def _update_programs(cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float) -> int:
    """Rewrite program descriptions."""
    program_ids = _sample_ids(cur, rng, "Programs", fraction)
    descriptions = [
        rng.pick(TRICKY_TEXTS) if rng.chance(0.3) else f"Program revised on day {day_start:%Y-%m-%d}"
        for _ in program_ids
    ]
    cur.execute(
        """
        UPDATE "Programs" AS target
        SET "description" = change.description, "lastModified" = change.modified
        FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS change(id, description, modified)
        WHERE target."id" = change.id
        """,
        (program_ids, descriptions, _change_times(rng, day_start, len(program_ids))),
    )
    return cur.rowcount


def _update_stacks(cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float) -> int:
    """Retag stacks and change their resource counts."""
    stack_ids = _sample_ids(cur, rng, "Stacks", fraction)
    tags = [_stack_tags(rng, rng.pick(STACK_NAMES)) for _ in stack_ids]
    resource_counts = [rng.below(400) for _ in stack_ids]
    cur.execute(
        """
        UPDATE "Stacks" AS target
        SET "tags" = change.tags::jsonb, "resourceCount" = change.resource_count,
            "lastModified" = change.modified
        FROM unnest(%s::bigint[], %s::text[], %s::integer[], %s::timestamptz[])
            AS change(id, tags, resource_count, modified)
        WHERE target."id" = change.id
        """,
        (stack_ids, tags, resource_counts, _change_times(rng, day_start, len(stack_ids))),
    )
    return cur.rowcount


def _update_program_updates(cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float) -> int:
    """Finish updates still in progress, and pin or unpin finished ones."""
    update_ids = _sample_ids(cur, rng, "ProgramUpdates", fraction)
    final_results = [FINISHED_RESULT_TABLE[rng.getrandbits(7)] for _ in update_ids]
    cur.execute(
        """
        UPDATE "ProgramUpdates" AS target
        SET "result" = CASE WHEN target."result" = 'in-progress'
                            THEN change.result::"UpdateResult" ELSE target."result" END,
            "endTime" = CASE WHEN target."result" = 'in-progress'
                             THEN change.modified ELSE target."endTime" END,
            "pinned" = CASE WHEN target."result" = 'in-progress'
                            THEN target."pinned" ELSE NOT target."pinned" END,
            "lastModified" = change.modified
        FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[]) AS change(id, result, modified)
        WHERE target."id" = change.id
        """,
        (update_ids, final_results, _change_times(rng, day_start, len(update_ids))),
    )
    return cur.rowcount


def _update_tokens(cur: psycopg.Cursor, rng: _Random, day_start: datetime, fraction: float) -> int:
    """Record token use, and revoke one token in ten."""
    token_ids = _sample_ids(cur, rng, "AccessTokens", fraction)
    used_times = _change_times(rng, day_start, len(token_ids))
    revoked = [rng.chance(0.1) for _ in token_ids]
    cur.execute(
        """
        UPDATE "AccessTokens" AS target
        SET "lastUsed" = change.modified, "revoked" = target."revoked" OR change.revoked,
            "lastModified" = change.modified
        FROM unnest(%s::bigint[], %s::boolean[], %s::timestamptz[]) AS change(id, revoked, modified)
        WHERE target."id" = change.id
        """,
        (token_ids, revoked, used_times),
    )
    return cur.rowcount
