"""A pack corrupted or deleted in the store: check and restore name exactly the damaged files."""

from __future__ import annotations

import struct
from pathlib import Path

import msgspec
import pytest

from shared.repository import DamagedFiles, Repository, backup, restore
from shared.repository.checking import check
from shared.repository.formats import MSGPACK
from shared.repository.packing import HEADER_AAD, parse_pack
from shared.repository.walking import walk
from shared.store import ObjectStore, layout
from tests.repository.trees import file_hashes, random_files
from tests.store.conftest import PASSWORD


def _files_in_pack(repo: Repository, snapshot_id: str, pack: str) -> set[str]:
    _, record = repo.load_snapshot(snapshot_id)
    found = set()
    for path, node in walk(repo, record.root):
        for chunk in node.content:
            location = repo.index.get(chunk)
            if location is not None and location[0] == pack:
                found.add(path)
    return found


def _a_data_pack(repo: Repository, path_in_it: str, snapshot_id: str) -> str:
    _, record = repo.load_snapshot(snapshot_id)
    node = next(node for path, node in walk(repo, record.root) if path == path_in_it)
    location = repo.index.get(node.content[0])
    assert location is not None
    return location[0]


@pytest.mark.parametrize("damage", ["a pack corrupted in the store", "a pack deleted from the store"])
def test_damage_is_reported_file_by_file(
    repo: Repository, store: ObjectStore, tmp_path: Path, damage: str
) -> None:
    random_files(tmp_path / "src", 12, 400_000)  # 1 MiB packs: a few files per pack
    snapshot_id = backup(repo, tmp_path / "src").snapshot_id
    pack = _a_data_pack(repo, "file-0005.bin", snapshot_id)
    victims = _files_in_pack(repo, snapshot_id, pack)
    assert "file-0005.bin" in victims and len(victims) < 12
    if "corrupted" in damage:
        data = bytearray(store.get(layout.pack(pack)))
        for offset in range(100, len(data) - 200, 4096):  # flip bytes inside every blob
            data[offset] ^= 0xFF
        store.put(layout.pack(pack), bytes(data))
    else:
        store.delete(layout.pack(pack))

    report = check(Repository.open(store, PASSWORD), read_data=True)
    assert not report.ok
    for victim in victims:
        assert any(victim in error for error in report.errors), (
            f"check does not name {victim}: {report.errors}"
        )
    healthy = {f"file-{i:04d}.bin" for i in range(12)} - victims
    assert not any(name in error for error in report.errors for name in healthy)

    with pytest.raises(DamagedFiles) as raised:
        restore(repo, snapshot_id, tmp_path / "dst")
    assert set(raised.value.damaged) == victims
    assert "file-0005.bin" in str(raised.value)

    result = restore(repo, snapshot_id, tmp_path / "partial", allow_partial=True)
    assert set(result.damaged) == victims
    restored, original = file_hashes(tmp_path / "partial"), file_hashes(tmp_path / "src")
    assert {name: restored[name] for name in healthy} == {name: original[name] for name in healthy}


def test_a_healthy_repository_checks_clean_with_all_data_read(repo: Repository, tmp_path: Path) -> None:
    random_files(tmp_path / "src", 5, 300_000)
    backup(repo, tmp_path / "src")
    report = check(repo, read_data=True)
    assert report.ok, report.errors
    assert report.bytes_read > 1_000_000 and report.snapshots == 1


@pytest.mark.parametrize("damage", ["flipped bytes", "a sealed header that disagrees with the index"])
def test_a_corrupt_pack_header_is_reported_and_its_files_still_restore(
    repo: Repository, store: ObjectStore, tmp_path: Path, damage: str
) -> None:
    """The header rebuilds a lost index, so check must catch its damage even when every blob is whole."""
    random_files(tmp_path / "src", 6, 300_000)
    snapshot_id = backup(repo, tmp_path / "src").snapshot_id
    pack = _a_data_pack(repo, "file-0002.bin", snapshot_id)
    data = store.get(layout.pack(pack))
    if damage == "flipped bytes":
        changed = bytearray(data)
        changed[-10] ^= 0xFF  # inside the sealed header, past the last blob
        expected = "its header cannot be read"
    else:
        # One blob's id reversed, sealed again. The header is compressed, so its size may move by a
        # byte: take the first blob whose change keeps it (the pack's size is checked first).
        blobs = parse_pack(repo.cipher, pack, data)
        (length,) = struct.unpack("<I", data[-4:])
        for i, blob in enumerate(blobs):
            altered = [*blobs[:i], msgspec.structs.replace(blob, id=blob.id[::-1]), *blobs[i + 1 :]]
            header = repo.cipher.seal_record(MSGPACK.encode(altered), HEADER_AAD)
            if len(header) == length:
                break
        else:
            pytest.fail("no single-id change kept the header's size")
        changed = bytearray(data[: -(length + 4)] + header + struct.pack("<I", len(header)))
        expected = "its header does not list the blobs its index entry does"
    store.put(layout.pack(pack), bytes(changed))

    report = check(Repository.open(store, PASSWORD), read_data=True)
    assert report.errors == [f"pack {pack[:16]} is corrupt: {expected}"]

    restore(Repository.open(store, PASSWORD), snapshot_id, tmp_path / "dst")
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")
