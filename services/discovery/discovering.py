"""The discovery step: build the application's inventory and store it where the next steps read it.

Consumes ``ferry.step.discover``. For the request's source cluster, namespaces and selector it
collects the namespaced objects (``collecting``), resolves their references and adds the
cluster-scoped objects they need (``depending``), and stores the ``Inventory`` in the
``ferry-inventories`` object store under the request id. The step result carries the object name
(``outputs.inventory``), counts per type and the warnings; each warning is also an event. A dry run
stops here: the inventory summary is published as a ``Report`` event.

The inventory, the ``Report`` and the warnings are read by anyone with the ``read`` scope, so none
of them holds a Secret's value: ``collecting`` puts each object in the inventory with the values of
Secrets and of objects marked ``ferry.dev/sensitive: "true"`` replaced by their digests, and the
report and the warnings name objects, never their contents (docs/security.md).

Failures a person can act on are permanent and say what to fix: an unknown cluster name, a missing
namespace. An unreachable API server is temporary (retried with backoff) and, once the attempts
are spent, fails the request with that reason.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from services.discovery.collecting import collect
from services.discovery.depending import link
from shared.contracts.events import Report
from shared.contracts.inventory import Inventory, encode_inventory, object_name
from shared.contracts.reports import DocumentKind
from shared.contracts.steps import StepName, StepResult
from shared.kube import Clusters, RetryPolicy
from shared.runtime import StepContext, StepService
from shared.runtime.outcomes import Outcome, Succeeded

log = logging.getLogger("ferry.discovery")
MAX_RESULT_WARNINGS = 50


def summary(inventory: Inventory) -> dict[str, Any]:
    """What a person wants to see of an inventory (the dry-run report)."""
    owned = [i.key for i in inventory.items if i.owned]
    return {
        "cluster": inventory.cluster,
        "namespaces": inventory.namespaces,
        "selector": inventory.selector,
        "objects": len(inventory.items),
        "counts": inventory.counts(),
        "owned": owned,
        "dependencies": {
            i.key: i.needed_by for i in inventory.items if not i.namespaced and i.kind != "Namespace"
        },
        "volumes": [
            {
                "claim": v.key,
                "size": v.capacity or v.size,
                "storage_class": v.storage_class,
                "driver": v.driver,
                "snapshot": f"csi ({v.snapshot_class})" if v.snapshot_class else "live (crash-consistent)",
                "mounted_by": v.mounted_by,
            }
            for v in inventory.volumes
        ],
        "skipped": {s.key: s.reason for s in inventory.skipped},
        "warnings": inventory.warnings,
    }


class DiscoveryService(StepService):
    name = "discovery"
    description = "Ferry discovery: the inventory of an application (objects, dependencies, volumes)"
    step = StepName.DISCOVER

    async def setup(self) -> None:
        self.clusters = Clusters(self.settings.kubeconfig, retry=RetryPolicy(attempts=3))
        await super().setup()

    async def teardown(self) -> None:
        await self.clusters.close()
        await super().teardown()

    async def build(self, request_id: str, request: Any) -> Inventory:
        cluster = await self.clusters.get(request.source.cluster)
        version = await cluster.version()
        await cluster.resources.refresh()  # types installed since the last request (new CRDs) count too
        collected = await collect(cluster, request)
        linked = await link(cluster, collected, request)
        return Inventory(
            request_id=request_id,
            cluster=cluster.name,
            namespaces=collected.namespaces,
            selector=request.source.selector,
            captured_at=datetime.now(UTC).isoformat(timespec="seconds"),
            server_version=str(version.get("gitVersion", "")),
            items=collected.items + linked.dependencies,
            references=linked.references,
            volumes=linked.volumes,
            skipped=collected.skipped + linked.skipped,
            warnings=collected.warnings + linked.warnings,
        )

    async def handle(self, ctx: StepContext) -> Outcome:
        request = ctx.request
        inventory = await self.build(ctx.request_id, request)
        await ctx.checkpoint()
        name = object_name(ctx.request_id)
        await self.topology.inventories.put(name, encode_inventory(inventory))
        for warning in inventory.warnings:  # "<key> references ...": the event names the object
            first = warning.split(" ", 1)[0]
            await ctx.warn(warning, first if first.count("/") in (1, 2) else "")
        owned = sum(1 for i in inventory.items if i.owned)
        message = (
            f"{len(inventory.items)} objects ({owned} owned) and {len(inventory.volumes)} volumes "
            f"in {', '.join(inventory.namespaces) or 'no namespace'} of cluster {inventory.cluster}"
        )
        if request.dry_run:
            await ctx.emit(
                Report(
                    request_id=ctx.request_id,
                    step=StepName.DISCOVER,
                    title=f"Inventory (dry run): {message}",
                    document=DocumentKind.INVENTORY,
                    body=summary(inventory),
                )
            )
        log.info("inventory stored as %s: %s", name, message)
        warnings = inventory.warnings[:MAX_RESULT_WARNINGS]
        if len(inventory.warnings) > MAX_RESULT_WARNINGS:
            warnings.append(f"... and {len(inventory.warnings) - MAX_RESULT_WARNINGS} more warnings")
        counts = {**inventory.counts(), "volumes": len(inventory.volumes), "owned": owned}
        return Succeeded(
            StepResult(outputs={"inventory": name}, counts=counts, warnings=warnings, message=message)
        )
