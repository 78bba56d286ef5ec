"""Card health: run every card on the owned dashboards and report each one's outcome.

With Metabase, each card runs through ``POST /api/card/:id/query`` with the
cache bypassed. Metabase returns HTTP 202 whether or not the query worked, so
the outcome is read from the response's ``status`` and ``error``. Without
Metabase, each card's SQL file runs directly on the warehouse.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import psycopg

from warehouse_sync.config import Settings
from warehouse_sync.metabase.client import MetabaseClient, MetabaseError
from warehouse_sync.metabase.dashboard_files import DashboardSpec
from warehouse_sync.metabase.dashboards import find_dashboard_cards

# Read time-out of one card query through Metabase, and statement time-out of
# one card's SQL on the warehouse. A dashboard card slower than this needs work anyway.
QUERY_TIMEOUT_SECONDS = 600
ERROR_TEXT_LIMIT = 500

log = logging.getLogger(__name__)


@dataclass
class CardOutcome:
    """The outcome of one card's query: status, row count, seconds and error."""

    dashboard: str
    card: str
    card_id: int | None
    status: str  # "completed" or "failed"
    rows: int | None
    seconds: float
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.status != "completed"


@dataclass
class HealthReport:
    """Every card's outcome, and the problems: failed cards and dashboards not found."""

    where: str
    outcomes: list[CardOutcome] = field(default_factory=list)
    missing_dashboards: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        problems = [
            f"dashboard {key!r} was not found in Metabase; run the dashboards step first"
            for key in self.missing_dashboards
        ]
        problems += [
            f"card {o.card!r} on dashboard {o.dashboard!r} failed in {self.where}: {o.error}"
            for o in self.outcomes
            if o.failed
        ]
        return problems

    def headline(self) -> str:
        failed = sum(o.failed for o in self.outcomes)
        return f"{len(self.outcomes)} cards run in {self.where}: {len(self.outcomes) - failed} completed, {failed} failed"

    def rows_for_table(self) -> list[dict]:
        return [
            {
                "dashboard": o.dashboard,
                "card": o.card,
                "outcome": o.status,
                "rows": o.rows if o.rows is not None else "",
                "seconds": round(o.seconds, 2),
                "error": o.error or "",
            }
            for o in self.outcomes
        ]


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= ERROR_TEXT_LIMIT else text[:ERROR_TEXT_LIMIT] + " ..."


def _log_outcome(outcome: CardOutcome, logger: logging.Logger) -> None:
    if outcome.failed:
        logger.error("card %r on %s failed: %s", outcome.card, outcome.dashboard, outcome.error)
    else:
        logger.info(
            "card %r on %s: %s rows in %.2f s", outcome.card, outcome.dashboard, outcome.rows, outcome.seconds
        )


def query_outcome(response: dict, dashboard: str, card: str, card_id: int, seconds: float) -> CardOutcome:
    """Read a ``POST /api/card/:id/query`` response, whose ``status`` shows whether the query worked whatever the HTTP status."""
    status = response.get("status")
    if status != "completed":
        error = response.get("error") or f"the query ended with status {status!r}"
        return CardOutcome(dashboard, card, card_id, "failed", None, seconds, _short(error))
    rows = response.get("row_count")
    if not isinstance(rows, int):
        rows = len((response.get("data") or {}).get("rows") or [])
    running_time = response.get("running_time")
    if isinstance(running_time, (int, float)):
        seconds = running_time / 1000
    return CardOutcome(dashboard, card, card_id, "completed", rows, seconds)


def check_cards(
    client: MetabaseClient, specs: list[DashboardSpec], default_collection: str, logger: logging.Logger = log
) -> HealthReport:
    """Run every card on the owned dashboards, hand-added ones included, through Metabase."""
    report = HealthReport(where="Metabase")
    dashboards, report.missing_dashboards = find_dashboard_cards(client, specs, default_collection, logger)
    for spec, _dashboard_id, cards in dashboards:
        for card_id, name in cards:
            started = time.monotonic()
            try:
                response = client.query_card(card_id, QUERY_TIMEOUT_SECONDS)
            except MetabaseError as exc:
                outcome = CardOutcome(spec.name, name, card_id, "failed", None, time.monotonic() - started, _short(exc))
            else:
                outcome = query_outcome(response or {}, spec.name, name, card_id, time.monotonic() - started)
            report.outcomes.append(outcome)
            _log_outcome(outcome, logger)
    logger.info("card health: %s", report.headline())
    return report


def check_cards_in_warehouse(settings: Settings, specs: list[DashboardSpec], logger: logging.Logger = log) -> HealthReport:
    """Run every card's SQL file directly on the warehouse, for a run without Metabase."""
    report = HealthReport(where="the warehouse")
    with psycopg.connect(**settings.warehouse.conninfo(), connect_timeout=30, autocommit=True) as conn:
        # PostgreSQL and Redshift both take the time-out in milliseconds.
        conn.execute(f"SET statement_timeout TO {QUERY_TIMEOUT_SECONDS * 1000}")
        for spec in specs:
            for card in spec.cards:
                started = time.monotonic()
                try:
                    rows = len(conn.execute(card.sql).fetchall())
                except psycopg.Error as exc:
                    message = exc.diag.message_primary or str(exc)
                    outcome = CardOutcome(spec.name, card.name, None, "failed", None, time.monotonic() - started,
                                          _short(f"{card.sql_path.name}: {message}"))
                else:
                    outcome = CardOutcome(spec.name, card.name, None, "completed", rows, time.monotonic() - started)
                report.outcomes.append(outcome)
                _log_outcome(outcome, logger)
    logger.info("card health: %s", report.headline())
    return report
