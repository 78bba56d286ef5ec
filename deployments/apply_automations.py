"""Create or update the Prefect automations in deployments/automations.yaml.

Usage: python deployments/apply_automations.py [--dry-run]

ALERT_BLOCK names the notification block the alerts go to, as
"<block type slug>/<block name>" (for example "slack-webhook/warehouse-alerts").
Without it the automations are created with a do-nothing action and a
warning, so they still show in the Prefect UI and can be given an action there.
Automations are matched by name: applying again updates them in place.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import yaml

AUTOMATIONS_FILE = Path(__file__).resolve().parent / "automations.yaml"
BLOCK_PLACEHOLDER = "{{ notification_block }}"

log = logging.getLogger("apply-automations")


def load_automations(path: Path = AUTOMATIONS_FILE, block_document_id: str | None = None) -> list[dict]:
    """Read the automations file and fill in the notification block, or a do-nothing action without one."""
    documents = yaml.safe_load(path.read_text())["automations"]
    for document in documents:
        actions = []
        for action in document["actions"]:
            if action.get("block_document_id") == BLOCK_PLACEHOLDER:
                if block_document_id is None:
                    actions.append({"type": "do-nothing"})
                    continue
                action = {**action, "block_document_id": block_document_id}
            actions.append(action)
        document["actions"] = actions
    return documents


def build(documents: list[dict]):
    """Validate the documents as Prefect automations; raises pydantic's ValidationError naming the field."""
    from prefect.automations import Automation

    return [Automation.model_validate(document) for document in documents]


def find_block_document_id(slug: str) -> str:
    from prefect.blocks.core import Block

    try:
        return str(Block.load(slug)._block_document_id)
    except ValueError as exc:
        raise SystemExit(f"ALERT_BLOCK={slug!r}: block not found ({exc}); create it in the Prefect UI first") from exc


def apply(automations, dry_run: bool) -> None:
    from prefect.automations import Automation

    for automation in automations:
        try:
            existing = Automation.read(name=automation.name)
        except ValueError:
            existing = None
        if dry_run:
            verb = "update" if existing else "create"
            log.info("would %s automation %r: %s", verb, automation.name,
                     json.dumps(automation.trigger.model_dump(mode="json"))[:200])
            continue
        if existing:
            automation.id = existing.id
            automation.update()
            log.info("updated automation %r", automation.name)
        else:
            automation.create()
            log.info("created automation %r", automation.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="validate and print what would change; write nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    slug = os.environ.get("ALERT_BLOCK", "").strip()
    block_document_id = find_block_document_id(slug) if slug else None
    if block_document_id is None:
        log.warning("ALERT_BLOCK is missing: the automations get a do-nothing action and send no notification")
    automations = build(load_automations(block_document_id=block_document_id))
    apply(automations, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
