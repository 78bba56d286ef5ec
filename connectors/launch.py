"""Start a pinned Singer connector with the small compatibility patches it needs.

Run with the connector's own virtualenv interpreter:

    .venvs/tap-postgres/bin/python connectors/launch.py tap-postgres --config c.json ...

Every argument after the connector name is passed to the connector unchanged.
The connectors' code is not forked; the patches below are applied at start-up:

* All connectors: pipelinewise-singer-python logs its record counters every
  60 seconds. The interval is lowered to ``SINGER_METRIC_INTERVAL`` seconds
  (10 by default) so long loads report progress often enough to watch.
* tap-postgres 1.8.4: ``do_sync`` rediscovers every selected table and
  replaces the column metadata of the catalog with the new discovery, which
  drops ``selected: false`` on columns. Columns deselected in the catalog would
  then be extracted all the same. The patch carries each column's ``selected``
  flag over the rediscovery, so a deselected column is never read.
  Deselected columns are also removed from the stream's schema, so the SCHEMA
  message does not make the target create an empty column for them.
* tap-postgres 1.8.4: an INCREMENTAL table with no bookmark yet is read with
  no ORDER BY, while the bookmark is taken from the last row read. Every
  10,000 rows a STATE is written with that value, so a run stopped half way
  would resume past rows not yet read, and a finished run leaves a bookmark
  below the maximum. The patch orders that first read by the replication key,
  as the tap already does once a bookmark exists.
* target-postgres 2.1.2 and target-redshift 1.6.0: ``record_to_csv_line``
  writes every value through ``json.dumps`` into a CSV that COPY reads with
  backslash escapes. A tab, newline or carriage return then arrives as the two
  characters ``\\t``, ``\\n`` or ``\\r`` (Redshift's ESCAPE drops the backslash
  instead), and an empty string arrives as NULL. The patch writes each value
  as one quoted CSV field with only the backslash and the quote escaped.
* transform-field 2.3.0: a STATE message is held back, and only the latest one
  is written after the next batch of records. The target can then see its
  first STATE after rows of a stream that this STATE already covers in full. target-postgres
  2.1.2 and target-redshift 1.6.0 take their first STATE as already committed,
  and so wrote a bookmark past rows they had not loaded. The patch writes every
  STATE at once, after the records that came before it, which keeps the
  tap's order.
* target-redshift 1.6.0: ``db_sync.flatten_key`` uses
  ``collections.MutableMapping``, removed in Python 3.10; the alias is restored.
"""

import collections
import collections.abc
import importlib
import os
import json
import sys

ENTRY_POINTS = {
    "tap-postgres": "tap_postgres:main",
    "target-postgres": "target_postgres:main",
    "target-redshift": "target_redshift:main",
    "transform-field": "transform_field:main",
    "tap-segment": "tap_segment.tap:TapSegment.cli",
}
# Connectors built on pipelinewise-singer-python, whose metrics the launcher tunes.
PIPELINEWISE = {"tap-postgres", "target-postgres", "target-redshift", "transform-field"}


def _shorten_metric_interval():
    from singer import metrics

    seconds = int(os.environ.get("SINGER_METRIC_INTERVAL", "10"))
    metrics.DEFAULT_LOG_INTERVAL = seconds
    metrics.Counter.__init__.__defaults__ = (None, seconds)
    metrics.record_counter.__defaults__ = (None, seconds)


