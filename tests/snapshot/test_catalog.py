"""The catalog over a plain local repository: which groups are snapshots, retention per series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.snapshot import catalog
from shared.contracts import snapshots as c
from shared.contracts.errors import PermanentError
from shared.repository import Repository, SnapshotNotFound, backup, put_blob
from shared.store import LocalStore


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init(LocalStore(tmp_path / "repo"), b"pw", scrypt_n=2**10, pack_size=1024 * 1024)


def snapshot(
    repo: Repository, tmp_path: Path, group: str, app: str, *, complete: bool = True, data: bytes = b"x"
) -> None:
    volume = tmp_path / group
    volume.mkdir()
    (volume / "file").write_bytes(data)
    tags = {c.APP_TAG: app, c.NAMESPACE_TAG: "shop", c.PVC_TAG: "data", c.CONSISTENCY_TAG: "csi"}
    backup(repo, str(volume), name="shop/data", group=group, tags=tags, parent=None)
    if complete:
        tags = {c.APP_TAG: app, c.CLUSTER_TAG: "east", c.NAMESPACES_TAG: "shop", c.CONSISTENCY_TAG: "csi",
                c.COUNTS_TAG: json.dumps({"configmaps": 2, "deployments.apps": 1})}  # fmt: skip
        put_blob(repo, b'{"items": []}', name=c.MANIFESTS, group=group, tags=tags)


def test_only_groups_with_their_manifests_are_listed_newest_first(repo: Repository, tmp_path: Path) -> None:
    snapshot(repo, tmp_path, "snap-a", "east/shop")
    snapshot(repo, tmp_path, "snap-b", "east/shop", data=b"y" * 1000)
    snapshot(repo, tmp_path, "snap-c", "east/shop", complete=False)  # an interrupted attempt
    put_blob(
        repo, b"v", name="check", group="snap-b", tags={c.VERIFICATION_TAG: "r1"}
    )  # a verify step's record
    listed = catalog.list_snapshots(repo, c.SnapshotQuery())
    assert [s.id for s in listed] == ["snap-b", "snap-a"]
    assert (listed[0].objects, listed[0].volumes, listed[0].cluster, listed[0].consistency) == (
        3,
        1,
        "east",
        "csi",
    )
    assert catalog.list_snapshots(repo, c.SnapshotQuery(cluster="west")) == []
    assert [s.id for s in catalog.list_snapshots(repo, c.SnapshotQuery(limit="1"))] == ["snap-b"]
    detail = catalog.describe(repo, "snap-a")
    assert detail.counts == {"configmaps": 2, "deployments.apps": 1}
    assert [(v.namespace, v.claim, v.bytes) for v in detail.volume_records] == [("shop", "data", 1)]
    with pytest.raises(SnapshotNotFound, match="incomplete"):
        catalog.describe(repo, "snap-c")
    with pytest.raises(SnapshotNotFound, match="no snapshot 'snap-z'"):
        catalog.describe(repo, "snap-z")


def test_retention_keeps_the_newest_of_each_series_and_deletes_whole_snapshots(
    repo: Repository, tmp_path: Path
) -> None:
    for group in ("a1", "a2", "a3"):
        snapshot(repo, tmp_path, group, "east/shop")
    snapshot(repo, tmp_path, "b1", "east/blog")
    with pytest.raises(PermanentError, match="refusing"):
        catalog.retain(repo, c.RetentionQuery())
    planned = catalog.retain(repo, c.RetentionQuery(app="east/shop", keep_last=1, dry_run=True))
    assert (planned.kept, planned.removed, planned.records_removed) == (["a3"], ["a1", "a2"], 0)
    assert catalog.retain(repo, c.RetentionQuery(keep_within="1h")).removed == []
    done = catalog.retain(repo, c.RetentionQuery(keep_last=1))
    assert done.removed == ["a1", "a2"] and done.records_removed == 4 and done.kept == ["a3", "b1"]
    assert sorted(s.id for s in catalog.list_snapshots(repo, c.SnapshotQuery())) == ["a3", "b1"]
    deleted = catalog.delete(repo, "b1", reclaim=True)
    assert deleted.records_removed == 2 and deleted.bytes_freed >= 0
    assert {r.group for _, r in repo.snapshots()} == {"a3"}
