"""The data path's big buffers are private anonymous memory, not shmem (see ``shared.memory``)."""

from __future__ import annotations

import re
from pathlib import Path

from shared.memory import anonymous


def _status_kib(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.MULTILINE)
    assert match, field
    return int(match.group(1))


def test_buffers_are_private_zeroed_and_writable() -> None:
    size = 24 * 1024 * 1024
    shmem_before = _status_kib("RssShmem")
    anon_before = _status_kib("RssAnon")
    buffer = anonymous(size)
    view = memoryview(buffer)
    assert len(view) == size and view[0] == 0 and view[size - 1] == 0
    for offset in range(0, size, 4096):  # touch every page
        view[offset] = 1
    assert bytes(view[:2]) == b"\x01\x00"
    # Shared anonymous memory (what mmap.mmap(-1, n) gives) would show up as shmem.
    assert _status_kib("RssShmem") - shmem_before < 4 * 1024
    assert _status_kib("RssAnon") - anon_before >= 20 * 1024
    view.release()
    buffer.close()


def test_small_buffers_work_too() -> None:
    buffer = anonymous(4096)
    buffer[:5] = b"ferry"
    assert buffer[:5] == b"ferry" and len(buffer) == 4096
    buffer.close()
