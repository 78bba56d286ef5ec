"""Dashboard files: ``metabase/dashboards/*.yaml`` and their SQL, read and checked.

Each YAML file describes one dashboard with these keys:

- ``key``: lower-case letters, digits and ``-``, also the name of its SQL folder;
- ``name`` and ``description``;
- ``collection``: a collection name or numeric id, where empty means ``METABASE_COLLECTION``;
- ``cards``: each with ``key``, ``name``, an optional ``description``,
  ``display``, ``sql`` (a file name in ``metabase/dashboards/<dashboard key>/``),
  ``position`` (``row``, ``col``, ``size_x``, ``size_y`` on Metabase's grid) and
  optional ``visualization_settings``.

Every problem in every file is reported at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from warehouse_sync.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS_DIR = PROJECT_ROOT / "metabase" / "dashboards"
GRID_COLUMNS = 24  # width of Metabase's dashboard grid since 0.46
DISPLAY_TYPES = (
    "area", "bar", "combo", "funnel", "gauge", "line", "pie", "progress", "row", "scalar", "scatter", "smartscalar",
    "table", "waterfall",
)
KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*$")
DASHBOARD_KEYS = {"key", "name", "description", "collection", "cards"}
CARD_KEYS = {"key", "name", "description", "display", "sql", "position", "visualization_settings"}
POSITION_KEYS = ("row", "col", "size_x", "size_y")


@dataclass(frozen=True)
class CardSpec:
    """One native-query card of a dashboard YAML file, with its SQL and place on the grid."""

    dashboard_key: str
    key: str
    name: str
    display: str
    sql: str
    sql_path: Path
    row: int
    col: int
    size_x: int
    size_y: int
    description: str = ""
    visualization_settings: dict = field(default_factory=dict, hash=False)

    @property
    def marker_key(self) -> str:
        return f"{self.dashboard_key}/{self.key}"

    @property
    def position(self) -> dict:
        return {"row": self.row, "col": self.col, "size_x": self.size_x, "size_y": self.size_y}


@dataclass(frozen=True)
class DashboardSpec:
    """One dashboard YAML file: the dashboard's key, name, description, collection and cards."""

    key: str
    name: str
    description: str
    collection: str | None
    cards: tuple[CardSpec, ...]
    path: Path


def load_dashboard_specs(directory: str | Path = DASHBOARDS_DIR) -> list[DashboardSpec]:
    """Read every ``*.yaml`` in ``directory`` with its SQL files, reporting every problem at once."""
    directory = Path(directory)
    paths = sorted(directory.glob("*.yaml"))
    if not paths:
        raise ConfigError(f"{directory} has no dashboard files (*.yaml)")
    problems: list[str] = []
    specs: list[DashboardSpec] = []
    for path in paths:
        spec = _load_dashboard_file(path, problems)
        if spec is None:
            continue
        if any(s.key == spec.key for s in specs):
            problems.append(f"{path.name}: dashboard key {spec.key!r} is used by another file")
            continue
        specs.append(spec)
    if problems:
        raise ConfigError("invalid dashboard files:\n  - " + "\n  - ".join(problems))
    return specs


