"""Backing up a directory tree into the repository, incrementally, with bounded memory.

The walk is depth-first in name order; each directory becomes one tree blob written after its
children, so a tree blob id is known only once its whole subtree is stored (restic's design). Against
a parent snapshot, a file whose size, mtime and inode did not change keeps its chunk list unread.

Threads, on purpose: the walking thread reads files and cuts them with FastCDC (2.5 GB/s, cheap);
``cpu_count`` workers hash (BLAKE3), compress (zstd) and encrypt (AES-GCM) — all release the GIL —
and the packer's upload pool writes 16 MiB packs. A semaphore bounds the chunks in flight, so memory
stays flat (a few packs plus a few chunks) whatever the volume size.

Files are read into a few reused ~20 MiB blocks (``_Blocks``) and a chunk travels to its worker as a
view of its block, never copied: copying each chunk into a fresh ``bytes`` held the GIL for ~1 s per
GB and kept the workers waiting. Reading (``readv``) and cutting (FastCDC) release the GIL, so the
walking thread hardly competes with the workers; a reader thread fills the next block of a big file
while the walking thread cuts the current one. Several files share a block; a block goes back to
the pool when the last worker is done with its chunks. The cuts are the same as a streaming
FastCDC's: a cut is taken only with ``max_size`` bytes ahead of it (or the end of the file), the rest
is carried to the next block.

A file that changes while it is read is stored as read, flagged in the snapshot's warnings, and keeps
its *old* mtime so that the next backup reads it again. Unreadable entries are warnings, not failures:
the snapshot is written and the result says it is partial.
"""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyfastcdc import FastCDC

from shared.memory import anonymous
from shared.repository.files import ExtentReader, data_extents, read_xattrs, scan_totals
from shared.repository.formats import DATA, TREE, Node, Snapshot, Tree
from shared.repository.locking import Lock
from shared.repository.packing import Packer
from shared.repository.recovering import index_orphan_packs
from shared.repository.repo import Repository, default_threads

log = logging.getLogger("ferry.repository")
READ_BLOCK = 16 * 1024 * 1024  # bytes read per block (plus room for one chunk carried over)


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


class _Block:
    """A reusable read buffer; ``refs`` counts the reader (while it fills it) and chunks in flight."""

    __slots__ = ("view", "refs", "fill")

    def __init__(self, size: int) -> None:
        # Anonymous memory: zeroed by the kernel page by page as it is first used, where a bytearray
        # of this size would be cleared whole up front (a tenth of a second for a few blocks).
        self.view = memoryview(anonymous(size))
        self.refs = 0
        self.fill = 0  # where the next file's bytes go


class _Blocks:
    """A small pool of read blocks: when all are in use, the reader waits (memory stays bounded)."""

    def __init__(self, count: int, size: int) -> None:
        self.size = size
        self._free: queue.LifoQueue[_Block] = queue.LifoQueue()
        self._left = count
        self._lock = threading.Lock()

    def take(self) -> _Block:
        with self._lock:
            make = self._left > 0
            self._left -= 1 if make else 0
        block = _Block(self.size) if make else self._free.get()
        block.refs, block.fill = 1, 0
        return block

    def hold(self, block: _Block) -> None:
        with self._lock:
            block.refs += 1

    def release(self, block: _Block) -> None:
        with self._lock:
            block.refs -= 1
            free = block.refs == 0
        if free:
            self._free.put(block)


def _fill(reader: ExtentReader, view: memoryview, end: int) -> tuple[int, bool]:
    """Read into ``view[end:]`` until it is full or the file ends: (where the data ends, at EOF)."""
    while end < view.nbytes:
        n = reader.readinto(view[end:])
        if n <= 0:
            return end, True
        end += n
    return end, False


def _stored(chunk_id: bytes) -> Future[bytes]:
    """A chunk the repository already has, as the finished future of its id."""
    future: Future[bytes] = Future()
    future.set_result(chunk_id)
    return future


