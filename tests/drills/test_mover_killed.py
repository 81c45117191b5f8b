"""Drill: the mover is killed (SIGKILL: a node lost, the OOM killer) in the middle of a backup.

The Job runs it again; that backup meets the dead one's lock (expired: its process is gone), indexes
the packs it uploaded and never indexed, removes its lock, and completes. ``ferry-mover check``
then finds the repository whole: no error, no unindexed pack, no lock left behind.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from shared.store import LocalStore, layout
from tests.drills.movers import mover, mover_env, start_backup, volume_of
from tests.repository.trees import file_hashes


def test_a_backup_whose_mover_was_killed_is_run_again_and_the_repository_checks_clean(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repository"
    env = mover_env(str(repo))
    assert mover(env, "init", "--pack-size-mib", "1")["exit"] == 0
    volume = volume_of(tmp_path / "volume")
    store = LocalStore(repo)

    doomed = start_backup(env, volume, tmp_path / "doomed.log")
    try:
        deadline = time.monotonic() + 60
        while len(list(store.list(layout.DATA))) < 3:  # mid-backup: some packs uploaded
            assert doomed.poll() is None, (tmp_path / "doomed.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the backup uploaded nothing within 60s"
            time.sleep(0.05)
    finally:
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(10)
    uploaded = len(list(store.list(layout.DATA)))
    assert list(store.list(layout.LOCKS)), "the killed mover left no lock"

    again = mover(env, "backup", str(volume), "--name", "data-0", "--group", "snap-1")  # the Job's retry
    assert again["exit"] == 0, again["stderr"]
    assert again["new_bytes"] < 12_000_000, f"the retry sent again what the killed mover had: {again}"

    report = mover(env, "check", "--read-data")
    assert report["exit"] == 0 and report["ok"], report
    assert not [w for w in report["warnings"] if "not indexed" in w], report["warnings"]
    assert report["packs"] >= uploaded
    assert list(store.list(layout.LOCKS)) == [], "a lock was left behind"
    restored = mover(env, "restore", "latest", str(tmp_path / "restored"))
    assert restored["exit"] == 0, restored["stderr"]
    assert file_hashes(tmp_path / "restored") == file_hashes(volume)
