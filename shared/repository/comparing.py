"""Comparing a live directory tree with a snapshot, read-only: the proof that a restored volume is right.

restic's ``restore --verify`` and ``diff`` are the anchors: nothing is written to the repository — no
lock object, no snapshot, no pack — so a verification can run beside anything and leaves no trace to
clean up. Every byte of every regular file is read and hashed (no size/mtime shortcut: a file changed
behind a forced-back mtime is found), against the snapshot's own chunk boundaries (``proving.py``).

Compared per path, with the wording people read in a verification report: presence, type, size,
content, symlink target and permission bits. Ownership is not compared (a restore not running as root
cannot set it) and neither are times nor extended attributes. ``lost+found`` at the root of the live
tree is the file system's, not the application's. An extra directory is named once, not file by file,
and a directory of another type is not looked into.

A hard link of the snapshot is right when the live path is a regular file with its target's content:
the same inode as the live target, or a copy that proves equal.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from shared.repository.backing import Progress, ProgressFn
from shared.repository.errors import IntegrityError
from shared.repository.formats import Node
from shared.repository.proving import Chunk, Prover, Tasks, chunk_layout, open_for_reading, units
from shared.repository.repo import Repository, default_threads
from shared.repository.restoring import node_at
from shared.store import StoreError

IGNORED_ROOT_ENTRIES = frozenset({"lost+found"})
EXTRA = "not in the snapshot (an extra file in the restored volume)"
MISSING = "missing from the restored volume"


@dataclass
class Comparison:
    snapshot_id: str
    files: int = 0  # regular files in the snapshot
    bytes: int = 0  # their bytes
    bytes_read: int = 0  # bytes read from the live tree to prove them
    differences: dict[str, str] = field(default_factory=dict)  # relative path -> reason

    @property
    def equal(self) -> bool:
        return not self.differences


# st_mode test -> the snapshot's name for the type, most common first; anything else is a socket
_KINDS: tuple[tuple[Callable[[int], bool], str], ...] = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "dir"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISCHR, "chardev"),
    (stat.S_ISBLK, "blockdev"),
)


def kind_of(mode: int) -> str:
    """The snapshot's name for the type of a file with ``st_mode`` ``mode``."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "socket"


def content_differs(have: int, want: int) -> str:
    return f"content differs ({have} bytes restored, {want} in the snapshot)"


class _File:
    """One file being proven; the last of its tasks to finish counts it done."""

    def __init__(self, rel: str, size: int, tasks: int) -> None:
        self.rel, self.size, self.tasks = rel, size, tasks


