"""Drill: the object store (SeaweedFS) restarts in the middle of a snapshot's backup.

A SeaweedFS of the drill's own (the session's is shared by every test) is stopped and started again
on the same ports while a mover uploads. The mover's store calls retry through a short outage; when
the store stays away longer than their retries (a SeaweedFS restart takes 10-20 s to serve writes
again), the mover exits with 13 — temporary — and the Job, then the step, run it again. Either
way the snapshot completes, and the repository checks clean: the packs uploaded before the outage
are indexed (by the mover itself, or by the retry meeting its lock), no lock is left behind.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.localstack import SeaweedFS, processes
from sandbox.localstack.processes import find_binary
from shared.store import S3Settings, S3Store, layout
from tests.drills.movers import mover, mover_env, start_backup, volume_of
from tests.repository.trees import file_hashes

TEMPORARY = 13  # ferry-mover's exit code for "object store unreachable after retries: retry later"


class RestartableSeaweedFS(SeaweedFS):
    """Starts again on the ports it had, so clients configured with its endpoint reconnect."""

    restarting = False

    def restart(self, pause: float = 0.0) -> None:
        self.stop()
        time.sleep(pause)
        self.restarting = True
        try:
            self.start()
        finally:
            self.restarting = False

    def _start_once(self, config: Path) -> None:
        if not self.restarting:  # a first start that failed to bind tries other ports
            super()._start_once(config)
            return
        ports = dict(self.ports)
        original = processes.free_port_pair
        names = iter(("master", "volume", "filer", "s3"))
        processes.free_port_pair = lambda offset=10000: ports[next(names)]
        try:
            super()._start_once(config)
        finally:
            processes.free_port_pair = original


@pytest.fixture
def seaweed(tmp_path: Path) -> Iterator[RestartableSeaweedFS]:
    find_binary("weed")
    server = RestartableSeaweedFS(tmp_path / "seaweed")
    server.start()
    yield server
    server.stop()


def test_a_backup_survives_a_restart_of_the_object_store(
    seaweed: RestartableSeaweedFS, tmp_path: Path
) -> None:
    bucket = f"drill-{secrets.token_hex(3)}"
    s3 = seaweed.s3
    settings = S3Settings(endpoint=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key,
                          bucket=bucket, prefix="repo")  # fmt: skip
    store = S3Store(settings)
    store.create_bucket()
    env = mover_env(f"s3://{bucket}/repo", FERRY_S3_ENDPOINT=s3.endpoint,
                    FERRY_S3_ACCESS_KEY=s3.access_key, FERRY_S3_SECRET_KEY=s3.secret_key)  # fmt: skip
    assert mover(env, "init", "--pack-size-mib", "1")["exit"] == 0, "init failed"
    volume = volume_of(tmp_path / "volume")

    backing_up = start_backup(env, volume, tmp_path / "backup.log")
    try:
        deadline = time.monotonic() + 60
        while len(list(store.list(layout.DATA))) < 2:
            assert backing_up.poll() is None, (tmp_path / "backup.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "the backup uploaded nothing within 60s"
            time.sleep(0.1)
        seaweed.restart(pause=1.0)  # mid-backup: a few packs are in, most are not
        code = backing_up.wait(120)
    finally:
        if backing_up.poll() is None:
            os.killpg(backing_up.pid, signal.SIGKILL)
            backing_up.wait(10)
        store.close()
    log = (tmp_path / "backup.log").read_text()
    assert code in (0, TEMPORARY), log[-3000:]
    if code == TEMPORARY:  # what the Job's retry does (a step's temporary failure is retried too)
        again = mover(env, "backup", str(volume), "--name", "data-0", "--group", "snap-1")
        assert again["exit"] == 0, again["stderr"]
    report = mover(env, "check", "--read-data")
    assert report["exit"] == 0 and report["ok"], report
    assert not [w for w in report["warnings"] if "not indexed" in w], report["warnings"]
    after = S3Store(settings)
    try:
        assert list(after.list(layout.LOCKS)) == [], "a lock was left behind"
    finally:
        after.close()
    restored = mover(env, "restore", "latest", str(tmp_path / "restored"))
    assert restored["exit"] == 0, restored["stderr"]
    assert file_hashes(tmp_path / "restored") == file_hashes(volume)
