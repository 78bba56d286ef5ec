"""The Metabase refresh as plain functions: run the chosen steps, collect every problem, summarise.

Steps, in order: ``sync`` (Metabase's schema sync, waited for), ``foreign_keys``
(relationship metadata), ``dashboards`` (dashboards as code) and ``health``
(run every card on the owned dashboards). A step's problems do not stop the
later steps; ``raise_for_problems`` fails once at the end with all of them.

Without ``METABASE_URL`` nothing is sent anywhere: the foreign-key plan is
computed from the warehouse's information_schema and every card's SQL runs on
the warehouse.

``python -m warehouse_sync.metabase.refresh [--dry-run] [--steps ...]`` runs it
without Prefect and prints the summary.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from warehouse_sync.config import Settings
from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.card_health import HealthReport, check_cards, check_cards_in_warehouse
from warehouse_sync.metabase.client import MetabaseClient, MetabaseError
from warehouse_sync.metabase.dashboard_files import DASHBOARDS_DIR, load_dashboard_specs
from warehouse_sync.metabase.dashboards import DashboardReport, sync_dashboards
from warehouse_sync.metabase.foreign_keys import (
    RELATIONSHIPS_PATH,
    ForeignKeyReport,
    desired_relationships,
    plan_foreign_keys_in_warehouse,
    sync_foreign_keys,
)
from warehouse_sync.metabase.schema_sync import SchemaSyncReport, find_database, sync_schema, warehouse_columns
from warehouse_sync.metabase.settings import MetabaseSettings

STEPS = ("sync", "foreign_keys", "dashboards", "health")
NOT_CONFIGURED = "Metabase was not configured (METABASE_URL is unset), so nothing was sent to Metabase."

log = logging.getLogger(__name__)


class MetabaseRefreshError(RuntimeError):
    """The refresh finished what it could, and some things need attention; the message lists them all."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(
            f"Metabase refresh needs attention ({count(len(problems), 'problem')}):\n  - " + "\n  - ".join(problems)
        )


@dataclass
class RefreshReport:
    """The outcome of each chosen step of one refresh."""

    steps: list[str]
    dry_run: bool
    metabase_configured: bool
    database: str | None = None
    sync: SchemaSyncReport | None = None
    foreign_keys: ForeignKeyReport | None = None
    dashboards: DashboardReport | None = None
    health: HealthReport | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        problems = []
        for step in (self.sync, self.foreign_keys, self.dashboards, self.health):
            if step is not None:
                problems += step.problems
        return problems

    def headline(self) -> str:
        target = f"Metabase database {self.database!r}" if self.metabase_configured else "the warehouse (no Metabase)"
        state = f"{count(len(self.problems), 'problem')} to look at" if self.problems else "no problems"
        dry = "dry run, " if self.dry_run else ""
        return f"Metabase refresh against {target}: {dry}steps {', '.join(self.steps)}; {state}"

    def markdown(self) -> str:
        """Render the summary for a Prefect markdown artifact."""
        parts = [f"**{self.headline()}**"]
        parts += [f"> {note}" for note in self.notes]
        if self.sync is not None:
            parts.append(f"### Schema sync\n\n{self.sync.headline()}")
        if self.foreign_keys is not None:
            parts.append(f"### Foreign keys\n\n{self.foreign_keys.headline()}\n\n"
                         f"{markdown_table(self.foreign_keys.rows_for_table())}")
        if self.dashboards is not None:
            parts.append(f"### Dashboards\n\n{self.dashboards.headline()}\n\n"
                         f"{markdown_table(self.dashboards.rows_for_table())}")
            parts += [f"Warning: {warning}" for warning in self.dashboards.warnings]
        if self.health is not None:
            parts.append(f"### Card health\n\n{self.health.headline()}\n\n{markdown_table(self.health.rows_for_table())}")
        if self.problems:
            parts.append("### Needs attention\n\n" + "\n".join(f"- {p}" for p in self.problems))
        return "\n\n".join(parts) + "\n"


def count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def markdown_table(rows: list[dict]) -> str:
    """Render rows of equal keys as a Markdown table."""
    if not rows:
        return "(none)"

    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)


def select_steps(steps: list[str] | None) -> list[str]:
    """Return the chosen steps in run order (all by default); raises ConfigError naming an unknown step."""
    if not steps:
        return list(STEPS)
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ConfigError(f"unknown refresh steps {', '.join(map(repr, unknown))}; use some of: {', '.join(STEPS)}")
    return [s for s in STEPS if s in steps]


def warehouse_schemas(settings: Settings) -> list[str]:
    """Return the warehouse schemas Metabase should show: the production tables' and every Segment source's."""
    from warehouse_sync.sandbox import current_segment_settings

    return [settings.warehouse_schema] + [s.schema for s in current_segment_settings(settings).sources]


