"""Copying a Ferry snapshot between two regions' repositories: only what is missing, resumable,
verified, rate-limited, and across different keys."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from services.transfer.copying import GroupCopy, Interrupted, TransferStats, transfer_group
from services.transfer.verifying import verify_group
from shared.repository import Repository, read_blob, restore
from shared.repository.walking import walk
from shared.store import layout
from tests.repository.trees import file_hashes
from tests.store.conftest import FAST_SCRYPT, PASSWORD
from tests.transfer.conftest import PACK, Regions, make_snapshot


def target_like(regions: Regions, source: Repository) -> Repository:
    return Repository.init(regions.target, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=PACK, like=source)


def restored_equal(target: Repository, group: str, original: Path, into: Path) -> None:
    volume = next(sid for sid, rec in target.snapshots(group=group) if rec.kind == "tree")
    restore(target, volume, into)
    assert file_hashes(into) == file_hashes(original)
    manifests = next(rec for _sid, rec in target.snapshots(group=group) if rec.kind == "blob")
    assert manifests.name == "manifests"


def test_a_second_transfer_sends_only_the_new_chunks(
    regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    first = make_snapshot(source_repo, tmp_path / "v1")
    target = target_like(regions, source_repo)
    stats = transfer_group(source_repo, target, first)
    assert stats.records_copied == 2 and stats.blobs_sent == stats.blobs_needed > 20
    restored_equal(target, first, tmp_path / "v1", tmp_path / "r1")

    # The app changes two files; its next snapshot shares everything else with the first one.
    for i in (3, 7):
        (tmp_path / "v1" / f"file-{i:04d}.bin").write_bytes(bytes([i]) * 400_000)
    second = make_snapshot(source_repo, tmp_path / "v1", files=0)
    again = transfer_group(source_repo, target, second)
    assert again.blobs_sent <= 6, f"sent {again.blobs_sent} chunks for two changed files"
    assert again.blobs_present >= stats.blobs_needed - 4
    restored_equal(target, second, tmp_path / "v1", tmp_path / "r2")

    # Transferring a finished snapshot again does nothing.
    idle = transfer_group(source_repo, target, second)
    assert idle.records_present == 2 and idle.blobs_sent == 0 and idle.bytes_sent == 0


def test_an_interrupted_transfer_resumes_without_sending_again(
    regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src", files=30)
    target = target_like(regions, source_repo)
    stop = threading.Event()

    def progress(stats: TransferStats) -> None:
        if stats.blobs_sent >= 12:
            stop.set()

    first = GroupCopy(source_repo, target, group, threads=2, progress=progress, stop=stop)
    with pytest.raises(Interrupted):
        first.run()
    assert not target.snapshots(group=group), "no record may exist before all its data is in"
    kept = len(Repository.open(regions.target, PASSWORD).index)
    assert kept >= 8, "the packs uploaded before the interruption must be indexed"

    target = Repository.open(regions.target, PASSWORD)
    second = transfer_group(source_repo, target, group)
    assert second.blobs_present >= kept - 1  # the chunks copied before are found, not sent
    assert second.blobs_sent <= second.blobs_needed - kept + 1
    assert second.blobs_sent + second.blobs_present == second.blobs_needed
    restored_equal(target, group, tmp_path / "src", tmp_path / "out")


def test_a_corrupted_pack_in_the_target_is_reported_with_the_files_it_damages(
    regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src")
    target = target_like(regions, source_repo)
    transfer_group(source_repo, target, group)
    assert verify_group(target, group).ok

    volume_id, record = next((sid, r) for sid, r in target.snapshots(group=group) if r.kind == "tree")
    node = next(n for path, n in walk(target, record.root) if path == "file-0005.bin")
    location = target.index.get(node.content[0])
    assert location is not None
    pack = location[0]
    victims = {
        p for p, n in walk(target, record.root) if any(target.index.get(c)[0] == pack for c in n.content)
    }  # type: ignore[index]
    data = bytearray(regions.target.get(layout.pack(pack)))
    for offset in range(100, len(data) - 200, 4096):
        data[offset] ^= 0xFF
    regions.target.put(layout.pack(pack), bytes(data))

    check = verify_group(Repository.open(regions.target, PASSWORD), group)
    assert not check.ok
    damaged = check.damaged[f"shop/data ({volume_id[:8]})"]
    assert set(damaged) == victims and "file-0005.bin" in victims
    assert all("corrupt" in reason for reason in damaged.values())


def test_different_keys_are_re_encrypted_on_the_way(
    regions: Regions, source_repo: Repository, tmp_path: Path
) -> None:
    group = make_snapshot(source_repo, tmp_path / "src", files=6)
    target = Repository.init(regions.target, PASSWORD, scrypt_n=FAST_SCRYPT, pack_size=PACK)
    stats = transfer_group(source_repo, target, group)
    assert not stats.same_keys and stats.records_copied == 2
    restored_equal(Repository.open(regions.target, PASSWORD), group, tmp_path / "src", tmp_path / "out")
    blob = next(sid for sid, rec in target.snapshots(group=group) if rec.kind == "blob")
    assert read_blob(target, blob).startswith(b'{"kind": "List"')
    assert verify_group(target, group).ok


@pytest.mark.parametrize("regions", ["local"], indirect=True)  # timing is measured once, on the local store
def test_the_bandwidth_limit_holds(regions: Regions, source_repo: Repository, tmp_path: Path) -> None:
    group = make_snapshot(source_repo, tmp_path / "src", files=8, size=300_000)
    target = target_like(regions, source_repo)
    limit = 3 * 1024 * 1024
    started = time.monotonic()
    stats = transfer_group(source_repo, target, group, limit=limit)
    elapsed = time.monotonic() - started
    assert elapsed >= 0.8 * (stats.bytes_sent - PACK) / limit, (elapsed, stats.bytes_sent)
