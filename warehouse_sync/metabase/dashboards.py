"""Dashboards as code: the dashboard files (``dashboard_files``) kept in Metabase.

The code finds
the cards and dashboards it owns by a marker at the end of their description:
``[warehouse-sync:engagement]`` for a dashboard and
``[warehouse-sync:engagement/weekly-active-users]`` for a card. It never
matches by display name, so a card renamed in the YAML stays the same card. It
looks for them in the collections the YAML names and on the dashboards it owns.

Each run compares what Metabase has with the YAML and sends only the
differences: ``POST``/``PUT /api/card``, and one ``PUT /api/dashboard/:id``
per dashboard whose name, description, collection or card placement differs.
That ``PUT`` carries every dashcard of the dashboard, because Metabase deletes
the dashcards a ``dashcards`` list leaves out. Dashcards of cards the code does
not own are sent back unchanged. New dashcards get negative ids, as Metabase
expects. A card removed from a YAML file is taken off its dashboard and
archived.

Supported: Metabase 0.48 and later, where ``PUT /api/dashboard/:id`` accepts
``dashcards``. Answers that still call them ``ordered_cards`` (0.47 and
earlier) are read, but placing cards needs 0.48.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from warehouse_sync.errors import ConfigError
from warehouse_sync.metabase.client import MetabaseClient, MetabaseError
from warehouse_sync.metabase.dashboard_files import CardSpec, DashboardSpec

MARKER_PATTERN = re.compile(r"\[warehouse-sync:([a-z0-9][a-z0-9-]*(?:/[a-z0-9][a-z0-9-]*)?)\]")
# Dashcard keys sent back in PUT /api/dashboard/:id; the rest are computed by Metabase.
DASHCARD_KEYS = (
    "id", "card_id", "dashboard_tab_id", "action_id", "row", "col", "size_x", "size_y", "series",
    "parameter_mappings", "visualization_settings",
)

log = logging.getLogger(__name__)


@dataclass
class ItemResult:
    """The action a run took, or would take, on one card or dashboard."""

    kind: str  # "card" or "dashboard"
    key: str
    name: str
    item_id: int | None
    action: str  # "created", "updated", "archived", "up to date"; "would ..." in a dry run
    changes: list[str] = field(default_factory=list)


@dataclass
class DashboardReport:
    """The outcome of the dashboards step: one line per card and dashboard, writes sent, problems and warnings."""

    dry_run: bool
    items: list[ItemResult] = field(default_factory=list)
    writes: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def headline(self) -> str:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.action] = counts.get(item.action, 0) + 1
        summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "nothing to do"
        return f"{len(self.items)} cards and dashboards: {summary}; {self.writes} writes sent"

    def rows_for_table(self) -> list[dict]:
        return [
            {
                "kind": i.kind,
                "key": i.key,
                "name": i.name,
                "id": i.item_id if i.item_id is not None else "",
                "action": i.action,
                "changes": ", ".join(i.changes),
            }
            for i in self.items
        ]


# ---------------------------------------------------------------------- markers


def marker(key: str) -> str:
    """Return the description marker of the card or dashboard with this key."""
    return f"[warehouse-sync:{key}]"


def description_with_marker(text: str, key: str) -> str:
    text = (text or "").strip()
    return f"{text}\n\n{marker(key)}" if text else marker(key)


def marker_key(description: str | None) -> str | None:
    """Return the key in a description's marker, or None for an object the code does not own."""
    found = MARKER_PATTERN.search(description or "")
    return found.group(1) if found else None


# ---------------------------------------------------------------------- finding what exists


def dashcards_of(dashboard: dict) -> list[dict]:
    """Return a dashboard's dashcards: ``dashcards`` since Metabase 0.48, ``ordered_cards`` before."""
    if "dashcards" in dashboard:
        return list(dashboard.get("dashcards") or [])
    return list(dashboard.get("ordered_cards") or [])


