"""Proving that a file on disk holds a snapshot file's content, chunk by chunk, without re-chunking it.

Inside one repository a chunk id is the keyed hash of the chunk's bytes, so a file holds the snapshot's
content exactly when, at each chunk's offset, its bytes hash to that chunk's id (and the file has the
snapshot's size). The snapshot's own chunk boundaries are used, so nothing is cut again and nothing
is written to the repository: this is what ``compare`` (verification) and the delta restore (which
fetches only the chunks a file does not hold) both run.

A sparse file's content is its data regions laid end to end (``files.place`` maps them back); every
byte of the live file outside those regions must then read as zeros, or the file differs.

The hashing runs on a caller's thread pool: ``preadv`` and BLAKE3 release the GIL. Each thread reads
into its own reused buffer of one maximal chunk (``shared.memory.anonymous``), so memory is bounded by
``threads x chunker_max`` whatever the file sizes, and the bytes are hashed while still in the cache
(as backup's ``_holds`` does).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType

from shared.memory import anonymous
from shared.repository.files import data_extents, place
from shared.repository.formats import Node
from shared.repository.repo import Repository

UNIT = 32 * 1024 * 1024  # content bytes proven by one task: a big file keeps every thread busy

Chunk = tuple[int, bytes, int, int]  # (index in node.content, chunk id, content offset, size)


def chunk_layout(repo: Repository, node: Node) -> tuple[list[Chunk], str]:
    """Each chunk of ``node`` with its content offset and size (from the index), and a reason the
    content cannot be proven ("" when it can): a chunk that is not in the index, or sizes that do not
    add up to the node's content."""
    chunks: list[Chunk] = []
    offset = 0
    for i, chunk_id in enumerate(node.content):
        found = repo.index.get(chunk_id)
        if found is None:
            return chunks, f"chunk {chunk_id.hex()[:16]} is not in the repository index"
        chunks.append((i, chunk_id, offset, found[1].size))
        offset += found[1].size
    stored = sum(length for _start, length in node.extents) if node.extents is not None else node.size
    if offset != stored:
        return chunks, f"the snapshot's chunks hold {offset} bytes, its file {stored}"
    return chunks, ""


def units(chunks: list[Chunk], size: int = UNIT) -> Iterator[list[Chunk]]:
    """Consecutive runs of chunks of about ``size`` content bytes: one task each."""
    run: list[Chunk] = []
    total = 0
    for chunk in chunks:
        run.append(chunk)
        total += chunk[3]
        if total >= size:
            yield run
            run, total = [], 0
    if run:
        yield run


def open_for_reading(path: str) -> int:
    """A read-only descriptor, without updating the access time where the owner allows it."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0) | os.O_NOFOLLOW)
    except PermissionError:
        return os.open(path, os.O_RDONLY | os.O_NOFOLLOW)


class Prover:
    """Hashes a live file's bytes where a snapshot's chunks lie; thread-safe, one buffer per thread."""

    def __init__(self, repo: Repository) -> None:
        self.cipher = repo.cipher
        self.buffer_size = repo.config.chunker_max
        self._local = threading.local()
        self._lock = threading.Lock()
        self.bytes_read = 0

    def _buffer(self, size: int) -> memoryview:
        buffer: memoryview | None = getattr(self._local, "buffer", None)
        if buffer is None or buffer.nbytes < size:  # a chunk over chunker_max: only a foreign writer's
            buffer = self._local.buffer = memoryview(anonymous(max(size, self.buffer_size)))
        return buffer

    def _read(self, fd: int, view: memoryview, offset: int) -> int:
        done = 0
        while done < view.nbytes:
            n = os.preadv(fd, [view[done:]], offset + done)
            if n == 0:  # the file ends before
                break
            done += n
        return done

    def holds(
        self, fd: int, extents: list[tuple[int, int]] | None, offset: int, size: int, chunk_id: bytes
    ) -> bool:
        """Whether the file holds chunk ``chunk_id`` (``size`` bytes) at content offset ``offset``."""
        view = self._buffer(size)[:size]
        read = 0
        whole = True
        for file_offset, lo, hi in place(offset, size, extents):
            n = self._read(fd, view[lo:hi], file_offset)
            read += n
            whole = whole and n == hi - lo
        with self._lock:
            self.bytes_read += read
        return whole and self.cipher.chunk_id(view) == chunk_id

    def differing(self, fd: int, extents: list[tuple[int, int]] | None, chunks: list[Chunk]) -> list[int]:
        """The indexes (in ``node.content``) of the chunks the file does not hold where they belong."""
        return [
            i for i, chunk_id, offset, size in chunks if not self.holds(fd, extents, offset, size, chunk_id)
        ]

    def zeros_outside(self, fd: int, size: int, extents: list[tuple[int, int]]) -> bool:
        """Whether every byte of the file's first ``size`` bytes outside ``extents`` reads as zero.

        Only the file's own data regions (``SEEK_DATA``) are read: its holes are zeros by definition.
        """
        live = data_extents(fd, os.fstat(fd))
        regions = live if live is not None else [(0, size)]
        view = self._buffer(self.buffer_size)
        for start, length in _outside(regions, extents, size):
            position, end = start, start + length
            while position < end:
                part = view[: min(view.nbytes, end - position)]
                n = self._read(fd, part, position)
                with self._lock:
                    self.bytes_read += n
                if n == 0:
                    break
                if part[:n].tobytes().count(0) != n:
                    return False
                position += n
        return True


class Tasks:
    """A thread pool with a bound on the tasks in flight (memory stays flat whatever the tree's size).

    A task that raises must not pass for a file proven equal: the first such error is raised when
    the block ends (an ``OSError`` reading a file is the task's own to report, not this).
    """

    def __init__(self, threads: int, name: str) -> None:
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self.slots = threading.BoundedSemaphore(4 * threads)
        self.failures: list[BaseException] = []

    def submit(self, task: Callable[[], None]) -> None:
        self.slots.acquire()
        self.pool.submit(task).add_done_callback(self._finished)

    def _finished(self, future: Future[None]) -> None:
        self.slots.release()
        if (error := future.exception()) is not None:
            self.failures.append(error)

    def __enter__(self) -> Tasks:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.pool.shutdown(wait=True, cancel_futures=error is not None)
        if error is None and self.failures:
            raise self.failures[0]


def _outside(
    regions: list[tuple[int, int]], extents: list[tuple[int, int]], size: int
) -> Iterator[tuple[int, int]]:
    """The parts of ``regions`` (offset, length) below ``size`` that no extent covers."""
    for start, length in regions:
        lo, hi = start, min(start + length, size)
        for e_start, e_length in extents:
            e_end = e_start + e_length
            if e_end <= lo or e_start >= hi:
                continue
            if e_start > lo:
                yield lo, e_start - lo
            lo = max(lo, e_end)
            if lo >= hi:
                break
        if lo < hi:
            yield lo, hi - lo