class _Compare:
    def __init__(
        self, repo: Repository, root: bytes, target: Path, tasks: Tasks, progress: ProgressFn | None
    ) -> None:
        self.repo, self.root, self.target, self.tasks = repo, root, target, tasks
        self.prover = Prover(repo)
        self.lock = threading.Lock()
        self.differences: dict[str, str] = {}
        self.content: dict[str, str] = {}  # content differences: they outrank a mode difference
        self.links: list[tuple[str, Node]] = []
        self.files = self.bytes = 0
        self.progress, self.progress_fn = Progress(), progress

    def walk(self, tree_id: bytes, path: str, rel: str, only: str = "") -> None:
        try:
            tree = self.repo.read_tree(tree_id)
        except (IntegrityError, StoreError) as e:
            self.differences[rel or "."] = (
                f"cannot be compared: the snapshot's directory listing is lost ({e})"
            )
            return
        nodes = [node for node in tree.nodes if not only or node.name == only]
        names = {node.name for node in nodes}
        try:
            with os.scandir(path) as entries:
                extra = [e.name for e in entries if e.name not in names and not only]
        except OSError as e:
            self.differences[rel or "."] = f"cannot be read: {e.strerror}"
            return
        for name in extra:
            if not (rel == "" and name in IGNORED_ROOT_ENTRIES):
                self.differences[f"{rel}/{name}" if rel else name] = EXTRA
        for node in nodes:
            child, child_rel = os.path.join(path, node.name), f"{rel}/{node.name}" if rel else node.name
            if node.type == "file":
                self.files += 1
                self.bytes += node.size
                self.progress.files_total += 1
                self.progress.bytes_total += node.size
            elif node.type == "hardlink":
                self.links.append((child_rel, node))  # its target may come later: proven after the walk
                continue
            try:
                st = os.lstat(child)
            except FileNotFoundError:
                self.differences[child_rel] = MISSING
                continue
            except OSError as e:
                self.differences[child_rel] = f"cannot be read: {e.strerror}"
                continue
            have = kind_of(st.st_mode)
            if have != node.type:
                self.differences[child_rel] = f"is a {have}, the snapshot has a {node.type}"
                continue
            if node.type == "symlink":
                if (target := os.readlink(child)) != node.target:
                    self.differences[child_rel] = f"points to {target!r}, the snapshot to {node.target!r}"
                continue
            if node.type == "file" and st.st_size != node.size:
                self.differences[child_rel] = content_differs(st.st_size, node.size)
                continue
            self.check_mode(child_rel, st, node)
            if node.type == "dir":
                self.walk(node.subtree, child, child_rel)
            elif node.type == "file":
                self.prove(child, child_rel, node)

    def check_mode(self, rel: str, st: os.stat_result, node: Node) -> None:
        if stat.S_IMODE(st.st_mode) != node.mode & 0o7777:
            self.differences[rel] = (
                f"mode {stat.S_IMODE(st.st_mode):o}, the snapshot has {node.mode & 0o7777:o}"
            )

    def prove(self, path: str, rel: str, node: Node) -> None:
        """Hash the file's bytes against ``node``'s chunks on the pool, a unit of chunks per task."""
        chunks, problem = chunk_layout(self.repo, node)
        if problem:
            self.content[rel] = f"content cannot be proven: {problem}"
            return
        runs = list(units(chunks))
        file = _File(rel, node.size, len(runs) + (node.extents is not None))
        if file.tasks == 0:
            self.done(file, True)
            return
        for run in runs:
            self.tasks.submit(partial(self.prove_run, path, node, run, file))
        if node.extents is not None:
            self.tasks.submit(partial(self.prove_holes, path, node, file))

    def prove_run(self, path: str, node: Node, run: list[Chunk], file: _File) -> None:
        try:
            fd = open_for_reading(path)
            try:
                ok = not self.prover.differing(fd, node.extents, run)
            finally:
                os.close(fd)
        except OSError as e:
            self.done(file, False, why=f"cannot be read: {e.strerror}")
            return
        self.done(file, ok, sum(chunk[3] for chunk in run))

    def prove_holes(self, path: str, node: Node, file: _File) -> None:
        try:
            fd = open_for_reading(path)
            try:
                ok = self.prover.zeros_outside(fd, node.size, node.extents or [])
            finally:
                os.close(fd)
        except OSError as e:
            self.done(file, False, why=f"cannot be read: {e.strerror}")
            return
        self.done(file, ok)

    def done(self, file: _File, ok: bool, proven: int = 0, why: str = "") -> None:
        with self.lock:
            if not ok:
                self.content[file.rel] = why or content_differs(file.size, file.size)
            file.tasks -= 1
            self.progress.bytes_done += proven
            if file.tasks <= 0:
                self.progress.files_done += 1
            if self.progress_fn is not None:
                self.progress_fn(self.progress)

    def prove_links(self) -> None:
        for rel, node in self.links:
            path = os.path.join(self.target, rel)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self.differences[rel] = MISSING
                continue
            if not stat.S_ISREG(st.st_mode):
                self.differences[rel] = f"is a {kind_of(st.st_mode)}, the snapshot has a file"
                continue
            self.check_mode(rel, st, node)
            try:
                if os.path.samestat(st, os.lstat(os.path.join(self.target, node.target))):
                    continue  # one inode: the target's own proof covers it
            except FileNotFoundError:
                pass
            target = node_at(self.repo, self.root, node.target)
            if target is None or target.type != "file":
                self.content[rel] = (
                    f"content cannot be proven: its target {node.target!r} is not a file of the snapshot"
                )
            elif st.st_size != target.size:
                self.content[rel] = content_differs(st.st_size, target.size)
            else:
                self.prove(path, rel, target)


def compare(
    repo: Repository,
    snapshot_id: str,
    target: str | Path,
    *,
    threads: int | None = None,
    progress: ProgressFn | None = None,
    path: str = "",
) -> Comparison:
    """Compare the tree under ``target`` with snapshot ``snapshot_id``, reading every byte; read-only.

    With ``path`` (relative to the snapshot's root), only that file or directory is compared."""
    target = Path(target).absolute()
    if not target.is_dir():
        raise NotADirectoryError(f"not a directory: {target}")
    snapshot_id, record = repo.load_snapshot(snapshot_id, kind="tree")
    if record.kind != "tree":
        raise IntegrityError(f"snapshot {snapshot_id[:8]} holds a blob ({record.name}), not a file tree")
    with Tasks(threads or max(2, default_threads()), "ferry-compare") as tasks:
        job = _Compare(repo, record.root, target, tasks, progress)
        rel = path.strip("/")
        if rel and node_at(repo, record.root, rel) is None:
            raise IntegrityError(f"{rel} is not in the snapshot")
        parent, _, name = rel.rpartition("/")
        up = node_at(repo, record.root, parent) if parent else None
        job.walk(
            up.subtree if up is not None else record.root,
            str(target / parent if parent else target),
            parent,
            name,
        )
        job.prove_links()
    differences = {**job.differences, **job.content}
    return Comparison(
        snapshot_id, job.files, job.bytes, job.prover.bytes_read, dict(sorted(differences.items()))
    )
