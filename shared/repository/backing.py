"""Backing up a directory tree into the repository, incrementally, with bounded memory.

The walk is depth-first in name order; each directory becomes one tree blob written after its
children, so a tree blob id is known only once its whole subtree is stored (restic's design). Against
a parent snapshot, a file whose size, mtime and inode did not change keeps its chunk list unread.

Threads, on purpose: the walking thread reads files and cuts them with FastCDC (2.5 GB/s, cheap);
``cpu_count`` workers hash (BLAKE3), compress (zstd) and encrypt (AES-GCM) — all release the GIL —
and the packer's upload pool writes 16 MiB packs. A semaphore bounds the chunks in flight, so memory
stays flat (a few packs plus a few chunks) whatever the volume size.

A file that changes while it is read is stored as read, flagged in the snapshot's warnings, and keeps
its *old* mtime so that the next backup reads it again. Unreadable entries are warnings, not failures:
the snapshot is written and the result says it is partial.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyfastcdc import FastCDC

from shared.repository.files import ExtentReader, data_extents, scan_totals
from shared.repository.formats import DATA, TREE, Node, Snapshot, Tree
from shared.repository.packing import Packer
from shared.repository.recovering import index_orphan_packs
from shared.repository.repo import Repository, default_threads

log = logging.getLogger("ferry.repository")


@dataclass
class Progress:
    """What a progress bar or a NATS event needs; totals are 0 until the pre-scan finishes."""

    bytes_done: int = 0
    bytes_total: int = 0
    files_done: int = 0
    files_total: int = 0
    new_bytes: int = 0
    path: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass
class BackupResult:
    snapshot_id: str
    snapshot: Snapshot

    @property
    def partial(self) -> bool:
        return bool(self.snapshot.stats.warnings)


class _Backup:
    def __init__(
        self, repo: Repository, packer: Packer, record: Snapshot, threads: int, progress: ProgressFn | None
    ) -> None:
        self.repo, self.packer, self.record = repo, packer, record
        self.stats = record.stats
        cfg = repo.config
        self.chunker = FastCDC(cfg.chunker_avg, min_size=cfg.chunker_min, max_size=cfg.chunker_max)
        self.small = cfg.chunker_min
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="ferry-chunk")
        self.finisher = ThreadPoolExecutor(1, thread_name_prefix="ferry-trees")
        self.slots = threading.BoundedSemaphore(4 * threads + 8)
        self.links: dict[tuple[int, int], str] = {}
        self.progress_fn = progress
        self.progress = Progress()
        self._last_report = 0.0
        self.index = repo.index

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress_fn is None or (not force and now - self._last_report < 0.2):
            return
        self._last_report = now
        self.progress.new_bytes = self.packer.stats.new_bytes
        self.progress_fn(self.progress)

    def _store_chunk(self, data: bytes) -> bytes:
        try:
            blob_id = self.repo.cipher.chunk_id(data)
            self.packer.add(blob_id, DATA, data)
            return blob_id
        finally:
            self.slots.release()

    def _submit(self, data: bytes) -> Future[bytes]:
        self.packer.raise_failure()  # an upload failed: stop reading the volume now, not at the end
        self.slots.acquire()
        return self.pool.submit(self._store_chunk, data)

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        self.stats.warnings.append(message)

    def save_dir(self, path: str, rel: str, parent: Tree | None) -> Future[bytes]:
        """Walk one directory; its tree blob is finished later, by the finisher thread (see below)."""
        old = {node.name: node for node in parent.nodes} if parent else {}
        try:
            with os.scandir(path) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            self.warn(f"cannot read directory {rel or '.'}: {e.strerror}")
            entries = []
        nodes: list[Node] = []
        pending: list[tuple[Node, list[Future[bytes]]]] = []
        subdirs: list[tuple[Node, Future[bytes]]] = []
        for entry in entries:
            child_rel = f"{rel}/{entry.name}" if rel else entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError as e:
                self.warn(f"cannot stat {child_rel}: {e.strerror}")
                continue
            node = Node(
                entry.name,
                "file",
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                st.st_mtime_ns,
                0,
                0,
                st.st_ino,
            )
            mode = st.st_mode
            if stat.S_ISDIR(mode):
                node.type = "dir"
                previous = old.get(entry.name)
                sub = (
                    self.repo.read_tree(previous.subtree)
                    if previous and previous.type == "dir" and previous.subtree in self.index
                    else None
                )
                subdirs.append((node, self.save_dir(entry.path, child_rel, sub)))
                self.stats.dirs += 1
            elif stat.S_ISLNK(mode):
                node.type = "symlink"
                node.target = os.readlink(entry.path)
            elif stat.S_ISREG(mode):
                self.stats.files += 1
                self.progress.files_done += 1
                first = self.links.get((st.st_dev, st.st_ino)) if st.st_nlink > 1 else None
                if first is not None:
                    node.type, node.target, node.size = "hardlink", first, st.st_size
                    nodes.append(node)
                    continue
                futures = self.save_file(entry.path, child_rel, node, st, old.get(entry.name))
                if futures is None:
                    continue
                if st.st_nlink > 1:  # later links of this inode point here (only if it was readable)
                    self.links[(st.st_dev, st.st_ino)] = child_rel
                if futures:  # an unchanged file already has its chunk list from the parent
                    pending.append((node, futures))
            elif stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                node.type = "fifo" if stat.S_ISFIFO(mode) else "chardev" if stat.S_ISCHR(mode) else "blockdev"
                node.rdev = st.st_rdev
            else:  # sockets cannot be restored meaningfully
                continue
            nodes.append(node)
            self.report()
        # Waiting here for this directory's chunks would drain the pipeline at the end of every
        # directory; one finisher thread does it instead, in walk order (children before parents).
        return self.finisher.submit(self._finish_dir, nodes, pending, subdirs)

    def _finish_dir(
        self,
        nodes: list[Node],
        pending: list[tuple[Node, list[Future[bytes]]]],
        subdirs: list[tuple[Node, Future[bytes]]],
    ) -> bytes:
        for node, futures in pending:
            node.content = [future.result() for future in futures]
        for node, subtree in subdirs:
            node.subtree = subtree.result()
        tree_id, data = self.repo.encode_tree(Tree(nodes))
        self.packer.add(tree_id, TREE, data)
        return tree_id

    def save_file(
        self, path: str, rel: str, node: Node, st: os.stat_result, old: Node | None
    ) -> list[Future[bytes]] | None:
        self.stats.bytes += st.st_size
        if (
            old is not None
            and old.type == "file"
            and (old.size, old.mtime_ns, old.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
            and all(chunk in self.index for chunk in old.content)
        ):
            node.size, node.content, node.extents = old.size, old.content, old.extents
            self.stats.reused_files += 1
            self.progress.bytes_done += st.st_size
            return []
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
        except PermissionError:
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError as e:
                self.warn(f"cannot read {rel}: {e.strerror}")
                return None
        except OSError as e:
            self.warn(f"cannot read {rel}: {e.strerror}")
            return None
        futures: list[Future[bytes]] = []
        try:
            extents = data_extents(fd, st)
            read = 0
            if extents is None and st.st_size <= self.small:
                data = b""
                while True:
                    block = os.read(fd, max(self.small + 1 - len(data), 65536))
                    if not block:
                        break
                    data += block
                if data:
                    futures.append(self._submit(data))
                read = len(data)
            else:
                reader = ExtentReader(fd, extents)
                for chunk in self.chunker.cut_stream(reader):
                    futures.append(self._submit(bytes(chunk.data)))
                    self.progress.bytes_done += chunk.length
                    self.report()
                read = reader.total
                self.progress.bytes_done -= read
            self.progress.bytes_done += read
            self.stats.bytes_read += read
            after = os.fstat(fd)
        finally:
            os.close(fd)
        node.extents = extents
        node.size = st.st_size if extents is not None else read
        if (after.st_size, after.st_mtime_ns, after.st_ctime_ns) != (
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
        ) or (extents is None and read != st.st_size):
            self.warn(f"file changed while it was read, stored as read ({read} bytes): {rel}")
            node.mtime_ns = 0  # never matches a later stat: the next backup reads it again
        return futures


def backup(
    repo: Repository,
    source: str | Path,
    *,
    name: str | None = None,
    group: str | None = None,
    tags: dict[str, str] | None = None,
    parent: str | None = "auto",
    progress: ProgressFn | None = None,
    threads: int | None = None,
    upload_threads: int = 4,
    limit_upload: float | None = None,
) -> BackupResult:
    """Back up ``source`` as one snapshot record; ``parent="auto"`` picks the latest of the same name."""
    source = Path(source).absolute()
    if not source.is_dir():
        raise NotADirectoryError(f"not a directory: {source}")
    name = name or source.name or "root"
    started = time.monotonic()
    record = repo.new_record("tree", name, group, tags)
    record.source = str(source)
    with ThreadPoolExecutor(3, thread_name_prefix="ferry-open") as pool:
        # Independent round trips to the store, overlapped: the lock, the index, the snapshot list.
        locking = pool.submit(repo.lock(purpose=f"backup {name}").acquire)
        indexing = pool.submit(lambda: index_orphan_packs(repo))
        listing = pool.submit(repo.snapshots, name=name) if parent == "auto" else None
        pending: list[Future[Any]] = [f for f in (locking, indexing, listing) if f is not None]
        wait(pending)
        lock = locking.result()
    try:
        indexing.result()
        parent_tree: Tree | None = None
        if listing is not None:
            same = [
                s
                for s in listing.result()
                if s[1].kind == "tree" and s[1].tags.get("app") == record.tags.get("app")
            ]
            parent = same[-1][0] if same else None
        if parent:
            parent, parent_record = repo.load_snapshot(parent)
            record.parent = parent
            if parent_record.root in repo.index:
                parent_tree = repo.read_tree(parent_record.root)
        packer = Packer(
            repo.store,
            repo.cipher,
            repo.index,
            repo.config.pack_size,
            upload_threads=upload_threads,
            limit_upload=limit_upload,
        )
        job = _Backup(repo, packer, record, threads or default_threads(), progress)
        # Totals only serve a progress display (ETA): nobody watching, no second walk of the tree.
        totals = threading.Thread(
            target=scan_totals, args=(source, job.progress), name="ferry-scan", daemon=True
        )
        if progress is not None:
            totals.start()
        try:
            record.root = job.save_dir(str(source), "", parent_tree).result()
            job.finisher.shutdown(wait=True)
            job.pool.shutdown(wait=True)
            packer.flush()
        except BaseException:
            job.pool.shutdown(wait=True, cancel_futures=True)
            job.finisher.shutdown(wait=True, cancel_futures=True)
            packer.abort()
            raise
        finally:
            packer.close()
        if progress is not None:
            totals.join()
        record.size = record.stats.bytes
        record.stats.new_bytes = packer.stats.new_bytes
        record.stats.stored_bytes = packer.stats.stored_bytes
        record.stats.new_chunks = packer.stats.new_chunks
        record.stats.duration = time.monotonic() - started
        lock.check()
        snapshot_id = repo.save_snapshot(record)
        job.report(force=True)
    finally:
        lock.release()
    return BackupResult(snapshot_id, record)