def refresh_metabase(
    settings: Settings,
    metabase: MetabaseSettings | None,
    dry_run: bool = False,
    steps: list[str] | None = None,
    logger: logging.Logger = log,
    client: MetabaseClient | None = None,
    relationships_path: str | Path = RELATIONSHIPS_PATH,
    dashboards_dir: str | Path = DASHBOARDS_DIR,
) -> RefreshReport:
    """Run the chosen steps against Metabase, or against the warehouse when ``metabase`` is None.

    Returns the report; its ``problems`` list what needs attention. Raises
    ConfigError or MetabaseError only for what stops every step (bad files,
    unknown database, rejected credentials).
    """
    chosen = select_steps(steps)
    report = RefreshReport(steps=chosen, dry_run=dry_run, metabase_configured=metabase is not None)
    specs = load_dashboard_specs(dashboards_dir) if {"dashboards", "health"} & set(chosen) else []
    relationships = desired_relationships(settings, relationships_path, logger) if "foreign_keys" in chosen else []

    if metabase is None:
        _refresh_without_metabase(settings, report, specs, relationships, logger)
        return report

    own_client = client is None
    client = client or MetabaseClient.from_settings(metabase, logger=logger)
    try:
        database = find_database(client, metabase.database)
        report.database = str(database.get("name"))
        logger.info("Metabase database for the warehouse: %r (id %d)", report.database, database["id"])
        if "sync" in chosen:
            expected = warehouse_columns(settings, warehouse_schemas(settings))
            report.sync = sync_schema(
                client, database, expected, metabase.sync_timeout_seconds, metabase.poll_seconds, dry_run, logger
            )
        if "foreign_keys" in chosen:
            report.foreign_keys = sync_foreign_keys(client, database["id"], relationships, dry_run, logger)
        if "dashboards" in chosen:
            report.dashboards = sync_dashboards(client, specs, database["id"], metabase.collection, dry_run, logger)
        if "health" in chosen:
            if dry_run:
                report.notes.append("Card health was skipped: a dry run changes no cards, so it would test the old ones.")
                logger.info("dry run: card health skipped")
            else:
                report.health = check_cards(client, specs, metabase.collection, logger)
    finally:
        if own_client:
            client.close()
    logger.info("%s", report.headline())
    return report


def _refresh_without_metabase(settings: Settings, report: RefreshReport, specs, relationships, logger) -> None:
    report.notes.append(NOT_CONFIGURED)
    logger.warning("%s", NOT_CONFIGURED)
    if "sync" in report.steps:
        report.notes.append("Schema sync was skipped: there is no Metabase to sync.")
    if "foreign_keys" in report.steps:
        report.notes.append("The foreign-key plan comes from the warehouse's information_schema.")
        report.foreign_keys = plan_foreign_keys_in_warehouse(settings, relationships, logger)
    if "dashboards" in report.steps:
        cards = sum(len(s.cards) for s in specs)
        report.notes.append(f"Dashboard files are valid: {len(specs)} dashboards with {cards} cards.")
    if "health" in report.steps:
        report.notes.append("Each card's SQL ran directly on the warehouse.")
        report.health = check_cards_in_warehouse(settings, specs, logger)
    logger.info("%s", report.headline())


def raise_for_problems(report: RefreshReport) -> None:
    """Raise MetabaseRefreshError listing every problem of the report, if it has any."""
    if report.problems:
        raise MetabaseRefreshError(report.problems)


def main(argv: list[str] | None = None) -> None:
    """Run the refresh without Prefect and print its summary; exit 1 when something needs attention, 2 on bad configuration."""
    parser = argparse.ArgumentParser(
        prog="python -m warehouse_sync.metabase.refresh",
        description="Refresh Metabase from the warehouse: schema sync, foreign keys, dashboards, card health. "
        "Without METABASE_URL the cards' SQL and the foreign-key plan are checked against the warehouse.",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the plan and send no changes")
    parser.add_argument("--steps", nargs="+", choices=STEPS, help="steps to run (default: all, in order)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    from warehouse_sync.metabase.settings import current_metabase_settings
    from warehouse_sync.sandbox import current_settings

    try:
        report = refresh_metabase(current_settings(log), current_metabase_settings(), args.dry_run, args.steps)
    except ConfigError as exc:
        log.error("%s", exc)
        sys.exit(2)
    except MetabaseError as exc:
        log.error("Metabase refresh failed: %s", exc)
        sys.exit(1)
    print()
    print(report.markdown())
    sys.exit(1 if report.problems else 0)


if __name__ == "__main__":
    main()