class ManagedObjects:
    """The collections, cards and dashboards the dashboard files refer to, as Metabase has them now."""

    def __init__(self, client: MetabaseClient, default_collection: str, logger: logging.Logger = log):
        self.client = client
        self.default_collection = default_collection
        self.logger = logger
        self._collections = [
            c for c in client.get_collections()
            if isinstance(c.get("id"), int) and not c.get("archived") and c.get("personal_owner_id") is None
        ]
        self.collection_ids: dict[str, int | None] = {}
        # marker key -> ids of cards or dashboards with that marker, by model
        self.found: dict[tuple[str, str], list[int]] = {}
        self.dashboards: dict[str, dict] = {}
        self.warnings: list[str] = []

    def collection_name(self, spec: DashboardSpec) -> str:
        return spec.collection or self.default_collection

    def find_collection(self, name_or_id: str) -> int | None:
        """Return the id of the collection with this name or numeric id, or None when no collection has the name.

        Raises ConfigError when several collections have that name, or none has that id.
        """
        if name_or_id in self.collection_ids:
            return self.collection_ids[name_or_id]
        if name_or_id.isdigit():
            matches = [c for c in self._collections if c["id"] == int(name_or_id)]
            if not matches:
                raise ConfigError(
                    f"Metabase has no collection with id {name_or_id} that this user can see; fix "
                    "METABASE_COLLECTION or the dashboard file's collection"
                )
        else:
            matches = [c for c in self._collections if c.get("name") == name_or_id]
        if len(matches) > 1:
            ids = ", ".join(str(c["id"]) for c in matches)
            raise ConfigError(
                f"Metabase has several collections named {name_or_id!r} (ids {ids}); name one by its id in "
                "METABASE_COLLECTION or the dashboard file's collection"
            )
        collection_id = matches[0]["id"] if matches else None
        self.collection_ids[name_or_id] = collection_id
        if collection_id is not None:
            self._index_collection(collection_id)
        return collection_id

    def create_collection(self, name: str) -> int:
        created = self.client.create_collection({"name": name})
        self.collection_ids[name] = created["id"]
        return created["id"]

    def _index_collection(self, collection_id: int) -> None:
        for item in self.client.get_collection_items(collection_id, ["card", "dashboard"]):
            key = marker_key(item.get("description"))
            if key and item.get("model") in ("card", "dashboard") and not item.get("archived"):
                self._add(item["model"], key, item["id"])

    def _add(self, model: str, key: str, item_id: int) -> None:
        ids = self.found.setdefault((model, key), [])
        if item_id not in ids:
            ids.append(item_id)
            ids.sort()

    def load_dashboard(self, spec: DashboardSpec) -> dict | None:
        """Fetch the dashboard with the spec's marker and index the owned cards placed on it."""
        dashboard_id = self.pick("dashboard", spec.key)
        if dashboard_id is None:
            return None
        dashboard = self.client.get_dashboard(dashboard_id)
        self.dashboards[spec.key] = dashboard
        for dashcard in dashcards_of(dashboard):
            card = dashcard.get("card") or {}
            key = marker_key(card.get("description"))
            if key and dashcard.get("card_id"):
                # A card on the dashboard comes first, ahead of copies elsewhere.
                ids = self.found.setdefault(("card", key), [])
                if dashcard["card_id"] in ids:
                    ids.remove(dashcard["card_id"])
                ids.insert(0, dashcard["card_id"])
        return dashboard

    def pick(self, model: str, key: str) -> int | None:
        """Return the id of the card or dashboard with this marker, or None.

        With several, the one placed on the owned dashboard wins, else the
        lowest (oldest) id, and a warning names the others.
        """
        ids = self.found.get((model, key)) or []
        if len(ids) > 1:
            message = (
                f"{model}s {', '.join(map(str, ids))} all carry the marker {marker(key)}; using {ids[0]} and "
                "leaving the others alone (a copied description copies the marker; remove it from the copies)"
            )
            if message not in self.warnings:
                self.warnings.append(message)
                self.logger.warning("%s", message)
        return ids[0] if ids else None

    def owned_card_keys(self, dashboard_key: str) -> dict[str, int]:
        """Return the cards whose marker belongs to this dashboard, by card key."""
        prefix = f"{dashboard_key}/"
        return {
            key[len(prefix):]: ids[0]
            for (model, key), ids in self.found.items()
            if model == "card" and key.startswith(prefix) and ids
        }


# ---------------------------------------------------------------------- planning and applying


def card_body(spec: CardSpec, database_id: int, collection_id: int | None) -> dict:
    """Return the card as ``POST /api/card`` takes it: a native query on the warehouse database."""
    return {
        "name": spec.name,
        "description": description_with_marker(spec.description, spec.marker_key),
        "display": spec.display,
        "collection_id": collection_id,
        "dataset_query": {
            "type": "native",
            "native": {"query": spec.sql, "template-tags": {}},
            "database": database_id,
        },
        "visualization_settings": dict(spec.visualization_settings),
    }


def native_query(card: dict) -> tuple[str | None, int | None]:
    """Return a card's native SQL and database id, or (None, database) for a query built in the editor."""
    query = card.get("dataset_query") or {}
    native = query.get("native") or {}
    # NOTE: reads the legacy dataset_query shape (native.query). A Metabase that
    # returns another shape makes every run rewrite the card; none was tested.
    return native.get("query"), query.get("database")


