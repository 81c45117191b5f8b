"""The verify step's verdict is what the target holds: second runs, kept volumes, drift, skipped objects.

Real nats-server, a real repository and real ``ferry-mover`` processes (restore, ``restore --delta``
and the read-only ``verify``); the cluster is the in-memory one of tests/restore/fakes.py, whose
volumes are directories (the sandbox versions are in test_rerun.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from pathlib import Path

import pytest

from shared.contracts.reports import expectation_decoder, verification_decoder
from shared.contracts.requests import (
    ConflictPolicy,
    ExistingVolumes,
    VolumePolicy,
)
from shared.contracts.states import Phase
from shared.repository import Repository, backup, put_blob
from shared.runtime import Settings
from shared.store import LocalStore
from tests.repository.trees import file_hashes, random_files
from tests.restore.fakes import FakeCluster
from tests.restore.test_engine import APP
from tests.store.conftest import FAST_SCRYPT, PASSWORD
from tests.verify.stack import document, request, results, run, steps

SECRET_VALUE = "cGctcGFzc3dvcmQtOTk="  # base64 of a password that must never be stored with the request
SECRET = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"},
          "type": "Opaque", "data": {"password": SECRET_VALUE}}  # fmt: skip


class Source_:
    """The source application: a directory for its volume, snapshots of it in repository west."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "src"
        self.repo = Repository.init(
            LocalStore(root / "west"), PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=1 << 20
        )

    def snapshot(self, conf: str = "1") -> str:
        """A Ferry snapshot (group) of the volume as it is now, with the ConfigMap's value ``conf``."""
        group = secrets.token_hex(8)
        backup(self.repo, self.data, name="shop/data", group=group)
        items = [dict(o) for o in APP] + [SECRET]
        items[1] = {**items[1], "data": {"a": conf}}
        put_blob(
            self.repo, json.dumps({"kind": "List", "items": items}).encode(), name="manifests", group=group
        )
        return group


@pytest.fixture
def app(tmp_path: Path) -> Source_:
    source = Source_(tmp_path)
    random_files(source.data, 5, 300_000)
    return source


def change_source(app: Source_) -> None:
    """A change, an addition and a deletion in the source's volume between two runs."""
    changed = app.data / "file-0001.bin"
    data = bytearray(changed.read_bytes())
    data[100_000:104_096] = os.urandom(4096)
    changed.write_bytes(bytes(data))
    (app.data / "new.txt").write_text("added at the source\n")
    (app.data / "file-0004.bin").unlink()


