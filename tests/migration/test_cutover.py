"""A cutover whose restore fails rolls itself back: the source, left down by the cutover's snapshot,
runs again with its original replicas, and the failed request says what happened.

Every service is the real one. West loses the storage class the database's claim is mapped to after
the preflight checks passed (so the snapshot quiesces east and leaves it down), which the restore of
a cutover refuses before it writes anything; the step runner then submits the rollback, and the
rollback service brings east back.
"""

from __future__ import annotations

from shared.bus.client import BusClient
from shared.contracts.migrations import QUIESCED_AT
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase, StepStatus
from shared.contracts.steps import StepName
from shared.kube import Cluster
from shared.runtime import Settings
from tests.migration.conftest import every_service
from tests.snapshot.helpers import workload_state
from tests.waiting import eventually

ORIGINAL = {"web": 2, "db": 1, "suspend": False, "annotations": {}}
CUTOVER = MobilityRequest(
    kind=RequestKind.MIGRATE,
    cutover=True,
    source=Source(cluster="east", namespaces=["shop"], repository="east"),
    target=Target(
        cluster="west",
        repository="west",
        namespace_map={"shop": "shop-cut"},
        storage_class_map={"fast": "local-wffc"},  # west's class for the database's claim
    ),
)


async def test_a_cutover_whose_restore_fails_is_rolled_back_and_the_source_runs_again(
    settings: Settings, client: BusClient, kube: dict[str, Cluster]
) -> None:
    east, west = kube["east"], kube["west"]
    assert await workload_state(east) == ORIGINAL
    async with every_service(settings):
        request_id = await client.submit(CUTOVER)

        async def preflight_passed() -> bool:
            state = await client.get(request_id)
            return state.step_state(StepName.PREFLIGHT).status is StepStatus.SUCCEEDED

        await eventually(preflight_passed, within=60, what="the preflight checks to pass")
        await west.delete("storageclasses.storage.k8s.io", "local-wffc")
        failed = await client.wait(request_id, within=180)

        async def rollback_started() -> bool:
            return bool((await client.get(request_id)).rollback_request)

        await eventually(
            rollback_started,
            within=30,
            what=f"a rollback of the request, {failed.phase.value}: {failed.reason}",
        )
        original = await client.get(request_id)
        rollback = await client.wait(original.rollback_request, within=120)
        rolled_back = await client.get(request_id)
    assert failed.phase is Phase.FAILED
    assert failed.step_state(StepName.RESTORE).status is StepStatus.FAILED, failed.reason
    assert QUIESCED_AT in failed.outputs  # the snapshot step left the source down
    assert f"; rolling back (request {rollback.id})" in original.reason
    assert rollback.phase is Phase.COMPLETED, rollback.reason
    assert rollback.request.rollback_of == request_id
    assert rolled_back.rolled_back and "; rolled back: " in rolled_back.reason
    assert await workload_state(east) == ORIGINAL
    assert await west.find("namespaces", "shop-cut") is None
