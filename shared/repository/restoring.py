"""Restoring a snapshot into a directory: pack by pack, verifying every chunk, then the metadata.

Restore is organised around packs, not files (as restic's restorer is): the plan maps each needed
blob to the places it goes (a chunk shared by many files is fetched once), then each pack is read
with one ranged GET covering the blobs needed from it, decrypted, checked against its keyed hash and
written with ``pwrite`` at its offsets. A pool of ``threads`` readers (6: GETs wait on the network,
decryption and hashing release the GIL) keeps that many packs in flight, which bounds memory at
about ``threads x 2 x 16 MiB``.

A pack that is missing, a blob that fails authentication or whose hash differs: each file that needed
it is recorded as damaged with the reason. Everything else is still restored; then ``DamagedFiles``
is raised unless ``allow_partial``. Ownership is restored when running as root; permissions and
mtimes always, directories last (writing into a directory changes its mtime).

``restore(..., delta=True)`` brings an existing tree to the snapshot's state instead (``syncing.py``):
it decides what to write, then runs this very plan, fetch and finish, so both modes read packs the
same way and report damage the same way.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from shared.repository.backing import Progress, ProgressFn
from shared.repository.errors import IntegrityError
from shared.repository.files import place, write_xattrs
from shared.repository.formats import Node, PackedBlob
from shared.repository.repo import Repository
from shared.store import ObjectNotFound, StoreError, layout

GAP = 1024 * 1024  # read two needed blobs with one GET when less than this lies between them


@dataclass
class RestoreResult:
    snapshot_id: str
    files: int = 0
    bytes: int = 0
    damaged: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # metadata that could not be set (content is whole)
    files_written: int = 0  # files created or changed (a plain restore writes them all)
    bytes_written: int = 0
    files_skipped: int = 0  # files already right (delta restore)
    bytes_skipped: int = 0
    removed: int = 0  # entries deleted because the snapshot does not have them (delta restore)


@dataclass
class _File:
    path: str
    rel: str
    node: Node
    left: int = 0  # content bytes still to write (progress counts a file when it reaches 0)
    fresh: bool = True  # created (or emptied) before writing; else written in place (delta restore)
    only: set[int] | None = None  # the indexes in node.content of the chunks to write (None: all)


class _Restore:
    def __init__(self, repo: Repository, target: Path, progress: ProgressFn | None) -> None:
        self.repo, self.target = repo, target
        self.files: list[_File] = []
        self.dirs: list[tuple[str, Node]] = []
        self.others: list[tuple[str, str, Node]] = []  # symlinks, hard links, specials
        self.kept: list[tuple[str, Node]] = []  # entries already right: their metadata only (delta)
        self.bytes_written = 0
        self.damaged: dict[str, str] = {}
        self.lock = threading.Lock()
        self.progress = Progress()
        self.progress_fn = progress
        self.is_root = os.geteuid() == 0
        self.xattr_failures: dict[str, tuple[int, str]] = {}  # why -> (how many, the first attribute)

    def walk(self, tree_id: bytes, path: str, rel: str, only: str = "") -> None:
        try:
            tree = self.repo.read_tree(tree_id)
        except (IntegrityError, StoreError) as e:
            self.damaged[rel or "."] = f"directory listing lost: {e}"
            return
        for node in tree.nodes:
            if only and node.name != only:
                continue
            child, child_rel = os.path.join(path, node.name), f"{rel}/{node.name}" if rel else node.name
            if node.type == "dir":
                os.makedirs(child, mode=0o700, exist_ok=True)
                self.dirs.append((child, node))
                self.walk(node.subtree, child, child_rel)
            elif node.type == "file":
                self.files.append(_File(child, child_rel, node))
                self.progress.bytes_total += node.size
                self.progress.files_total += 1
            else:
                self.others.append((child, child_rel, node))

    def mark(self, file: _File, reason: str) -> None:
        with self.lock:
            self.damaged.setdefault(file.rel, reason)

    def plan(self) -> dict[str, list[tuple[PackedBlob, list[tuple[_File, int]]]]]:
        wanted: dict[bytes, list[tuple[_File, int]]] = defaultdict(list)
        for file in self.files:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if file.fresh else os.O_WRONLY
            fd = os.open(file.path, flags, 0o600)
            try:
                os.ftruncate(fd, file.node.size)
            finally:
                os.close(fd)
            offset = left = 0
            for i, chunk in enumerate(file.node.content):
                found = self.repo.index.get(chunk)
                if found is None:
                    self.mark(file, f"chunk {chunk.hex()[:16]} is not in the repository index")
                    continue
                if file.only is None or i in file.only:
                    wanted[chunk].append((file, offset))
                    left += found[1].size
                offset += found[1].size
            file.left = left
            if file.only is not None:  # what the file already holds counts as done
                self.progress.bytes_done += offset - left
            if left == 0:
                self.progress.files_done += 1
        packs: dict[str, list[tuple[PackedBlob, list[tuple[_File, int]]]]] = defaultdict(list)
        for chunk, targets in wanted.items():
            found = self.repo.index.get(chunk)
            if found is not None:
                packs[found[0]].append((found[1], targets))
        return packs

    def restore_pack(self, pack: str, blobs: list[tuple[PackedBlob, list[tuple[_File, int]]]]) -> None:
        blobs.sort(key=lambda item: item[0].offset)
        groups: list[list[tuple[PackedBlob, list[tuple[_File, int]]]]] = [[blobs[0]]]
        for item in blobs[1:]:
            last = groups[-1][-1][0]
            if item[0].offset - (last.offset + last.length) < GAP:
                groups[-1].append(item)
            else:
                groups.append([item])
        for group in groups:
            start = group[0][0].offset
            end = group[-1][0].offset + group[-1][0].length
            try:
                data = memoryview(self.repo.store.get_range(layout.pack(pack), start, end - start))
            except (ObjectNotFound, StoreError) as e:
                reason = (
                    f"pack {pack[:16]} is missing"
                    if isinstance(e, ObjectNotFound)
                    else f"pack {pack[:16]}: {e}"
                )
                for _blob, targets in group:
                    for file, _offset in targets:
                        self.mark(file, reason)
                continue
            for blob, targets in group:
                try:
                    plain = self.repo.open_blob(
                        blob, data[blob.offset - start : blob.offset - start + blob.length], pack
                    )
                except IntegrityError as e:
                    for file, _offset in targets:
                        self.mark(file, str(e))
                    continue
                for file, offset in targets:
                    self.write(file, offset, plain)

    def write(self, file: _File, offset: int, plain: bytes) -> None:
        view = memoryview(plain)
        fd = os.open(file.path, os.O_WRONLY)
        try:
            for file_offset, lo, hi in place(offset, len(view), file.node.extents):
                os.pwrite(fd, view[lo:hi], file_offset)
        finally:
            os.close(fd)
        with self.lock:
            self.bytes_written += len(view)
            self.progress.bytes_done += len(view)
            file.left -= len(view)
            if file.left == 0:
                self.progress.files_done += 1
            if self.progress_fn is not None:
                self.progress_fn(self.progress)

    def finish(self) -> None:
        for path, rel, node in self.others:
            try:
                if node.type == "symlink":
                    os.symlink(node.target, path)
                elif node.type == "hardlink":
                    os.link(os.path.join(self.target, node.target), path)
                    if node.target in self.damaged:
                        self.damaged[rel] = self.damaged[node.target]
                elif node.type == "fifo":
                    os.mkfifo(path, 0o600)
                elif self.is_root:
                    kind = 0o020000 if node.type == "chardev" else 0o060000
                    os.mknod(path, kind | 0o600, node.rdev)
                else:
                    continue
            except FileExistsError:
                pass
            except OSError as e:
                self.damaged[rel] = f"cannot create {node.type}: {e.strerror}"
                continue
            if node.type != "hardlink":
                self.metadata(path, node)
        for file in self.files:
            self.metadata(file.path, file.node)
        for path, node in self.kept:
            self.metadata(path, node)
        for path, node in reversed(self.dirs):
            self.metadata(path, node)

    def metadata(self, path: str, node: Node) -> None:
        link = node.type == "symlink"
        if self.is_root:
            os.chown(path, node.uid, node.gid, follow_symlinks=False)
        for name, error in write_xattrs(path, node.xattrs):  # after chown: it clears security.capability
            why = error.strerror or str(error)
            first = f"{name} of {os.path.relpath(path, self.target)}"
            count, first = self.xattr_failures.get(why, (0, first))
            self.xattr_failures[why] = (count + 1, first)
        if not link:
            os.chmod(path, node.mode)
        if node.mtime_ns:
            os.utime(path, ns=(node.atime_ns or node.mtime_ns, node.mtime_ns), follow_symlinks=False)

    def prepare(self) -> None:
        """Decide what to write in an existing tree (the delta restore's); a plain restore writes all."""

    def result(self, snapshot_id: str) -> RestoreResult:
        size = sum(f.node.size for f in self.files)
        result = RestoreResult(snapshot_id, len(self.files), size, self.damaged)
        result.files_written, result.bytes_written = len(self.files), self.bytes_written
        return result


def selected(repo: Repository, root: bytes, target: Path, path: str) -> tuple[bytes, str, str, str]:
    """Where a walk of ``path`` of the tree ``root`` starts: (tree id, directory, relative path, name).

    The whole tree is (root, target, "", ""); a single path starts in its parent directory, walking
    only the entry of that name, so nothing beside it is written, removed or compared.
    """
    rel = path.strip("/")
    if not rel:
        return root, str(target), "", ""
    if (node := node_at(repo, root, rel)) is None:
        raise IntegrityError(f"{rel} is not in the snapshot")
    parent, _, name = rel.rpartition("/")
    tree = root
    if parent:
        up = node_at(repo, root, parent)
        assert up is not None and up.type == "dir", node
        tree = up.subtree
    where = target / parent if parent else target
    where.mkdir(parents=True, exist_ok=True)
    return tree, str(where), parent, name


def node_at(repo: Repository, root: bytes, rel: str) -> Node | None:
    """The node at ``rel`` in the tree ``root`` (a hard link's target), read one directory at a time."""
    tree_id, found = root, None
    for name in rel.split("/"):
        if found is not None:
            if found.type != "dir":
                return None
            tree_id = found.subtree
        found = next((node for node in repo.read_tree(tree_id).nodes if node.name == name), None)
        if found is None:
            return None
    return found
