"""Every object key of a Ferry repository is built here, and nowhere else.

Keeping the layout in one module (as Velero does in ``object_store_layout.go``) means a reader can see
the whole repository on one page, and the S3 and local-directory stores never invent keys of their own.

    config                      repository settings (plain JSON: version, id, chunker, pack size)
    keys/<id>                   the data key wrapped by one passphrase (scrypt); several may exist
    data/<id[:2]>/<id>          pack files: encrypted blobs followed by an encrypted header
    index/<id>                  which blob lives in which pack, at which offset
    snapshots/<id>              one snapshot record (a volume tree or a named blob such as manifests)
    locks/<id>                  shared (backup) and exclusive (prune) locks, refreshed by their holder

Pack ids are spread over 256 "directories" so that a local-directory store stays fast with many packs.
"""

from __future__ import annotations

CONFIG = "config"
KEYS = "keys/"
DATA = "data/"
INDEX = "index/"
SNAPSHOTS = "snapshots/"
LOCKS = "locks/"

KINDS = {"keys": KEYS, "data": DATA, "index": INDEX, "snapshots": SNAPSHOTS, "locks": LOCKS}


def config() -> str:
    return CONFIG


def key(key_id: str) -> str:
    return f"{KEYS}{key_id}"


def pack(pack_id: str) -> str:
    return f"{DATA}{pack_id[:2]}/{pack_id}"


def index(index_id: str) -> str:
    return f"{INDEX}{index_id}"


def snapshot(snapshot_id: str) -> str:
    return f"{SNAPSHOTS}{snapshot_id}"


def lock(lock_id: str) -> str:
    return f"{LOCKS}{lock_id}"


def id_of(object_key: str) -> str:
    """The id part of any key built above (its last path segment)."""
    return object_key.rsplit("/", 1)[-1]
