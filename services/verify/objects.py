"""Every object the restore rendered, compared with what the target holds now, from paged lists.

One GET per object made verification of a namespace of 10,000 ConfigMaps eight times slower than
discovering it. Objects are grouped by type and namespace instead: a group of more than a few is
read with paged LISTs of that type in that namespace (``limit``/``continue``), a small group with
GETs; each live object is then compared with its expected document (``shared.kube.comparing``).

Verdicts, whatever the restore did:
- present and equal (every field the snapshot sets, fields now owned by an autoscaler aside) → ok;
- present and different → a problem listing the differing fields, *also* when the conflict policy
  skipped it on purpose (a skipped object that differs is not what the snapshot holds);
- missing → a problem, with the restore's reason when it had one.
Objects the restore left out on purpose (owned, generated, excluded) are accounted for with their
reason and are not looked up.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from shared.contracts.reports import ExpectedObject, ObjectResult, Outcome
from shared.kube.comparing import differences, digested, without_ferry_labels
from shared.kube.objects import Manifest, Obj
from shared.runtime.clusters import Cluster

LIST_FROM = 4  # a group of this many objects or more is LISTed instead of fetched one by one
DIFF_LIMIT = 20  # differing fields named per object


@dataclass
class ObjectsChecked:
    present: int = 0
    differing: int = 0
    missing: int = 0
    problems: list[ObjectResult] = field(default_factory=list)


def _problem(expected: ExpectedObject, reason: str, diff: list[str] | None = None) -> ObjectResult:
    return ObjectResult(
        key=expected.key,
        target=expected.target,
        outcome=Outcome.FAILED,
        reason=reason,
        diff=(diff or [])[:DIFF_LIMIT],
    )


def verdict(expected: ExpectedObject, live: Obj | None) -> ObjectResult | None:
    """None when the target holds ``expected``; else the problem, named for a person."""
    if live is None:
        why = "missing in the target"
        return _problem(expected, f"{why} ({expected.reason})" if expected.reason else why)
    diff = differences(expected.object, digested(without_ferry_labels(live)))
    diff = [d for d in diff if not any(d.startswith(f"{ignored}:") for ignored in expected.ignore)]
    if not diff:
        return None
    if expected.outcome is Outcome.SKIPPED:
        reason = f"differs from the snapshot: not written ({expected.reason or 'skipped'})"
    else:
        reason = f"differs from the snapshot (restore: {expected.outcome.value})"
    return _problem(expected, reason, diff)


async def _live(cluster: Cluster, group: list[tuple[Manifest, ExpectedObject]]) -> dict[str, Obj]:
    """The live objects of one (type, namespace) group, by name."""
    if len(group) < LIST_FROM:
        found = {}
        for item, _ in group:
            if (live := await cluster.get(item)) is not None:
                found[item.name] = live
        return found
    first, wanted = group[0][0], {item.name for item, _ in group}
    return {
        obj["metadata"]["name"]: obj
        async for obj in cluster.iterate(first.api_version, first.kind, first.namespace)
        if obj.get("metadata", {}).get("name") in wanted
    }


async def check_objects(
    cluster: Cluster, objects: list[ExpectedObject], *, parallel: int = 4
) -> ObjectsChecked:
    """Compare every expected object with the target; up to ``parallel`` groups are read at once."""
    groups: dict[tuple[str, str, str], list[tuple[Manifest, ExpectedObject]]] = defaultdict(list)
    for expected in objects:
        item = Manifest(expected.object)  # read only: Manifest keeps the document as it is
        groups[(item.api_version, item.kind, item.namespace)].append((item, expected))
    gate = asyncio.Semaphore(parallel)

    async def read(group: list[tuple[Manifest, ExpectedObject]]) -> dict[str, Obj]:
        async with gate:
            return await _live(cluster, group)

    found_by_group = await asyncio.gather(*(read(g) for g in groups.values()))
    checked = ObjectsChecked()
    for group, live in zip(groups.values(), found_by_group, strict=True):
        for item, expected in group:
            found = live.get(item.name)
            problem = verdict(expected, found)
            if found is not None:
                checked.present += 1
            if problem is None:
                continue
            checked.problems.append(problem)
            if found is None:
                checked.missing += 1
            else:
                checked.differing += 1
    return checked
