"""Where a restore reads from and what it stamps: the target repository, the snapshot id, the labels.

Shared by the restore and verify steps. The repository is the *target* region's (the transfer step
filled it and names it in its outputs); it must exist — a restore never creates an empty one. A
snapshot id of ``latest`` is the newest Ferry snapshot (the group of the newest manifests record).
Label values are limited to 63 characters, so the snapshot label carries the id's first 63. A
migrate also stamps its migration plan's key (``ferry.dev/migration``): every stage, cutover and
retry of one application's move writes the same value, so a rollback finds all they created.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.restore.transforming import Transforms, with_snapshot
from shared.contracts.errors import PermanentError
from shared.contracts.inventory import decode_inventory
from shared.contracts.migrations import PLAN_LABEL, plan_key
from shared.contracts.requests import MobilityRequest, RequestKind
from shared.kube.comparing import REQUEST_LABEL, SNAPSHOT_LABEL
from shared.kube.objects import Manifest
from shared.repository import Repository, RepositoryNotFound, WrongKey
from shared.runtime.repositories import repository_url, store_settings
from shared.runtime.settings import Settings
from shared.store import open_store


def open_target_repository(settings: Settings, name: str) -> Repository:
    if not settings.repo_password:
        raise PermanentError("no repository password configured (FERRY_REPO_PASSWORD)")
    url = repository_url(settings, name)
    try:
        return Repository.open(
            open_store(url, store_settings(settings, name)), settings.repo_password.encode()
        )
    except RepositoryNotFound as e:
        raise PermanentError(f"repository {name or 'default'} at {url} does not exist: {e}") from e
    except WrongKey as e:
        raise PermanentError(f"repository {name or 'default'} at {url}: {e}") from e


def resolve_group(repo: Repository, snapshot: str) -> str:
    if not snapshot:
        raise PermanentError("no snapshot to restore: the request names none and no step produced one")
    if snapshot != "latest":
        return snapshot
    groups = [
        record.group
        for _id, record in repo.snapshots()
        if record.kind == "blob" and record.name == "manifests" and record.group
    ]
    if not groups:
        raise PermanentError(f"no Ferry snapshot in {repo.store.location} to take as 'latest'")
    return groups[-1]


async def inventory_edges(ctx_outputs: dict[str, str], store: Any) -> list[tuple[str, str]]:
    """The reference graph discovery stored for this request (migrate), as (dependent, dependency)."""
    name = ctx_outputs.get("inventory")
    if not name:
        return []
    try:
        found = await store.get(name)
    except Exception:  # noqa: BLE001 - an inventory that expired only costs the extra ordering hints
        return []
    inventory = decode_inventory(found.data or b"")
    return [(r.source, r.target) for r in inventory.references if not r.missing]


def restore_labels(request_id: str, group: str, plan: str = "") -> dict[str, str]:
    """The labels every restored object gets; ``plan`` (a migrate's ``plan_key``) adds the plan's."""
    labels = {REQUEST_LABEL: request_id[:63], SNAPSHOT_LABEL: group[:63]}
    return {**labels, PLAN_LABEL: plan[:63]} if plan else labels


def plan_of(request: MobilityRequest) -> str:
    """The migration plan a request's restore belongs to: a migrate's ``plan_key``, else none."""
    return plan_key(request) if request.kind is RequestKind.MIGRATE else ""


def transforms_for(
    request: MobilityRequest, labels: dict[str, str], captured: Iterable[Manifest] = ()
) -> Transforms:
    """The request's mappings; ``captured`` (the whole snapshot, not only what a restore selects) tells
    which Services a namespace reference may point to and still be rewritten."""
    target = request.target
    transforms = Transforms(
        namespace_map=dict(target.namespace_map),
        storage_class_map=dict(target.storage_class_map),
        registry_map=dict(target.registry_map),
        labels=labels,
        rewrite_references=request.restore.rewrite_references,
    )
    return with_snapshot(transforms, captured)