class _Backup:
    def __init__(
        self, repo: Repository, packer: Packer, record: Snapshot, threads: int, progress: ProgressFn | None
    ) -> None:
        self.repo, self.packer, self.record = repo, packer, record
        self.stats = record.stats
        cfg = repo.config
        self.chunker = FastCDC(cfg.chunker_avg, min_size=cfg.chunker_min, max_size=cfg.chunker_max)
        self.max_chunk = cfg.chunker_max
        self.min_chunk = cfg.chunker_min  # FastCDC never cuts a file this small: one chunk, as it is
        self.blocks = _Blocks(threads + 3, READ_BLOCK + cfg.chunker_max)
        self.block: _Block | None = None  # the block the next file is read into
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="ferry-chunk")
        self.finisher = ThreadPoolExecutor(1, thread_name_prefix="ferry-trees")
        self.reader = ThreadPoolExecutor(1, thread_name_prefix="ferry-read")
        self.slots = threading.BoundedSemaphore(4 * threads + 8)
        self.links: dict[tuple[int, int], str] = {}
        self.progress_fn = progress
        self.progress = Progress()
        self._last_report = 0.0
        self.index = repo.index
        self._local = threading.local()  # each worker's buffer for _holds

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.progress_fn is None or (not force and now - self._last_report < 0.2):
            return
        self._last_report = now
        self.progress.new_bytes = self.packer.stats.new_bytes
        self.progress_fn(self.progress)

    def _store_chunk(self, data: memoryview, block: _Block) -> bytes:
        try:
            blob_id = self.repo.cipher.chunk_id(data)
            self.packer.add(blob_id, DATA, data)
            return blob_id
        finally:
            self.blocks.release(block)
            self.slots.release()

    def _submit(self, data: memoryview, block: _Block) -> Future[bytes]:
        self.packer.raise_failure()  # an upload failed: stop reading the volume now, not at the end
        self.slots.acquire()
        self.blocks.hold(block)
        return self.pool.submit(self._store_chunk, data, block)

    def _block_with_room(self, room: int) -> _Block:
        """The block the next file is read into: the current one if ``room`` bytes are left in it,
        else a fresh one (the current one is let go once its chunks are stored)."""
        block = self.block
        if block is None or block.view.nbytes - block.fill < room:
            if block is not None:
                self.blocks.release(block)
            block = self.block = self.blocks.take()
        return block

    def _read_chunks(
        self, reader: ExtentReader, position: int = 0, resume: _Verifier | None = None
    ) -> tuple[list[Future[bytes]], int, tuple[bytes, int] | None]:
        """Read a file into blocks, cut it, and submit each chunk (a view of its block) to a worker.

        While one block is cut, the reader thread fills the next one after a gap of ``max_chunk``
        bytes, where the uncut tail of this block is then copied: reading and cutting overlap.

        ``position`` is the file offset the reader starts at. With ``resume`` (a guided re-cut, see
        ``_read_guided``), cutting stops at the first cut that lands where the file still holds its
        parent's chunk. Returns the futures of the chunk ids, the offset reached, and that parent
        chunk (id, size), or None at the end of the file.
        """
        block = self._block_with_room(2 * self.max_chunk)
        futures: list[Future[bytes]] = []
        start = block.fill  # the file's bytes not yet cut are block.view[start:end]
        # A guided re-cut mostly finds its parent again a chunk or two on. It reads a step at a time
        # (the max_chunk a cut needs ahead of it, and as much again), not a whole block, and reads no
        # block ahead until it has gone through one: reading (and first touching) 16 MiB or more per
        # changed region would cost more than the re-cut itself.
        step = None if resume is None else 2 * self.max_chunk
        view = block.view
        end, eof = _fill(reader, view if step is None else view[: min(view.nbytes, start + step)], start)
        ahead: Future[tuple[int, bool]] | None = None
        try:
            while True:
                view = block.view
                if not eof and step is None:
                    fresh = self.blocks.take()
                    ahead = self.reader.submit(_fill, reader, fresh.view, self.max_chunk)
                while end > start and (eof or end - start >= self.max_chunk):
                    # (with less than max_chunk ahead, a cut is not sure yet: cut it with the next block)
                    length = next(iter(self.chunker.cut_buf(view[start:end]))).length
                    futures.append(self._submit(view[start : start + length], block))
                    start += length
                    position += length
                    self.progress.bytes_done += length
                    self.report()
                    known = resume(position) if resume is not None else None
                    if known is not None:  # back in step with the parent: the rest read is not needed
                        block.fill = start
                        if ahead is not None:
                            wait([ahead])
                            self.blocks.release(fresh)
                        return futures, position, known
                if eof:  # the end of the file: everything is cut
                    block.fill = end
                    return futures, position, None
                if step is not None:
                    if end < view.nbytes:  # guided: the next step, into this block
                        end, eof = _fill(reader, view[: min(view.nbytes, end + step)], end)
                        continue
                    step = None  # a whole block without finding the parent: read ahead from now on
                    fresh = self.blocks.take()
                    ahead = self.reader.submit(_fill, reader, fresh.view, self.max_chunk)
                assert ahead is not None
                filled, eof = ahead.result()
                ahead = None
                carry = end - start  # less than one chunk
                fresh.view[self.max_chunk - carry : self.max_chunk] = view[start:end]
                self.blocks.release(block)
                block = self.block = fresh
                start, end = self.max_chunk - carry, filled
        except BaseException:
            if ahead is not None:  # the file is closed next: let the reader be done with it first
                wait([ahead])
            raise

    def _read_small(self, fd: int, size: int) -> tuple[list[Future[bytes]], int]:
        """A file of one chunk: read into the current block with one call and submitted, not cut.

        It reads the ``size`` the file had when listed and no more, and does not read again to meet
        the end of the file: a file that grew or shrank meanwhile is stored as read, and
        ``save_file``'s second ``fstat`` reports the change.
        """
        block = self._block_with_room(size)
        start = block.fill
        view = block.view[start : start + size]
        read, _ = _fill(ExtentReader(fd, None), view, 0)  # less than size if the file is shorter now
        block.fill = start + read
        self.progress.bytes_done += read
        self.report()
        return ([self._submit(view[:read], block)] if read else []), read

    def _read_guided(self, fd: int, guide: dict[int, tuple[bytes, int]]) -> tuple[list[Future[bytes]], int]:
        """Back up a changed file against its parent's chunks (``_guide``): (chunk futures, size read).

        Where the file still holds the parent's chunk at that chunk's offset, FastCDC would cut that
        very chunk there, so it is reused with no cutting and no worker; the workers check this a
        few chunks ahead (``_Verifier``), each reading into its own small buffer and hashing it while
        it is still in the CPU cache. From an offset that does not check out, the file is read and
        cut as usual until a cut lands on one that does. A database file rewritten in a few pages is
        thus hashed, not cut, except around what changed.
        """
        futures: list[Future[bytes]] = []
        position = 0
        verifier = _Verifier(self, fd, guide)
        try:
            known = verifier(position)
            while True:
                if known is None:
                    os.lseek(fd, position, os.SEEK_SET)
                    cut, position, known = self._read_chunks(ExtentReader(fd, None), position, verifier)
                    futures += cut
                    if known is None:
                        return futures, position
                chunk_id, length = known
                futures.append(_stored(chunk_id))
                position += length
                self.progress.bytes_done += length
                self.report()
                known = verifier(position)
        finally:
            verifier.close()

    def _holds(self, fd: int, offset: int, length: int, chunk_id: bytes) -> bool:
        """Whether the file's bytes at ``offset`` are the chunk ``chunk_id`` (run on a worker)."""
        buffer: memoryview | None = getattr(self._local, "buffer", None)
        if buffer is None:  # one per worker, reused: the bytes are hashed while still in its cache
            buffer = self._local.buffer = memoryview(anonymous(self.max_chunk))
        view = buffer[:length]
        done = 0
        while done < length:
            n = os.preadv(fd, [view[done:]], offset + done)
            if n == 0:  # the file is shorter now
                return False
            done += n
        return self.repo.cipher.chunk_id(view) == chunk_id

    def _guide(self, old: Node | None, extents: list[tuple[int, int]] | None) -> dict[int, tuple[bytes, int]]:
        """The parent's chunks of a changed dense file, by offset, where FastCDC's cut cannot depend on
        where the parent file ended: at least ``max_chunk`` bytes before its end (a cut only looks at
        the bytes of its own chunk, given ``max_chunk`` of them ahead)."""
        if old is None or old.type != "file" or old.extents is not None or extents is not None:
            return {}
        guide: dict[int, tuple[bytes, int]] = {}
        offset = 0
        for chunk in old.content:
            found = self.index.get(chunk)
            if found is None:
                return {}
            guide[offset] = (chunk, found[1].size)
            offset += found[1].size
        return {at: known for at, known in guide.items() if at + self.max_chunk <= offset}

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
            try:
                node.xattrs = read_xattrs(entry.path)
            except OSError as e:
                self.warn(f"cannot read the extended attributes of {child_rel}: {e.strerror}")
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
        try:
            extents = data_extents(fd, st)
            guide = self._guide(old, extents)
            if guide:
                futures, read = self._read_guided(fd, guide)
            elif extents is None and 0 < st.st_size <= self.min_chunk:
                futures, read = self._read_small(fd, st.st_size)
            else:
                reader = ExtentReader(fd, extents)
                futures = self._read_chunks(reader)[0]
                read = reader.total
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


