"""Generate the JSON Schema of the public contracts into docs/schema/.

Automation in any language validates against these files before posting on ``ferry.requests``.
A test regenerates them and fails when the committed files differ (run `make schema` to refresh).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from shared.contracts.drills import DrillReport
from shared.contracts.events import Event
from shared.contracts.inventory import Inventory
from shared.contracts.migrations import MigrationPlan
from shared.contracts.policies import Policy, PolicyState
from shared.contracts.reports import Expectation, RestoreReport, Verification
from shared.contracts.requests import MobilityRequest
from shared.contracts.snapshots import SnapshotDetail, SnapshotList, SnapshotQuery
from shared.contracts.states import Reply, RequestState

PUBLIC: dict[str, Any] = {
    "mobility-request": MobilityRequest,
    "event": Event,
    "reply": Reply,
    "request-state": RequestState,
    # What the steps leave for people and automation to read (discovery, restore, verify, the catalog).
    "inventory": Inventory,
    "restore-report": RestoreReport,
    "verification": Verification,
    "expectation": Expectation,
    "snapshot-query": SnapshotQuery,
    "snapshot-list": SnapshotList,
    "snapshot-detail": SnapshotDetail,
    # Replication policies (DR): what is created, and what a policy's state shows.
    "policy": Policy,
    "policy-state": PolicyState,
    "drill-report": DrillReport,
    "migration-plan": MigrationPlan,  # ferry migrations: a staged migration's stages, cutover, rollback
}


def render() -> dict[str, str]:
    """File name -> JSON text of every published schema."""
    files = {}
    for name, kind in PUBLIC.items():
        schema = msgspec.json.schema(kind)
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://ferry.dev/schema/{name}.json",
            **schema,
        }
        files[f"{name}.schema.json"] = json.dumps(schema, indent=2, sort_keys=True) + "\n"
    return files


def write(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schema")):
        print(path)
