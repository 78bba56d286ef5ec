"""Segment's rules for turning event and property names into warehouse identifiers.

A name is converted to snake_case: a lower-case letter followed by an upper-case
one starts a new word (``sampleText`` becomes ``sample_text``), as does the last
capital of an acronym before a capitalised word (``HTTPResponse`` becomes
``http_response``). ASCII letters and digits are kept, runs of separators
(whitespace and ``_ - . / : , ; | \\``) become one ``_``, and every other
character is dropped. A name that starts with a digit or is a Redshift reserved
word gets a ``_`` prefix, and names are cut to a maximum number of UTF-8 bytes.

This module uses the standard library only, so tests can import it without the
tap's virtualenv.
"""

from __future__ import annotations

import re
from collections.abc import Container

# Redshift's maximum identifier length, in bytes of UTF-8.
REDSHIFT_MAX_IDENTIFIER_BYTES = 127

# Amazon Redshift reserved words, from the "Reserved words" page of the Amazon
# Redshift Database Developer Guide (r_pg_keywords). An identifier equal to one
# of them gets a "_" prefix so that it works without quotes.
REDSHIFT_RESERVED_WORDS = frozenset(
    """
    aes128 aes256 all allowoverwrite analyse analyze and any array as asc
    authorization az64 backup between binary blanksasnull both bytedict bzip2
    case cast check collate column constraint create credentials cross
    current_date current_time current_timestamp current_user current_user_id
    default deferrable deflate defrag delta delta32k desc disable distinct do
    else emptyasnull enable encode encrypt encryption end except explicit false
    for foreign freeze from full globaldict256 globaldict64k grant group gzip
    having identity ignore ilike in initially inner intersect interval into is
    isnull join leading left like limit localtime localtimestamp lun luns lzo
    lzop minus mostly16 mostly32 mostly8 natural new not notnull null nulls off
    offline offset oid old on only open or order outer overlaps parallel
    partition percent permissions pivot placing primary raw readratio recover
    references rejectlog resort respect restore right select session_user
    similar snapshot some sysdate system table tag tdes text255 text32k then
    timestamp to top trailing true truncatecolumns union unique unnest unpivot
    user using verbose wallet when where with without
    """.split()
)

_LOWER_THEN_UPPER = re.compile(r"([a-z])([A-Z])")
# A digit preceded by a letter, then an upper-case letter: "item2Name". A leading
# digit is left alone so that "2FA" stays one word.
_LETTER_DIGIT_THEN_UPPER = re.compile(r"([A-Za-z][0-9]+)([A-Z])")
_ACRONYM_THEN_WORD = re.compile(r"([A-Z]+)([A-Z][a-z])")
_SEPARATORS = re.compile(r"[\s_\-./:,;|\\]+")
_DROPPED = re.compile(r"[^a-z0-9_]")
_UNDERSCORES = re.compile(r"_+")


def snake_case(name: str) -> str:
    """Convert ``name`` to Segment's snake_case, which may be the empty string."""
    text = _ACRONYM_THEN_WORD.sub(r"\1_\2", name)
    text = _LOWER_THEN_UPPER.sub(r"\1_\2", text)
    text = _LETTER_DIGIT_THEN_UPPER.sub(r"\1_\2", text)
    text = _SEPARATORS.sub("_", text.lower())
    text = _DROPPED.sub("", text)
    return _UNDERSCORES.sub("_", text).strip("_")


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` bytes of UTF-8 without splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= max_bytes:
        return text
    return encoded[:max_bytes].decode("utf-8", errors="ignore")


def safe_identifier(name: str, max_bytes: int = REDSHIFT_MAX_IDENTIFIER_BYTES) -> str:
    """Return ``name`` with a ``_`` prefix if it starts with a digit or is reserved, cut to ``max_bytes``."""
    if name[:1].isdigit() or name in REDSHIFT_RESERVED_WORDS:
        name = "_" + name
    return truncate_utf8(name, max_bytes)


def identifier(parts: list[str] | tuple[str, ...], fallback: str, max_bytes: int = REDSHIFT_MAX_IDENTIFIER_BYTES) -> str:
    """Convert the parts of a nested name to one identifier joined with ``_``.

    Each part is converted with ``snake_case``; parts that convert to nothing
    are left out. ``fallback`` is used when nothing remains, for example for an
    event named only with emoji.
    """
    words = [word for word in (snake_case(part) for part in parts) if word]
    return safe_identifier("_".join(words) or fallback, max_bytes)


def with_suffix(name: str, number: int, max_bytes: int = REDSHIFT_MAX_IDENTIFIER_BYTES) -> str:
    """Return ``name`` with the suffix ``_<number>``, cutting ``name`` so that the result fits."""
    suffix = f"_{number}"
    return truncate_utf8(name, max_bytes - len(suffix)) + suffix


def first_free_name(name: str, taken_names: Container[str], max_bytes: int = REDSHIFT_MAX_IDENTIFIER_BYTES) -> str:
    """Return ``name``, or the first of ``name_2``, ``name_3``, ... that is not in ``taken_names``."""
    if name not in taken_names:
        return name
    number = 2
    while with_suffix(name, number, max_bytes) in taken_names:
        number += 1
    return with_suffix(name, number, max_bytes)