class _Verifier:
    """Whether a changed file still holds its parent's chunk at an offset, checked ahead on the workers.

    Called with increasing offsets; the checks of the next ``AHEAD`` offsets of the parent's chunks
    run on the workers meanwhile. Checks left behind (the cutting moved past them) are dropped, so a
    file rewritten from end to end costs ``AHEAD`` wasted checks, not a second pass.
    """

    AHEAD = 16

    def __init__(self, job: _Backup, fd: int, guide: dict[int, tuple[bytes, int]]) -> None:
        self.job, self.fd, self.guide = job, fd, guide
        self.offsets = sorted(guide)
        self.next = 0  # the index in offsets of the next check to start
        self.pending: dict[int, Future[bool]] = {}

    def __call__(self, position: int) -> tuple[bytes, int] | None:
        """The parent's chunk (id, size) that the file holds at ``position``, or None."""
        known = self.guide.get(position)
        if known is None:
            return None
        for behind in [offset for offset in self.pending if offset < position]:
            self.pending.pop(behind).cancel()
        while self.next < len(self.offsets) and self.offsets[self.next] < position:
            self.next += 1
        while self.next < len(self.offsets) and len(self.pending) < self.AHEAD:
            offset = self.offsets[self.next]
            self.next += 1
            chunk_id, length = self.guide[offset]
            self.pending[offset] = self.job.pool.submit(self.job._holds, self.fd, offset, length, chunk_id)
        check = self.pending.pop(position, None)  # None only if this offset was asked for before
        if check is not None and check.cancel():
            # Not started: it waits behind the chunks just cut from a changed region. Waiting for
            # them all to be stored would stall the walk; this thread checks it itself instead.
            check = None
        chunk_id, length = known
        holds = check.result() if check else self.job._holds(self.fd, position, length, chunk_id)
        return known if holds else None

    def close(self) -> None:
        """Drop the checks not started and wait for the others: the file is closed next."""
        for check in self.pending.values():
            check.cancel()
        wait(list(self.pending.values()))
        self.pending.clear()


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
    lock, indexing, listing = _open_for_backup(repo, name, listing=parent == "auto")
    abandon = False  # leave the lock to go stale: this backup's packs may be unindexed
    try:
        indexing.result()
        if lock.others:  # another backup runs, or one died holding its lock: look for its packs
            index_orphan_packs(repo)
        parent_tree = _parent_tree(repo, record, parent, listing)
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
            job.reader.shutdown(wait=True)
            packer.flush()
        except BaseException:
            job.pool.shutdown(wait=True, cancel_futures=True)
            job.finisher.shutdown(wait=True, cancel_futures=True)
            job.reader.shutdown(wait=True, cancel_futures=True)
            abandon = not packer.abort()
            raise
        finally:
            packer.close()
        if progress is not None:
            totals.join()
        _record_totals(record, packer, started)
        lock.check()
        snapshot_id = repo.save_snapshot(record)
        job.report(force=True)
    finally:
        if abandon:
            lock.abandon()
        else:
            lock.release()
    return BackupResult(snapshot_id, record)