def card_changes(card: dict, desired: dict) -> dict:
    """Return the keys of ``desired`` that differ from the existing card, as ``PUT /api/card/:id`` takes them.

    Visualization settings the YAML does not set are kept, so hand-tuned
    colours or labels survive.
    """
    changes = {}
    for key in ("name", "description", "display", "collection_id"):
        if card.get(key) != desired[key]:
            changes[key] = desired[key]
    sql, database = native_query(card)
    desired_query = desired["dataset_query"]
    if (sql or "").strip() != desired_query["native"]["query"].strip() or database != desired_query["database"]:
        changes["dataset_query"] = desired_query
    settings = dict(card.get("visualization_settings") or {})
    merged = {**settings, **desired["visualization_settings"]}
    if merged != settings:
        changes["visualization_settings"] = merged
    if card.get("archived"):
        changes["archived"] = False
    return changes


def _dashcard_for_put(dashcard: dict) -> dict:
    return {key: dashcard[key] for key in DASHCARD_KEYS if key in dashcard}


def plan_dashcards(
    existing: list[dict], spec: DashboardSpec, card_ids: dict[str, int], removed_card_ids: set[int], first_tab_id
) -> tuple[list[dict], list[str]]:
    """Return the dashcards a dashboard should have and a line per change (none: already right).

    Each owned card keeps its first dashcard, moved to the YAML's position if
    needed; a missing one is added with a negative id. Dashcards of removed
    cards are dropped. Every other dashcard is returned unchanged.
    """
    specs_by_card_id = {card_ids[c.key]: c for c in spec.cards if c.key in card_ids}
    placed: set[int] = set()
    result, changes = [], []
    for dashcard in existing:
        card_id = dashcard.get("card_id")
        if card_id in removed_card_ids:
            changes.append(f"remove dashcard {dashcard.get('id')} of archived card {card_id}")
            continue
        body = _dashcard_for_put(dashcard)
        card_spec = specs_by_card_id.get(card_id)
        if card_spec is not None and card_id not in placed:
            placed.add(card_id)
            moved = {k: v for k, v in card_spec.position.items() if dashcard.get(k) != v}
            if moved:
                body.update(moved)
                changes.append(f"move {card_spec.key} to {card_spec.position}")
        result.append(body)

    new_id = -1
    for card_spec in spec.cards:
        card_id = card_ids.get(card_spec.key)
        if card_id is None or card_id in placed:
            continue
        result.append(
            {
                "id": new_id,
                "card_id": card_id,
                "dashboard_tab_id": first_tab_id,
                **card_spec.position,
                "parameter_mappings": [],
                "visualization_settings": {},
                "series": [],
            }
        )
        changes.append(f"add {card_spec.key} at {card_spec.position}")
        new_id -= 1
    return result, changes


def sync_dashboards(
    client: MetabaseClient,
    specs: list[DashboardSpec],
    database_id: int,
    default_collection: str,
    dry_run: bool = False,
    logger: logging.Logger = log,
) -> DashboardReport:
    """Create or update every dashboard file's cards and dashboard, sending only differences.

    A failed write is logged and collected, and the other dashboards still
    go; the report's problems list every one.
    """
    report = DashboardReport(dry_run=dry_run)
    managed = ManagedObjects(client, default_collection, logger)
    for spec in specs:
        try:
            _sync_dashboard(client, managed, spec, database_id, report, dry_run, logger)
        except (MetabaseError, ConfigError) as exc:
            report.problems.append(f"dashboard {spec.key!r} ({spec.path.name}) is not in sync: {exc}")
            logger.error("dashboard %r is not in sync: %s", spec.key, exc)
    report.warnings.extend(managed.warnings)
    logger.info("dashboards: %s", report.headline())
    return report


def _will(dry_run: bool) -> str:
    return "would be" if dry_run else "will be"