def _keep_column_selection():
    import tap_postgres
    from singer import metadata

    rediscover = tap_postgres.refresh_streams_schema

    def refresh_keeping_selection(conn_config, streams):
        chosen = {}
        for stream in streams:
            for entry in stream["metadata"]:
                if entry["breadcrumb"] and "selected" in entry["metadata"]:
                    key = (stream["tap_stream_id"], tuple(entry["breadcrumb"]))
                    chosen[key] = entry["metadata"]["selected"]

        rediscover(conn_config, streams)

        for stream in streams:
            for entry in stream["metadata"]:
                key = (stream["tap_stream_id"], tuple(entry["breadcrumb"]))
                if key in chosen:
                    entry["metadata"]["selected"] = chosen[key]
            # The tap reads column choices through a metadata map; fail loudly
            # if a deselected column lost its flag rather than extract it.
            md_map = metadata.to_map(stream["metadata"])
            for (stream_id, breadcrumb), selected in chosen.items():
                if stream_id == stream["tap_stream_id"] and not selected:
                    if md_map.get(breadcrumb, {}).get("selected") is not False:
                        raise RuntimeError(
                            f"column {breadcrumb[-1]} of {stream_id} lost its deselection"
                        )
            for (stream_id, breadcrumb), selected in chosen.items():
                if stream_id == stream["tap_stream_id"] and not selected:
                    stream["schema"]["properties"].pop(breadcrumb[-1], None)

    tap_postgres.refresh_streams_schema = refresh_keeping_selection


def _order_first_incremental_read():
    from tap_postgres import db as post_db
    from tap_postgres.sync_strategies import incremental

    build_select = incremental._get_select_sql

    def select_in_key_order(params):
        select_sql = build_select(params)
        if not params["replication_key_value"]:
            key = post_db.prepare_columns_sql(params["replication_key"])
            select_sql = f"{select_sql} ORDER BY {key} ASC"
        return select_sql

    incremental._get_select_sql = select_in_key_order


def _pass_states_in_order():
    import transform_field

    handle_line = transform_field.TransformField.handle_line

    def handle_line_in_order(self, line):
        handle_line(self, line)
        # flush() clears self.state, so a state still set here just arrived.
        if self.state is not None:
            self.flush()

    transform_field.TransformField.handle_line = handle_line_in_order


def _csv_field(value, escape_line_breaks):
    if value is None:
        return ""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    text = text.replace("\\", "\\\\").replace('"', '\\"')
    if escape_line_breaks:
        # Redshift's COPY ... ESCAPE keeps a line break only behind a backslash.
        # NOTE: checked against Redshift's COPY documentation only; no Redshift
        # runs in this project's tests.
        text = text.replace("\n", "\\\n").replace("\r", "\\\r")
    return '"' + text + '"'


def _write_csv_fields_verbatim(module_name, escape_line_breaks):
    db_sync = importlib.import_module(module_name + ".db_sync")

    def record_to_csv_line(self, record):
        flat = db_sync.flatten_record(
            record, self.flatten_schema, max_level=self.data_flattening_max_level
        )
        fields = []
        for name in self.flatten_schema:
            # flatten_record turns a None in a JSON column into the text "null";
            # a SQL NULL must stay NULL.
            value = None if name in record and record[name] is None else flat.get(name)
            fields.append(_csv_field(value, escape_line_breaks))
        return ",".join(fields)

    db_sync.DbSync.record_to_csv_line = record_to_csv_line


def _restore_collections_aliases():
    for name in ("MutableMapping", "Mapping", "Sequence", "Iterable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ENTRY_POINTS:
        names = ", ".join(sorted(ENTRY_POINTS))
        sys.exit(f"usage: launch.py CONNECTOR [ARGS...]; CONNECTOR is one of: {names}")

    connector = sys.argv[1]
    sys.argv = [connector] + sys.argv[2:]

    if connector == "target-redshift":
        _restore_collections_aliases()
    if connector in PIPELINEWISE:
        _shorten_metric_interval()
    if connector == "tap-postgres":
        _keep_column_selection()
        _order_first_incremental_read()
    if connector == "transform-field":
        _pass_states_in_order()
    if connector == "target-postgres":
        _write_csv_fields_verbatim("target_postgres", escape_line_breaks=False)
    if connector == "target-redshift":
        _write_csv_fields_verbatim("target_redshift", escape_line_breaks=True)

    module_name, attribute_path = ENTRY_POINTS[connector].split(":")
    entry = importlib.import_module(module_name)
    for attribute in attribute_path.split("."):
        entry = getattr(entry, attribute)
    sys.exit(entry())


if __name__ == "__main__":
    main()
