"""Buffered writing of Singer messages to standard output.

RECORD messages are collected and written in blocks, because one write and
flush per message costs more than building the message. A SCHEMA or STATE
message first writes out every message before it, so a STATE message always
follows the records it covers.
"""

from __future__ import annotations

import json
import sys
from typing import TextIO

# RECORD messages held before a write.
BLOCK_MESSAGES = 2000


class SingerOutput:
    """Writes Singer messages to a text stream, standard output by default."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self._pending: list[str] = []
        self._record_prefixes: dict[str, str] = {}
        self._encode = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False).encode

    def write_schema(self, stream: str, schema: dict, key_properties: list[str]) -> None:
        self._write_now({"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": key_properties})

    def write_record(self, stream: str, record: dict) -> None:
        prefix = self._record_prefixes.get(stream)
        if prefix is None:
            # The fixed start of the stream's RECORD messages, encoded once.
            prefix = self._record_prefixes[stream] = '{"type":"RECORD","stream":' + self._encode(stream) + ',"record":'
        self._pending.append(prefix + self._encode(record) + "}")
        if len(self._pending) >= BLOCK_MESSAGES:
            self.flush()

    def write_state(self, value: dict) -> None:
        self._write_now({"type": "STATE", "value": value})

    def flush(self) -> None:
        if self._pending:
            self._pending.append("")
            self.stream.write("\n".join(self._pending))
            self._pending.clear()
        self.stream.flush()

    def _write_now(self, message: dict) -> None:
        self._pending.append(self._encode(message))
        self.flush()