def _open_for_backup(
    repo: Repository, name: str, *, listing: bool
) -> tuple[Lock, Future[Any], Future[list[tuple[str, Snapshot]]] | None]:
    """The lock, the index and (to find the parent) the snapshot list: independent round trips to
    the store, overlapped. The index and the list come back as futures, read under the lock."""
    with ThreadPoolExecutor(3, thread_name_prefix="ferry-open") as pool:
        locking = pool.submit(repo.lock(purpose=f"backup {name}").acquire)
        indexing = pool.submit(lambda: repo.index)
        snapshots = pool.submit(repo.snapshots, name=name) if listing else None
        pending: list[Future[Any]] = [f for f in (locking, indexing, snapshots) if f is not None]
        wait(pending)
        return locking.result(), indexing, snapshots


def _parent_tree(
    repo: Repository,
    record: Snapshot,
    parent: str | None,
    listing: Future[list[tuple[str, Snapshot]]] | None,
) -> Tree | None:
    """The tree unchanged files are taken from: the named parent, or the latest of the same app and
    name (``listing``); records it as ``record.parent``."""
    if listing is not None:
        same = [
            s
            for s in listing.result()
            if s[1].kind == "tree" and s[1].tags.get("app") == record.tags.get("app")
        ]
        parent = same[-1][0] if same else None
    if not parent:
        return None
    parent, parent_record = repo.load_snapshot(parent)
    record.parent = parent
    return repo.read_tree(parent_record.root) if parent_record.root in repo.index else None


def _record_totals(record: Snapshot, packer: Packer, started: float) -> None:
    record.size = record.stats.bytes
    record.stats.new_bytes = packer.stats.new_bytes
    record.stats.stored_bytes = packer.stats.stored_bytes
    record.stats.new_chunks = packer.stats.new_chunks
    record.stats.duration = time.monotonic() - started