def _sync_dashboard(client, managed: ManagedObjects, spec: DashboardSpec, database_id: int,
                    report: DashboardReport, dry_run: bool, logger: logging.Logger) -> None:
    will = _will(dry_run)
    collection_name = managed.collection_name(spec)
    collection_id = managed.find_collection(collection_name)
    if collection_id is None:
        logger.info("collection %r %s created", collection_name, will)
        if not dry_run:
            collection_id = managed.create_collection(collection_name)
            report.writes += 1

    dashboard = managed.load_dashboard(spec) if collection_id is not None else None
    owned = managed.owned_card_keys(spec.key)

    card_ids: dict[str, int] = {}
    placeholder = -1000
    for card_spec in spec.cards:
        card_id = managed.pick("card", card_spec.marker_key)
        desired = card_body(card_spec, database_id, collection_id)
        if card_id is None:
            logger.info("card %s (%r) %s created", card_spec.marker_key, card_spec.name, will)
            if dry_run:
                card_ids[card_spec.key] = placeholder
                placeholder -= 1
                report.items.append(ItemResult("card", card_spec.marker_key, card_spec.name, None, "would create"))
                continue
            created = client.create_card(desired)
            report.writes += 1
            card_ids[card_spec.key] = created["id"]
            report.items.append(ItemResult("card", card_spec.marker_key, card_spec.name, created["id"], "created"))
            continue

        card_ids[card_spec.key] = card_id
        changes = card_changes(client.get_card(card_id), desired)
        if not changes:
            logger.info("card %s (%d) is up to date", card_spec.marker_key, card_id)
            report.items.append(ItemResult("card", card_spec.marker_key, card_spec.name, card_id, "up to date"))
            continue
        logger.info("card %s (%d) %s updated: %s", card_spec.marker_key, card_id, will, ", ".join(changes))
        if not dry_run:
            client.update_card(card_id, changes)
            report.writes += 1
        report.items.append(
            ItemResult("card", card_spec.marker_key, card_spec.name, card_id,
                       "would update" if dry_run else "updated", sorted(changes))
        )

    removed = {key: card_id for key, card_id in owned.items() if key not in card_ids}
    for key, card_id in sorted(removed.items()):
        logger.info("card %s/%s (%d) is no longer in %s and %s archived", spec.key, key, card_id, spec.path.name, will)
        if not dry_run:
            client.update_card(card_id, {"archived": True})
            report.writes += 1
        report.items.append(
            ItemResult("card", f"{spec.key}/{key}", "", card_id, "would archive" if dry_run else "archived")
        )

    _sync_dashboard_itself(client, spec, dashboard, collection_id, card_ids, set(removed.values()), report, dry_run, logger)


def _sync_dashboard_itself(client, spec: DashboardSpec, dashboard: dict | None, collection_id: int | None,
                           card_ids: dict[str, int], removed_card_ids: set[int], report: DashboardReport,
                           dry_run: bool, logger: logging.Logger) -> None:
    desired = {
        "name": spec.name,
        "description": description_with_marker(spec.description, spec.key),
        "collection_id": collection_id,
    }
    if dashboard is None:
        logger.info("dashboard %s (%r) %s created with %d cards", spec.key, spec.name, _will(dry_run), len(spec.cards))
        if dry_run:
            report.items.append(ItemResult("dashboard", spec.key, spec.name, None, "would create",
                                           [f"add {c.key}" for c in spec.cards]))
            return
        dashboard = client.create_dashboard(desired)
        report.writes += 1
        action = "created"
    else:
        action = "updated"

    changes = {k: v for k, v in desired.items() if dashboard.get(k) != v}
    tabs = sorted(dashboard.get("tabs") or [], key=lambda t: t.get("position", 0))
    dashcards, dashcard_changes = plan_dashcards(
        dashcards_of(dashboard), spec, card_ids, removed_card_ids, tabs[0]["id"] if tabs else None
    )
    if dashcard_changes:
        changes["dashcards"] = dashcards
        if "tabs" in dashboard:
            # Sent unchanged, so that the update keeps the dashboard's tabs.
            changes["tabs"] = [{"id": t["id"], "name": t.get("name")} for t in tabs]
    lines = [k for k in changes if k not in ("dashcards", "tabs")] + dashcard_changes

    if not changes:
        logger.info("dashboard %s (%d) is up to date", spec.key, dashboard["id"])
        report.items.append(ItemResult("dashboard", spec.key, spec.name, dashboard["id"], "up to date"))
        return
    logger.info("dashboard %s (%d) %s updated: %s", spec.key, dashboard["id"], _will(dry_run), "; ".join(lines))
    if not dry_run:
        client.update_dashboard(dashboard["id"], changes)
        report.writes += 1
    if action == "updated" and dry_run:
        action = "would update"
    report.items.append(ItemResult("dashboard", spec.key, spec.name, dashboard["id"], action, lines))


def find_dashboard_cards(
    client: MetabaseClient, specs: list[DashboardSpec], default_collection: str, logger: logging.Logger = log
) -> tuple[list[tuple[DashboardSpec, int, list[tuple[int, str]]]], list[str]]:
    """Return every card on the owned dashboards, owned or added by hand, and the dashboards not found.

    Each entry is (spec, dashboard id, [(card id, card name), ...]) in dashboard order.
    """
    managed = ManagedObjects(client, default_collection, logger)
    found, missing = [], []
    for spec in specs:
        collection_id = managed.find_collection(managed.collection_name(spec))
        dashboard = managed.load_dashboard(spec) if collection_id is not None else None
        if dashboard is None:
            missing.append(spec.key)
            continue
        cards, seen = [], set()
        ordered = sorted(dashcards_of(dashboard), key=lambda d: (d.get("row", 0), d.get("col", 0)))
        for dashcard in ordered:
            card_id = dashcard.get("card_id")
            if card_id and card_id not in seen:
                seen.add(card_id)
                cards.append((card_id, (dashcard.get("card") or {}).get("name") or f"card {card_id}"))
        found.append((spec, dashboard["id"], cards))
    return found, missing
