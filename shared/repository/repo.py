"""The ``Repository``: open or create one on an object store, and read/write its keys, blobs and snapshots.

Everything else (backup, restore, check, prune, copy) is built on the few operations here. Opening
reads ``config``, then tries the passphrase against every ``keys/`` object: a wrong key raises
``WrongKey`` before anything is written. The index is loaded lazily, on first need, because a
``key rotate`` or an ``ls`` of snapshots does not need it.

All methods are blocking; services call them through ``asyncio.to_thread`` (see ``shared.repository``).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from shared.repository import crypto
from shared.repository.crypto import Cipher, MasterKey
from shared.repository.errors import (
    IntegrityError,
    RepositoryExists,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongKey,
)
from shared.repository.formats import (
    CONFIG_DECODER,
    FORMAT_VERSION,
    JSON,
    KEYFILE_DECODER,
    MSGPACK,
    SNAPSHOT_DECODER,
    TREE,
    TREE_DECODER,
    Config,
    KeyFile,
    PackedBlob,
    Snapshot,
    Tree,
)
from shared.repository.indexes import Index
from shared.repository.locking import Lock
from shared.store import ObjectNotFound, ObjectStore, layout

SNAPSHOT_AAD = b"ferry-snapshot-v1"
DEFAULT_PACK_SIZE = 16 * 1024 * 1024
DEFAULT_CHUNKER = (256 * 1024, 1024 * 1024, 4 * 1024 * 1024)
TREE_CACHE = 64 * 1024 * 1024  # bytes of tree packs kept in memory while walking snapshots


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Repository:
    """An open repository: its config, its master key (via ``cipher``) and, once loaded, its index."""

    def __init__(
        self,
        store: ObjectStore,
        config: Config,
        master: MasterKey,
        key_id: str,
        key_file: KeyFile | None = None,
    ) -> None:
        self.store, self.config, self.key_id = store, config, key_id
        self.key_file = key_file  # the key object that opened it (its salt and scrypt parameters)
        self.cipher = Cipher(master, config.compression_level)
        self._index: Index | None = None
        self._index_lock = threading.Lock()
        self._tree_packs: OrderedDict[str, bytes] = OrderedDict()  # whole tree packs, LRU
        self._tree_lock = threading.Lock()

    # -- opening ------------------------------------------------------------------------------------

    @classmethod
    def init(
        cls,
        store: ObjectStore,
        passphrase: bytes,
        *,
        like: Repository | None = None,
        pack_size: int = DEFAULT_PACK_SIZE,
        chunker: tuple[int, int, int] = DEFAULT_CHUNKER,
        compression_level: int = 1,
        scrypt_n: int = crypto.SCRYPT_N,
    ) -> Repository:
        """Create a repository. ``like`` shares another repository's chunker and chunk-id key (not its
        encryption key), so that ``copy_snapshot`` between the two only sends what the target lacks."""
        from shared.store import LocalStore, S3Store  # here: opening a local repository never loads S3

        if isinstance(store, S3Store):
            store.create_bucket()
        elif isinstance(store, LocalStore):
            store.create()
        if store.exists(layout.config()):
            raise RepositoryExists(f"a repository already exists at {store.location}")
        if like is not None:
            chunker = (like.config.chunker_min, like.config.chunker_avg, like.config.chunker_max)
        master = MasterKey.generate(like.cipher.key.chunk_id if like else None)
        config = Config(FORMAT_VERSION, secrets.token_hex(16), _now(), *chunker, pack_size, compression_level)
        key_id = secrets.token_hex(16)
        key_file = crypto.wrap(master, passphrase, n=scrypt_n)
        store.put(layout.key(key_id), JSON.encode(key_file))
        store.put(layout.config(), JSON.encode(config))
        return cls(store, config, master, key_id, key_file)

    @classmethod
    def open(cls, store: ObjectStore, passphrase: bytes) -> Repository:
        try:
            config = CONFIG_DECODER.decode(store.get(layout.config()))
        except ObjectNotFound as e:
            raise RepositoryNotFound(f"no repository at {store.location} (run `ferry-mover init`)") from e
        if config.version != FORMAT_VERSION:
            raise RepositoryNotFound(f"unsupported repository format version {config.version}")
        for info in store.list(layout.KEYS):
            key_file = KEYFILE_DECODER.decode(store.get(info.key))
            try:
                master = crypto.unwrap(key_file, passphrase)
            except WrongKey:
                continue
            return cls(store, config, master, layout.id_of(info.key), key_file)
        raise WrongKey(f"wrong password or key file for the repository at {store.location}")

    # -- keys ---------------------------------------------------------------------------------------

    def add_key(self, passphrase: bytes, *, scrypt_n: int = crypto.SCRYPT_N) -> tuple[str, KeyFile]:
        """A new key object for ``passphrase``, beside the others: (its id, itself)."""
        key_id = secrets.token_hex(16)
        key_file = crypto.wrap(self.cipher.key, passphrase, n=scrypt_n)
        self.store.put(layout.key(key_id), JSON.encode(key_file))
        return key_id, key_file

    def rotate_key(self, new_passphrase: bytes, *, scrypt_n: int = crypto.SCRYPT_N) -> str:
        """Replace the key used to open this repository by one for ``new_passphrase``; data untouched."""
        new_id, self.key_file = self.add_key(new_passphrase, scrypt_n=scrypt_n)
        self.store.delete(layout.key(self.key_id))
        self.key_id = new_id
        return new_id

    def keys(self) -> list[str]:
        return sorted(layout.id_of(info.key) for info in self.store.list(layout.KEYS))

    # -- index and blobs ----------------------------------------------------------------------------

    @property
    def index(self) -> Index:
        with self._index_lock:
            if self._index is None:
                index = Index()
                problems = index.load(self.store, self.cipher)
                if problems:
                    raise IntegrityError("; ".join(problems))
                self._index = index
            return self._index

    def reload_index(self) -> Index:
        with self._index_lock:
            self._index = None
        return self.index

    def lock(self, *, exclusive: bool = False, purpose: str = "") -> Lock:
        return Lock(self.store, exclusive=exclusive, purpose=purpose)

    def open_blob(self, blob: PackedBlob, sealed: bytes | memoryview, where: str) -> bytes:
        """Decrypt, decompress and verify one blob read from a pack."""
        what = f"chunk {blob.id.hex()[:16]} in pack {where[:16]}"
        plain = self.cipher.open(sealed, crypto.blob_aad(blob.id, blob.type), what)
        if blob.zstd:
            plain = Cipher.decompress(plain, blob.size)
        if len(plain) != blob.size or self.cipher.chunk_id(plain) != blob.id:
            raise IntegrityError(f"{what} does not match its hash")
        return plain

    def read_blob(self, blob_id: bytes) -> bytes:
        found = self.index.get(blob_id)
        if found is None:
            raise IntegrityError(f"chunk {blob_id.hex()[:16]} is not in the index")
        pack, blob = found
        try:
            if blob.type == TREE:  # trees are read one by one while walking: fetch their pack once
                data = self._tree_pack(pack)
                sealed = data[blob.offset : blob.offset + blob.length]
            else:
                sealed = self.store.get_range(layout.pack(pack), blob.offset, blob.length)
        except ObjectNotFound as e:
            raise IntegrityError(f"chunk {blob_id.hex()[:16]} is lost: pack {pack[:16]} is missing") from e
        return self.open_blob(blob, sealed, pack)

    def _tree_pack(self, pack: str) -> bytes:
        with self._tree_lock:
            if pack in self._tree_packs:
                self._tree_packs.move_to_end(pack)
                return self._tree_packs[pack]
        data = self.store.get(layout.pack(pack))
        with self._tree_lock:
            self._tree_packs[pack] = data
            while sum(len(d) for d in self._tree_packs.values()) > TREE_CACHE and len(self._tree_packs) > 1:
                self._tree_packs.popitem(last=False)
        return data

    def read_tree(self, tree_id: bytes) -> Tree:
        return TREE_DECODER.decode(self.read_blob(tree_id))

    def encode_tree(self, tree: Tree) -> tuple[bytes, bytes]:
        data = MSGPACK.encode(tree)
        return self.cipher.chunk_id(data), data

    # -- snapshots ----------------------------------------------------------------------------------

    def save_snapshot(self, record: Snapshot) -> str:
        snapshot_id = secrets.token_hex(16)
        sealed = self.cipher.seal_record(MSGPACK.encode(record), SNAPSHOT_AAD + snapshot_id.encode())
        self.store.put(layout.snapshot(snapshot_id), sealed)
        return snapshot_id

    def load_snapshot(self, snapshot_id: str, *, kind: str | None = None) -> tuple[str, Snapshot]:
        """A snapshot by full id, unique id prefix, or ``latest`` (of ``kind`` if given)."""
        if snapshot_id == "latest":
            found = [item for item in self.snapshots() if kind is None or item[1].kind == kind]
            if not found:
                raise SnapshotNotFound("the repository has no snapshot yet")
            return found[-1]
        return self._read_snapshot(self._resolve(snapshot_id))

    def _read_snapshot(self, full: str) -> tuple[str, Snapshot]:
        try:
            sealed = self.store.get(layout.snapshot(full))
        except ObjectNotFound as e:
            raise SnapshotNotFound(f"no snapshot {full!r}") from e
        raw = self.cipher.open_record(sealed, SNAPSHOT_AAD + full.encode(), f"snapshot {full}")
        return full, SNAPSHOT_DECODER.decode(raw)

    def _resolve(self, prefix: str) -> str:
        if len(prefix) == 32:
            return prefix
        matches = [
            layout.id_of(i.key)
            for i in self.store.list(layout.SNAPSHOTS)
            if layout.id_of(i.key).startswith(prefix)
        ]
        if len(matches) != 1:
            raise SnapshotNotFound(
                f"no snapshot {prefix!r}" if not matches else f"snapshot id {prefix!r} is ambiguous"
            )
        return matches[0]

    def snapshots(
        self, *, name: str | None = None, group: str | None = None, tags: dict[str, str] | None = None
    ) -> list[tuple[str, Snapshot]]:
        """All snapshot records matching the filters, oldest first."""
        found = []
        ids = [layout.id_of(info.key) for info in self.store.list(layout.SNAPSHOTS)]
        with ThreadPoolExecutor(8, thread_name_prefix="ferry-snapshots") as pool:
            records = list(pool.map(self._read_snapshot, ids))
        for snapshot_id, record in records:
            if name is not None and record.name != name:
                continue
            if group is not None and record.group != group:
                continue
            if tags and any(record.tags.get(k) != v for k, v in tags.items()):
                continue
            found.append((snapshot_id, record))
        return sorted(found, key=lambda item: (item[1].time, item[0]))

    def delete_snapshot(self, snapshot_id: str) -> None:
        self.store.delete(layout.snapshot(snapshot_id))

    def new_record(self, kind: str, name: str, group: str | None, tags: dict[str, str] | None) -> Snapshot:
        return Snapshot(
            kind=kind,
            name=name,
            group=group or "",
            time=_now(),
            hostname=socket.gethostname(),
            tags=dict(tags or {}),
        )

    def close(self) -> None:
        self.store.close()


def default_threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))
