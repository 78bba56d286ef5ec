"""Column types inferred from JSON values, and the conversion of values to them.

The types are ``integer``, ``number`` (float), ``boolean``, ``timestamp`` (a
string that starts with YYYY-MM-DD and that ``datetime.fromisoformat``
parses) and ``string``. A column takes the type of its first value and widens
when a value does not fit: integer and number give number, and any other mix
gives string. A value in a string column is written as its JSON text
(``true``, ``12``, ``1.5``), so no value is dropped or replaced by NULL.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone

INTEGER = "integer"
NUMBER = "number"
BOOLEAN = "boolean"
TIMESTAMP = "timestamp"
STRING = "string"
TYPES = (INTEGER, NUMBER, BOOLEAN, TIMESTAMP, STRING)

# Redshift's and PostgreSQL's BIGINT range. A larger integer is kept as text.
BIGINT_MIN = -(2**63)
BIGINT_MAX = 2**63 - 1

# Redshift's maximum VARCHAR length in bytes. target-redshift 1.6.0 creates
# VARCHAR(10000) unless the schema's maxLength is larger.
LONG_TEXT_BYTES = 65535


def _looks_like_date(text: str) -> bool:
    # Python's fromisoformat alone also accepts forms such as "20261101" or
    # "2026-W44-1", which are far more often order numbers or codes than
    # timestamps, so a timestamp must start with YYYY-MM-DD.
    return len(text) >= 10 and text[4] == "-" and text[7] == "-" and len(text) <= 40


def parse_timestamp(text: str) -> datetime | None:
    """Parse an ISO-8601 date or date-time that starts with YYYY-MM-DD, or return None.

    A value without an offset is taken as UTC, as Segment's timestamps are.
    """
    if not _looks_like_date(text):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment


def format_timestamp(moment: datetime) -> str:
    """Format ``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def value_type(value: object) -> str:
    """Return the column type that ``value`` fits, for a str, bool, int or float."""
    kind = type(value)
    if kind is str:
        # The _looks_like_date test, inlined: this runs for every string value.
        if len(value) < 10 or value[4] != "-" or value[7] != "-" or len(value) > 40:
            return STRING
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return STRING
        return TIMESTAMP
    if kind is bool:
        return BOOLEAN
    if kind is int:
        return INTEGER if BIGINT_MIN <= value <= BIGINT_MAX else STRING
    if kind is float:
        # json.loads turns a number too large for a float, such as 1e400, into
        # infinity. JSON cannot carry infinity, so it is kept as the text "Infinity".
        return NUMBER if math.isfinite(value) else STRING
    return STRING


def merge_types(current: str | None, new: str) -> str:
    """Return the narrowest type that fits values of both ``current`` and ``new``."""
    if current is None or current == new:
        return new
    if {current, new} == {INTEGER, NUMBER}:
        return NUMBER
    return STRING


def text_form(value: object) -> str:
    """Return ``value`` as the text stored in a string column: a str itself, anything else as JSON."""
    if type(value) is str:
        return value
    return json.dumps(value, ensure_ascii=False)


def convert(value: object, column_type: str) -> object:
    """Convert ``value``, which fits ``column_type``, to the form written in a RECORD message.

    Timestamps are written in UTC, because the targets load them into
    ``timestamp without time zone`` columns, which ignore an offset.
    """
    if column_type == STRING:
        return value if type(value) is str else text_form(value)
    if column_type == TIMESTAMP:
        if value[-1:] == "Z" and len(value) > 10:
            return value
        return format_timestamp(parse_timestamp(value))
    return value


def json_schema(column_type: str, long_text: bool = False) -> dict:
    """Return the JSON schema of a nullable column of ``column_type``.

    Integers carry a minimum and maximum so that target-postgres creates BIGINT
    rather than NUMERIC columns. ``long_text`` sets maxLength so that
    target-redshift creates VARCHAR(65535) in place of VARCHAR(10000).
    """
    if column_type == INTEGER:
        return {"type": ["null", "integer"], "minimum": BIGINT_MIN, "maximum": BIGINT_MAX}
    if column_type == NUMBER:
        return {"type": ["null", "number"]}
    if column_type == BOOLEAN:
        return {"type": ["null", "boolean"]}
    if column_type == TIMESTAMP:
        return {"type": ["null", "string"], "format": "date-time"}
    if long_text:
        return {"type": ["null", "string"], "maxLength": LONG_TEXT_BYTES}
    return {"type": ["null", "string"]}
