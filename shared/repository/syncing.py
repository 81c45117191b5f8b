"""Delta restore: bring an existing directory tree to a snapshot's state, fetching only what differs.

rsync's way, with the repository as the source: the live tree and the snapshot's tree are walked side
by side. A regular file whose size, mtime and permission bits equal the snapshot's is kept unread
(rsync's default quick check: ``compare`` is the proof that reads everything). Any other existing
file is proven chunk by chunk against the snapshot's own chunk boundaries (``proving.py``), and only
the chunks it does not hold are fetched and written in place with ``pwrite``; the file is then cut to
its size. Missing files are written whole; entries the snapshot does not have are removed (never
``lost+found`` at the root); an entry of another type, or a symlink with another target, is replaced.

The fetching is the plain restore's (``restoring._Restore``): pack-wise ranged GETs, every blob
verified, damaged files named, then the metadata of every entry, directories last. This class only
walks, decides and proves; ``restoration.restore(..., delta=True)`` runs it under the same shared lock.

Shared inodes are never written in place: a file with other hard links is rewritten whole (a fresh
inode), unless the quick check keeps it, and the snapshot's hard links are then made again. A sparse
file is written in place only when its live bytes outside the snapshot's data regions are zeros.
"""

from __future__ import annotations

import os
import stat
from functools import partial
from pathlib import Path

import msgspec

from shared.repository.backing import ProgressFn
from shared.repository.comparing import IGNORED_ROOT_ENTRIES
from shared.repository.errors import IntegrityError
from shared.repository.formats import Node
from shared.repository.proving import Chunk, Prover, Tasks, chunk_layout, open_for_reading, units
from shared.repository.repo import Repository, default_threads
from shared.repository.restoring import RestoreResult, _File, _Restore
from shared.store import StoreError

_DEVICES = {"fifo": stat.S_ISFIFO, "chardev": stat.S_ISCHR, "blockdev": stat.S_ISBLK}


