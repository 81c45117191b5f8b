"""The repository's on-store records, as msgspec structs: config, keys, index, pack headers, trees, snapshots.

All encrypted records are MessagePack (compact, fast, typed by msgspec); the two plaintext ones
(``config`` and key files) are JSON so that a person can read them. Structs are frozen where they are
values, ``array_like`` where millions may exist (index entries, tree nodes with chunk lists), and every
field added later gets a default (schema evolution as msgspec documents it).
"""

from __future__ import annotations

import msgspec

FORMAT_VERSION = 1
DATA, TREE = 0, 1  # blob types


class Config(msgspec.Struct, frozen=True):
    """``config``: what any client must know before reading anything else."""

    version: int
    id: str
    created: str
    chunker_min: int
    chunker_avg: int
    chunker_max: int
    pack_size: int
    compression_level: int = 1
    cipher: str = "aes-256-gcm"


class KeyFile(msgspec.Struct, frozen=True):
    """``keys/<id>``: the master key material wrapped by a key derived from a passphrase with scrypt."""

    created: str
    hostname: str
    kdf: str
    n: int
    r: int
    p: int
    salt: bytes
    wrapped: bytes


class PackedBlob(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """Where one blob sits inside its pack, and how to turn it back into plaintext."""

    id: bytes
    type: int
    offset: int
    length: int  # stored bytes (nonce + ciphertext + tag)
    size: int  # plaintext bytes
    zstd: bool


class IndexedPack(msgspec.Struct, frozen=True, array_like=True, gc=False):
    id: str
    size: int
    blobs: list[PackedBlob]


class IndexFile(msgspec.Struct, frozen=True):
    """``index/<id>``: the blobs of a set of packs; ``supersedes`` lists index files it replaces."""

    packs: list[IndexedPack]
    supersedes: list[str] = []


class Node(msgspec.Struct, omit_defaults=True):
    """One entry of a directory: a file, directory, symlink, hard link or special file."""

    name: str
    type: str  # file | dir | symlink | hardlink | fifo | chardev | blockdev
    mode: int = 0
    uid: int = 0
    gid: int = 0
    mtime_ns: int = 0
    atime_ns: int = 0
    size: int = 0
    inode: int = 0
    content: list[bytes] = []  # chunk ids, in order
    extents: list[tuple[int, int]] | None = None  # data regions (offset, length) of a sparse file
    target: str = ""  # symlink target, or the first path of a hard-link group (relative to the root)
    subtree: bytes = b""  # tree blob id of a directory
    rdev: int = 0
    xattrs: dict[str, bytes] = {}  # extended attributes, POSIX ACLs among them (files.read_xattrs)


class Tree(msgspec.Struct):
    """A directory listing, sorted by name; stored as a tree blob whose id is its keyed hash."""

    nodes: list[Node]


class SnapshotStats(msgspec.Struct):
    files: int = 0
    dirs: int = 0
    bytes: int = 0  # logical bytes of all files
    bytes_read: int = 0  # bytes actually read (unchanged files are not read)
    new_bytes: int = 0  # plaintext bytes of blobs the repository did not have
    stored_bytes: int = 0  # bytes those new blobs take in packs (compressed + encrypted)
    new_chunks: int = 0
    reused_files: int = 0
    duration: float = 0.0
    warnings: list[str] = []


class Snapshot(msgspec.Struct):
    """``snapshots/<id>``: one volume tree (``kind="tree"``) or one named blob (``kind="blob"``).

    A Ferry snapshot of an application is the set of records sharing one ``group`` id: one record per
    volume plus one ``blob`` record holding the manifests archive (see docs/repository.md).
    """

    kind: str
    name: str
    group: str
    time: str
    hostname: str
    tags: dict[str, str] = {}
    parent: str | None = None
    root: bytes = b""  # tree id (kind=tree)
    content: list[bytes] = []  # chunk ids (kind=blob)
    size: int = 0
    source: str = ""
    stats: SnapshotStats = msgspec.field(default_factory=SnapshotStats)


MSGPACK = msgspec.msgpack.Encoder()
JSON = msgspec.json.Encoder()
TREE_DECODER = msgspec.msgpack.Decoder(Tree)
SNAPSHOT_DECODER = msgspec.msgpack.Decoder(Snapshot)
INDEX_DECODER = msgspec.msgpack.Decoder(IndexFile)
HEADER_DECODER = msgspec.msgpack.Decoder(list[PackedBlob])
CONFIG_DECODER = msgspec.json.Decoder(Config)
KEYFILE_DECODER = msgspec.json.Decoder(KeyFile)
