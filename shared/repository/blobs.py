"""Small named blobs inside a snapshot: the manifests archive of an application, for instance.

A blob record (``kind="blob"``) is stored like file data — cut by FastCDC, deduplicated, compressed,
encrypted, packed — so a manifests archive that barely changed between two snapshots costs almost
nothing, and Secrets inside it are encrypted like every volume byte. It shares the ``group`` id of
the volume records of the same Ferry snapshot (see docs/repository.md).
"""

from __future__ import annotations

from pyfastcdc import FastCDC

from shared.repository.errors import IntegrityError
from shared.repository.formats import DATA
from shared.repository.packing import Packer
from shared.repository.repo import Repository


def put_blob(
    repo: Repository, data: bytes, *, name: str, group: str | None = None, tags: dict[str, str] | None = None
) -> str:
    """Store ``data`` as a snapshot record named ``name``; return the record's snapshot id."""
    record = repo.new_record("blob", name, group, tags)
    with repo.lock(purpose=f"blob {name}"):
        cfg = repo.config
        packer = Packer(repo.store, repo.cipher, repo.index, cfg.pack_size)
        try:
            chunker = FastCDC(cfg.chunker_avg, min_size=cfg.chunker_min, max_size=cfg.chunker_max)
            pieces = [bytes(chunk.data) for chunk in chunker.cut_buf(data)] if data else []
            for piece in pieces:
                blob_id = repo.cipher.chunk_id(piece)
                packer.add(blob_id, DATA, piece)
                record.content.append(blob_id)
            packer.flush()
        finally:
            packer.close()
        record.size = len(data)
        record.stats.bytes = len(data)
        record.stats.new_bytes = packer.stats.new_bytes
        record.stats.stored_bytes = packer.stats.stored_bytes
        return repo.save_snapshot(record)


def read_blob(repo: Repository, snapshot_id: str) -> bytes:
    """The bytes stored by ``put_blob`` (verified chunk by chunk)."""
    snapshot_id, record = repo.load_snapshot(snapshot_id, kind="blob")
    if record.kind != "blob":
        raise IntegrityError(f"snapshot {snapshot_id[:8]} is a file tree ({record.name}), not a blob")
    data = b"".join(repo.read_blob(chunk) for chunk in record.content)
    if len(data) != record.size:
        raise IntegrityError(
            f"blob {record.name} of snapshot {snapshot_id[:8]} has {len(data)} bytes, expected {record.size}"
        )
    return data