@pytest.mark.parametrize(
    ("policy", "phase", "conf"),
    [
        pytest.param(ConflictPolicy.UPDATE, Phase.COMPLETED, "2",
                     id="update: the changed ConfigMap follows and the second run is verified"),
        pytest.param(ConflictPolicy.SKIP, Phase.PARTIALLY_FAILED, "1",
                     id="skip: the ConfigMap left different is a problem named by verify"),
    ],
)  # fmt: skip
async def test_a_second_run_refreshes_the_volume_and_the_verdict_is_true(
    settings: Settings, app: Source_, tmp_path: Path, policy: ConflictPolicy, phase: Phase, conf: str
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    target = tmp_path / "volumes" / "shop-west" / "data"
    first = app.snapshot()
    async with steps(settings, cluster) as client:
        state = await run(client, request(first, conflict_policy=policy))
        assert state.phase is Phase.COMPLETED, state.reason
        change_source(app)
        second = app.snapshot(conf="2")
        state = await run(client, request(second, conflict_policy=policy))
        verification = verification_decoder.decode(await document(client, f"{state.id}/verification.json"))
    assert file_hashes(target) == file_hashes(app.data)  # the target holds the new bytes, whatever the policy
    restored, verified = results(state)
    volume = verification.volumes[0]
    assert volume.ok and volume.action == "refreshed" and volume.files == 5
    assert restored.counts["volumes_refreshed"] == 1
    assert restored.counts["files_written"] == 2  # the changed file and the new one; three were equal
    assert cluster.objects["configmaps/shop-west/conf"]["data"] == {"a": conf}
    assert state.phase is phase, state.reason
    if phase is Phase.PARTIALLY_FAILED:
        assert [(p.target, p.diff) for p in verification.objects] == [
            ("configmaps/shop-west/conf", ["data.a: '1' in the target, '2' in the snapshot"])
        ]
        assert verified.counts["objects_differing"] == 1
        assert "1 object(s) differ" in verified.message and "configmaps/shop-west/conf" in state.reason
    else:
        assert verification.ok and verified.counts["objects_failed"] == 0


async def test_a_kept_volume_that_differs_is_a_problem_naming_its_files(
    settings: Settings, app: Source_, tmp_path: Path
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    first = app.snapshot()
    async with steps(settings, cluster) as client:
        assert (await run(client, request(first))).phase is Phase.COMPLETED
        change_source(app)
        second = app.snapshot()
        keep = VolumePolicy(existing=ExistingVolumes.KEEP)
        state = await run(client, request(second, volumes=keep, conflict_policy=ConflictPolicy.UPDATE))
        verification = verification_decoder.decode(await document(client, f"{state.id}/verification.json"))
    assert state.phase is Phase.PARTIALLY_FAILED, state.reason
    volume = verification.volumes[0]
    assert not volume.ok and volume.action == "kept"
    assert volume.reason == "kept by policy: 3 path(s) differ from the snapshot"
    assert set(volume.damaged) == {"file-0001.bin", "new.txt", "file-0004.bin"}
    assert "content differs" in volume.damaged["file-0001.bin"]
    assert "missing" in volume.damaged["new.txt"] and "not in the snapshot" in volume.damaged["file-0004.bin"]


async def test_drift_on_the_target_is_caught_by_verify_and_repaired_by_a_refresh(
    settings: Settings, app: Source_, tmp_path: Path
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    target = tmp_path / "volumes" / "shop-west" / "data"
    group = app.snapshot()
    async with steps(settings, cluster) as client:
        assert (await run(client, request(group))).phase is Phase.COMPLETED
        drifted = target / "file-0002.bin"
        before = drifted.stat()
        drifted.write_bytes(b"drift" + drifted.read_bytes()[5:])  # same size, same mtime: only the bytes tell
        os.utime(drifted, ns=(before.st_atime_ns, before.st_mtime_ns))
        keep = VolumePolicy(existing=ExistingVolumes.KEEP)
        kept = await run(client, request(group, volumes=keep))
        kept_proof = verification_decoder.decode(await document(client, f"{kept.id}/verification.json"))
        (target / "file-0003.bin").write_bytes(b"changed on the target")  # a drift a refresh sees
        refreshed = await run(client, request(group, volumes=VolumePolicy(existing=ExistingVolumes.REFRESH)))
    assert kept.phase is Phase.PARTIALLY_FAILED
    assert list(kept_proof.volumes[0].damaged) == ["file-0002.bin"]
    assert "file-0002.bin" in kept.reason
    # The refresh's quick check (size, mtime, mode) rewrites what visibly changed; verify hashes every
    # byte, so the same-size same-mtime drift is still named: never a false "verified".
    assert refreshed.phase is Phase.PARTIALLY_FAILED, refreshed.reason
    assert (target / "file-0003.bin").read_bytes() == (app.data / "file-0003.bin").read_bytes()
    assert "file-0002.bin" in refreshed.reason and "file-0003.bin" not in refreshed.reason


async def test_the_expectation_holds_no_secret_value(
    settings: Settings, app: Source_, tmp_path: Path
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    async with steps(settings, cluster) as client:
        state = await run(client, request(app.snapshot()))
        raw = await document(client, f"{state.id}/expectation.json")
    assert state.phase is Phase.COMPLETED, state.reason
    assert cluster.objects["secrets/shop-west/db"]["data"] == {"password": SECRET_VALUE}
    assert SECRET_VALUE.encode() not in raw and b"pg-password" not in raw
    secret = next(o for o in expectation_decoder.decode(raw).objects if o.target == "secrets/shop-west/db")
    assert secret.object["data"]["password"].startswith("sha256:")


async def test_twenty_restores_at_once_all_complete_and_verify(
    settings: Settings, app: Source_, tmp_path: Path
) -> None:
    cluster = FakeCluster(volumes=tmp_path / "volumes")
    group = app.snapshot()
    async with steps(settings, cluster) as client:
        ids = [await client.submit(request(group, ns=f"shop-{i:02d}")) for i in range(20)]
        states = await asyncio.gather(*(client.wait(i, within=300) for i in ids))
    assert [s.phase for s in states] == [Phase.COMPLETED] * 20, [s.reason for s in states if s.reason]
    for i, state in enumerate(states):
        _restored, verified = results(state)
        assert verified.counts["files_verified"] == 5 and verified.counts["volumes_failed"] == 0
        assert file_hashes(tmp_path / "volumes" / f"shop-{i:02d}" / "data") == file_hashes(app.data)