def _load_dashboard_file(path: Path, problems: list[str]) -> DashboardSpec | None:
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problems.append(f"{path.name} is not valid YAML: {exc}")
        return None
    if not isinstance(raw, dict):
        problems.append(f"{path.name} is not a mapping with key, name, description, collection and cards")
        return None
    where = path.name
    unknown = sorted(set(raw) - DASHBOARD_KEYS)
    if unknown:
        problems.append(f"{where} has unknown keys {', '.join(unknown)}; use {', '.join(sorted(DASHBOARD_KEYS))}")
    key = str(raw.get("key") or "")
    if not KEY_PATTERN.match(key):
        problems.append(f"{where}: key {key!r} is invalid; use lower-case letters, digits and '-'")
        return None
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: name is missing")
    collection = raw.get("collection")
    if collection is not None and not isinstance(collection, (str, int)):
        problems.append(f"{where}: collection must be a collection name or numeric id")
    cards_raw = raw.get("cards")
    if not isinstance(cards_raw, list) or not cards_raw:
        problems.append(f"{where}: cards must be a non-empty list")
        return None

    sql_dir = path.parent / key
    cards: list[CardSpec] = []
    for number, card_raw in enumerate(cards_raw, start=1):
        card = _load_card(card_raw, key, sql_dir, f"{where} card {number}", problems)
        if card is None:
            continue
        if any(c.key == card.key for c in cards):
            problems.append(f"{where}: card key {card.key!r} is used twice")
            continue
        cards.append(card)
    _check_overlaps(cards, where, problems)
    return DashboardSpec(
        key=key,
        name=str(name or "").strip(),
        description=str(raw.get("description") or "").strip(),
        collection=str(collection) if collection is not None else None,
        cards=tuple(cards),
        path=path,
    )


def _load_card(raw, dashboard_key: str, sql_dir: Path, where: str, problems: list[str]) -> CardSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{where} is not a mapping")
        return None
    unknown = sorted(set(raw) - CARD_KEYS)
    if unknown:
        problems.append(f"{where} has unknown keys {', '.join(unknown)}; use {', '.join(sorted(CARD_KEYS))}")
    before = len(problems)
    key = str(raw.get("key") or "")
    if not KEY_PATTERN.match(key):
        problems.append(f"{where}: key {key!r} is invalid; use lower-case letters, digits and '-'")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(f"{where}: name is missing")
    display = raw.get("display")
    if display not in DISPLAY_TYPES:
        problems.append(f"{where}: display {display!r} is invalid; use one of {', '.join(DISPLAY_TYPES)}")
    settings = raw.get("visualization_settings") or {}
    if not isinstance(settings, dict):
        problems.append(f"{where}: visualization_settings must be a mapping")

    sql_path = sql_dir / str(raw.get("sql") or "")
    sql = ""
    if not raw.get("sql"):
        problems.append(f"{where}: sql (a file name in {sql_dir.name}/) is missing")
    elif not sql_path.is_file():
        problems.append(f"{where}: SQL file {sql_dir.name}/{raw['sql']} does not exist")
    else:
        sql = sql_path.read_text().strip()
        if not sql:
            problems.append(f"{where}: SQL file {sql_dir.name}/{raw['sql']} is empty")

    position = raw.get("position")
    values = {}
    if not isinstance(position, dict) or any(not isinstance(position.get(k), int) for k in POSITION_KEYS):
        problems.append(f"{where}: position needs whole numbers row, col, size_x and size_y")
    else:
        values = {k: position[k] for k in POSITION_KEYS}
        if values["row"] < 0 or values["col"] < 0 or values["size_x"] < 1 or values["size_y"] < 1:
            problems.append(f"{where}: position {values} has a negative place or a size below 1")
        elif values["col"] + values["size_x"] > GRID_COLUMNS:
            problems.append(f"{where}: col + size_x is {values['col'] + values['size_x']}, past the {GRID_COLUMNS}-column grid")

    if len(problems) > before:
        return None
    return CardSpec(
        dashboard_key=dashboard_key,
        key=key,
        name=name.strip(),
        display=display,
        sql=sql,
        sql_path=sql_path,
        description=str(raw.get("description") or "").strip(),
        visualization_settings=dict(settings),
        **values,
    )


def _check_overlaps(cards: list[CardSpec], where: str, problems: list[str]) -> None:
    for i, first in enumerate(cards):
        for second in cards[i + 1:]:
            rows_overlap = first.row < second.row + second.size_y and second.row < first.row + first.size_y
            cols_overlap = first.col < second.col + second.size_x and second.col < first.col + first.size_x
            if rows_overlap and cols_overlap:
                problems.append(f"{where}: cards {first.key!r} and {second.key!r} overlap on the grid")