def remove(path: str) -> int:
    """Delete ``path`` and, for a directory, all it holds (made writable first): the entries deleted."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return 1
    if st.st_mode & 0o700 != 0o700:
        os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
    with os.scandir(path) as entries:
        names = [entry.name for entry in entries]
    count = 1 + sum(remove(os.path.join(path, name)) for name in names)
    os.rmdir(path)
    return count


class _Candidate:
    """An existing file being proven against its node: which chunks it lacks, whether to rewrite it."""

    def __init__(self, file: _File, live_size: int) -> None:
        self.file, self.live_size = file, live_size
        self.differing: set[int] = set()
        self.rewrite = False


class Delta(_Restore):
    """A restore into a tree that may already hold an older (or the same) state of the snapshot."""

    def __init__(self, repo: Repository, target: Path, progress: ProgressFn | None) -> None:
        super().__init__(repo, target, progress)
        self.candidates: list[_Candidate] = []
        self.inodes: set[tuple[int, int]] = set()  # live inodes kept as some file of the snapshot
        self.removed = 0
        self.files_skipped = self.bytes_skipped = 0

    def walk(self, tree_id: bytes, path: str, rel: str, only: str = "") -> None:
        try:
            tree = self.repo.read_tree(tree_id)
        except (IntegrityError, StoreError) as e:
            self.damaged[rel or "."] = f"directory listing lost: {e}"
            return  # nothing is removed from a directory whose listing is lost
        nodes = [node for node in tree.nodes if not only or node.name == only]
        names = {node.name for node in nodes}
        live: dict[str, os.stat_result] = {}
        with os.scandir(path) as entries:
            for entry in entries:
                if entry.name in names:
                    live[entry.name] = entry.stat(follow_symlinks=False)
                elif not only and not (rel == "" and entry.name in IGNORED_ROOT_ENTRIES):
                    self.removed += remove(entry.path)  # (with ``only``, what is beside it is not ours)
        for node in nodes:
            child, child_rel = os.path.join(path, node.name), f"{rel}/{node.name}" if rel else node.name
            st = live.get(node.name)
            if node.type == "dir":
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    self.replace(child)
                    st = None
                if st is None:
                    os.mkdir(child, 0o700)
                elif st.st_mode & 0o700 != 0o700:  # its mode is set again last
                    os.chmod(child, stat.S_IMODE(st.st_mode) | 0o700)
                self.dirs.append((child, node))
                self.walk(node.subtree, child, child_rel)
            elif node.type == "file":
                self.progress.files_total += 1
                self.progress.bytes_total += node.size
                self.decide(_File(child, child_rel, node), st)
            elif node.type == "hardlink":
                self.others.append((child, child_rel, node))  # decided in finish, its target written
            elif st is not None and self.same_special(child, st, node):
                self.kept.append((child, node))
            else:
                if st is not None:
                    self.replace(child)
                self.others.append((child, child_rel, node))

    def replace(self, path: str) -> None:
        """Remove an entry of the wrong type; what was under a directory counts as removed."""
        self.removed += remove(path) - 1

    def same_special(self, path: str, st: os.stat_result, node: Node) -> bool:
        if node.type == "symlink":
            return stat.S_ISLNK(st.st_mode) and os.readlink(path) == node.target
        is_type = _DEVICES.get(node.type)
        return (
            is_type is not None and is_type(st.st_mode) and (node.type == "fifo" or st.st_rdev == node.rdev)
        )

    def decide(self, file: _File, st: os.stat_result | None) -> None:
        node = file.node
        if st is None:
            self.files.append(file)
            return
        if not stat.S_ISREG(st.st_mode):
            self.replace(file.path)
            self.files.append(file)
            return
        inode = (st.st_dev, st.st_ino)
        shared = st.st_nlink > 1
        if shared and inode in self.inodes:  # another file of the snapshot kept this inode
            os.unlink(file.path)
            self.files.append(file)
        elif (st.st_size, st.st_mtime_ns, stat.S_IMODE(st.st_mode)) == (node.size, node.mtime_ns, node.mode):
            self.inodes.add(inode)
            self.skip(file)
        elif shared:  # written in place, it would change its other links too
            os.unlink(file.path)
            self.files.append(file)
        else:
            self.inodes.add(inode)
            self.candidates.append(_Candidate(file, st.st_size))

    def skip(self, file: _File) -> None:
        self.kept.append((file.path, file.node))
        self.files_skipped += 1
        self.bytes_skipped += file.node.size
        self.progress.files_done += 1
        self.progress.bytes_done += file.node.size

    def prepare(self) -> None:
        """Prove the existing files that failed the quick check, on a pool; then decide each."""
        prover = Prover(self.repo)
        with Tasks(max(2, default_threads()), "ferry-delta") as tasks:
            for candidate in self.candidates:
                chunks, problem = chunk_layout(self.repo, candidate.file.node)
                if problem:  # written whole: the plan then names the file damaged
                    candidate.rewrite = True
                    continue
                for run in units(chunks):
                    tasks.submit(partial(self.prove, prover, candidate, run))
                if candidate.file.node.extents is not None:
                    tasks.submit(partial(self.prove_holes, prover, candidate))
        for candidate in self.candidates:
            file = candidate.file
            if candidate.rewrite:
                os.unlink(file.path)
                self.files.append(file)
            elif not candidate.differing and candidate.live_size == file.node.size:
                self.skip(file)
            else:
                file.fresh, file.only = False, candidate.differing
                mode = os.stat(file.path).st_mode
                if mode & 0o200 == 0:  # its mode is set again afterwards
                    os.chmod(file.path, stat.S_IMODE(mode) | 0o200)
                self.files.append(file)
        self.candidates = []

    def prove(self, prover: Prover, candidate: _Candidate, run: list[Chunk]) -> None:
        try:
            fd = open_for_reading(candidate.file.path)
            try:
                differing = prover.differing(fd, candidate.file.node.extents, run)
            finally:
                os.close(fd)
        except OSError:
            with self.lock:
                candidate.rewrite = True
            return
        with self.lock:
            candidate.differing.update(differing)

    def prove_holes(self, prover: Prover, candidate: _Candidate) -> None:
        node = candidate.file.node
        try:
            fd = open_for_reading(candidate.file.path)
            try:
                zeros = prover.zeros_outside(fd, node.size, node.extents or [])
            finally:
                os.close(fd)
        except OSError:
            zeros = False
        if not zeros:
            with self.lock:
                candidate.rewrite = True

    def finish(self) -> None:
        others = []
        for path, rel, node in self.others:
            if node.type == "hardlink":
                try:
                    st = os.lstat(path)
                except FileNotFoundError:
                    st = None
                if st is not None:
                    target = os.path.join(self.target, node.target)
                    if os.path.lexists(target) and os.path.samestat(st, os.lstat(target)):
                        if node.target in self.damaged:  # already this link
                            self.damaged[rel] = self.damaged[node.target]
                        continue
                    self.replace(path)
            others.append((path, rel, node))
        self.others = others
        super().finish()

    def metadata(self, path: str, node: Node) -> None:
        """A damaged file keeps the time it was written: the next delta restore must not skip it."""
        if self.damaged and os.path.relpath(path, self.target) in self.damaged:
            node = msgspec.structs.replace(node, mtime_ns=0)
        super().metadata(path, node)

    def result(self, snapshot_id: str) -> RestoreResult:
        result = super().result(snapshot_id)
        result.files += self.files_skipped
        result.bytes += self.bytes_skipped
        result.files_skipped, result.bytes_skipped = self.files_skipped, self.bytes_skipped
        result.removed = self.removed
        return result
