"""Building awkward directory trees and describing them, to compare what was backed up and restored."""

from __future__ import annotations

import hashlib
import os
import random
import stat
from pathlib import Path

OWNER = 1234  # uid and gid given to one file and one directory of the awkward tree (as root only)


def awkward_tree(root: Path) -> None:
    """Empty files, sparse files, hard links, symlinks, unicode names, deep paths, odd permissions,
    and (when run as root) a file and a directory owned by another user and group."""
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(7)
    (root / "empty").write_bytes(b"")
    (root / "empty-dir").mkdir()
    (root / "text.txt").write_text("the quick brown fox\n" * 5000)
    (root / "random.bin").write_bytes(rng.randbytes(3 * 1024 * 1024 + 17))
    (root / "ünïcødé ✓名前.txt").write_text("unicode name\n")
    (root / "spaces and\ttabs").write_text("odd name\n")
    deep = root.joinpath(*[f"level{i:02d}" for i in range(40)])
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_text("deep\n")
    with open(root / "sparse.img", "wb") as f:
        f.seek(5 * 1024 * 1024)
        f.write(b"middle" * 1000)
        f.truncate(20 * 1024 * 1024)
    with open(root / "disk.img", "wb") as f:  # several data regions: chunks span the holes between them
        for region in range(4):
            f.seek(region * 8 * 1024 * 1024 + 4096)
            f.write(rng.randbytes(300_000 + region))
        f.truncate(40 * 1024 * 1024)
    (root / "links").mkdir()
    os.link(root / "text.txt", root / "links" / "hard-to-text")
    os.link(root / "text.txt", root / "links" / "second-hard")
    os.symlink("../text.txt", root / "links" / "relative-symlink")
    os.symlink("/nonexistent/target", root / "links" / "dangling-symlink")
    os.symlink("level00", root / "dir-symlink")
    secret = root / "secret.key"
    secret.write_bytes(b"k" * 100)
    secret.chmod(0o600)
    script = root / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    readonly = root / "readonly-dir"
    readonly.mkdir()
    (readonly / "inside").write_text("ro\n")
    os.mkfifo(root / "a-fifo")
    readonly.chmod(0o555)
    if os.geteuid() == 0:  # only root can give files away; ``describe`` compares owners either way
        os.chown(secret, OWNER, OWNER)
        os.chown(readonly, OWNER, OWNER)
    os.utime(root / "text.txt", ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))


def describe(root: Path) -> dict[str, tuple[object, ...]]:
    """Every entry under ``root``: type, owner (uid, gid), permissions, size, mtime, content hash or
    link target."""
    found: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for directory, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(directory) / name
            rel = str(path.relative_to(root))
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            owner = (st.st_uid, st.st_gid)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("symlink", os.readlink(path), owner)
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", mode, st.st_mtime_ns, owner)
            elif stat.S_ISFIFO(st.st_mode):
                found[rel] = ("fifo", mode, owner)
            else:
                first = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else rel
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                found[rel] = (
                    "file",
                    mode,
                    st.st_size,
                    st.st_mtime_ns,
                    digest,
                    st.st_nlink,
                    first == rel,
                    owner,
                )
    return found


def file_hashes(root: Path) -> dict[str, str]:
    return {k: str(v[4]) for k, v in describe(root).items() if v[0] == "file"}


def random_files(root: Path, count: int, size: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (root / f"file-{i:04d}.bin").write_bytes(rng.randbytes(size))
