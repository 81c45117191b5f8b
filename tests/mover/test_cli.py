"""``ferry-mover`` as a Job runs it: a real subprocess, settings from env vars, exit codes, JSON lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sandbox.localstack import LocalStack
from shared.mover.settings import job_env
from shared.repository import RepositorySettings, open_repository, put_blob
from shared.store import ObjectStore, S3Settings, S3Store, layout
from tests.repository.trees import awkward_tree, describe, file_hashes, random_files
from tests.store.conftest import repo_url

MOVER = [sys.executable, "-m", "shared.mover"]


@pytest.fixture
def env(store: ObjectStore, stack: LocalStack) -> dict[str, str]:
    values = {**os.environ, "FERRY_REPO": repo_url(store), "FERRY_REPO_PASSWORD": "s3cret"}
    if isinstance(store, S3Store):
        values |= {"FERRY_S3_ENDPOINT": stack.s3.endpoint, "FERRY_S3_ACCESS_KEY": stack.s3.access_key,
                   "FERRY_S3_SECRET_KEY": stack.s3.secret_key, "FERRY_S3_REGION": stack.s3.region}  # fmt: skip
    return values


def mover(env: dict[str, str], *args: str, code: int = 0) -> dict[str, Any]:
    done = subprocess.run([*MOVER, *args, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == code, (
        f"exit {done.returncode} != {code}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    )
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    summary["stderr"] = done.stderr
    return summary


def test_init_backup_restore_round_trip(env: dict[str, str], tmp_path: Path) -> None:
    awkward_tree(tmp_path / "src")
    original = describe(tmp_path / "src")
    mover(env, "init", "--pack-size-mib", "1")
    first = mover(
        env, "backup", str(tmp_path / "src"), "--name", "data-0", "--tag", "app=shop", "--group", "g1"
    )
    assert first["files"] == 13 and first["new_bytes"] > 0 and first["warnings"] == []
    (tmp_path / "src" / "text.txt").write_text("changed\n")
    os.setxattr(tmp_path / "src" / "empty", "user.note", b"only an attribute changed")
    second = mover(env, "backup", str(tmp_path / "src"), "--name", "data-0", "--tag", "app=shop")
    assert second["parent"] == first["snapshot_id"] and second["bytes_read"] == len("changed\n"), (
        "hard links are read once"
    )
    changes = mover(env, "diff", first["snapshot_id"], second["snapshot_id"])
    assert changes["changes"]["modified"] == ["empty", "links/hard-to-text", "links/second-hard", "text.txt"]
    listed = mover(env, "ls")
    assert [s["id"] for s in listed["snapshots"]] == [first["snapshot_id"], second["snapshot_id"]]
    restored = mover(env, "restore", first["snapshot_id"][:8], str(tmp_path / "dst"))
    assert restored["damaged"] == {}
    (tmp_path / "src" / "text.txt").unlink()
    assert describe(tmp_path / "dst") == original, "modes, owners, mtimes, links and bytes come back"
    assert mover(env, "check", "--read-data")["ok"] is True


@pytest.mark.parametrize(
    "case, args, password, code, message",
    [
        ("a wrong password", ["ls"], "wrong", 12, "wrong password or key file"),
        ("an unknown snapshot", ["restore", "feedbeef", "/tmp/x"], "s3cret", 16, "no snapshot 'feedbeef'"),
        ("a second init", ["init"], "s3cret", 2, "a repository already exists"),
        ("forget without a policy", ["forget"], "s3cret", 2, "forget needs --keep-last"),
    ],
)
def test_failures_have_exit_codes_a_job_controller_can_act_on(
    env: dict[str, str], case: str, args: list[str], password: str, code: int, message: str
) -> None:
    mover(env, "init")
    failed = mover({**env, "FERRY_REPO_PASSWORD": password}, *args, code=code)
    assert message in failed["error"] and message in failed["stderr"]


def test_a_missing_s3_ca_bundle_is_a_permanent_error_naming_it(tmp_path: Path) -> None:
    bundle = str(tmp_path / "mounted" / "s3-ca.pem")
    env = {**os.environ, "FERRY_REPO": "s3://bucket/repo", "FERRY_REPO_PASSWORD": "pw",
           "FERRY_S3_ENDPOINT": "https://127.0.0.1:9", "FERRY_S3_CA_BUNDLE": bundle}  # fmt: skip
    failed = mover(env, "ls", code=14)
    assert failed["error"] == f"cannot read the S3 CA bundle {bundle}: No such file or directory"


def test_a_key_file_is_a_passphrase_run_through_scrypt_not_a_raw_key(tmp_path: Path) -> None:
    """docs/repository.md: a key file's bytes (minus the trailing newline) are the passphrase."""
    env = {**os.environ, "FERRY_REPO": str(tmp_path / "repo"), "FERRY_REPO_PASSWORD": "a long random phrase"}
    mover(env, "init")
    (tmp_path / "key").write_bytes(b"a long random phrase\r\n")
    by_file = {k: v for k, v in env.items() if k != "FERRY_REPO_PASSWORD"} | {
        "FERRY_REPO_PASSWORD_FILE": str(tmp_path / "key")
    }
    assert mover(by_file, "ls")["snapshots"] == []
    (stored,) = (tmp_path / "repo" / "keys").iterdir()
    assert json.loads(stored.read_text())["kdf"] == "scrypt"


def test_an_unknown_step_is_a_usage_error_listing_the_steps_of_the_contracts(tmp_path: Path) -> None:
    """``--step`` takes its choices from ``StepName``, read only when a step is given (start-up cost)."""
    from shared.contracts import StepName

    args = [*MOVER, "backup", str(tmp_path), "--step", "teleport"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    steps = ", ".join(repr(step.value) for step in StepName)
    assert done.returncode == 2 and f"invalid choice: 'teleport' (choose from {steps})" in done.stderr


def test_no_repository_and_no_settings(env: dict[str, str], tmp_path: Path) -> None:
    assert mover(env, "ls", code=10)["meaning"].startswith("no repository")
    assert mover({k: v for k, v in env.items() if k != "FERRY_REPO_PASSWORD"}, "ls", code=2)[
        "error"
    ].startswith("no repository password")


def test_a_damaged_restore_fails_unless_partial_is_allowed(
    env: dict[str, str], store: ObjectStore, tmp_path: Path
) -> None:
    random_files(tmp_path / "src", 6, 300_000)
    mover(env, "init", "--pack-size-mib", "1")
    snap = mover(env, "backup", str(tmp_path / "src"))["snapshot_id"]
    victim = max(store.list(layout.DATA), key=lambda info: info.size).key  # a data pack
    store.delete(victim)
    failed = mover(env, "restore", snap, str(tmp_path / "dst"), code=15)
    assert failed["damaged"] and all("is missing" in reason for reason in failed["damaged"].values())
    partial = mover(env, "restore", snap, str(tmp_path / "dst2"), "--allow-partial", code=3)
    assert partial["damaged"] == failed["damaged"]
    assert mover(env, "check", code=15)["ok"] is False
    for info in store.list(layout.DATA):  # now lose the directory listings too
        store.delete(info.key)
    lost = mover(env, "restore", snap, str(tmp_path / "dst3"), code=15)
    assert lost["damaged"] == {".": lost["damaged"]["."]} and "directory listing lost" in lost["damaged"]["."]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "terminated"])
def test_a_killed_backup_resumes_without_uploading_again(
    how: signal.Signals, env: dict[str, str], store: ObjectStore, tmp_path: Path
) -> None:
    random_files(tmp_path / "src", 16, 1024 * 1024)
    mover(env, "init", "--pack-size-mib", "1")
    job = subprocess.Popen([*MOVER, "backup", str(tmp_path / "src"), "--limit-upload", "3072"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(store.list(layout.DATA))) < 4 and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.05)
    job.send_signal(how)
    assert job.wait() == (-9 if how == signal.SIGKILL else 130), (
        "SIGTERM: exit 130 after indexing what was uploaded"
    )
    uploaded = len(list(store.list(layout.DATA)))
    assert 4 <= uploaded < 16, "killed halfway"
    assert mover(env, "ls")["snapshots"] == []
    assert mover(env, "check")["ok"] is True
    mover(env, "unlock")  # the killed job's lock: its packs are indexed before it goes
    resumed = mover(env, "backup", str(tmp_path / "src"))
    assert resumed["stored_bytes"] <= (16 - uploaded + 2) * 1024 * 1024
    mover(env, "prune")  # the killed job's lock is stale (its process is gone): prune is not blocked
    mover(env, "restore", "latest", str(tmp_path / "dst"))
    assert file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")


def test_key_rotation_and_forget_from_the_command_line(env: dict[str, str], tmp_path: Path) -> None:
    mover(env, "init")
    for n in range(3):
        random_files(tmp_path / "src", 1, 10_000, seed=n)
        mover(env, "backup", str(tmp_path / "src"), "--name", "vol")
    rotated = mover({**env, "FERRY_NEW_REPO_PASSWORD": "n3w"}, "key", "rotate")
    assert rotated["old_key"] != rotated["new_key"]
    mover(env, "ls", code=12)
    env = {**env, "FERRY_REPO_PASSWORD": "n3w"}
    kept = mover(env, "forget", "--keep-last", "1", "--prune")
    assert len(kept["removed"]) == 2 and len(kept["kept"]) == 1
    assert len(mover(env, "ls")["snapshots"]) == 1


def test_the_cache_holds_nothing_secret_and_survives_a_key_rotation(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The cache keeps the key object's salt and copies of snapshot records and index files between runs;
    a stale, damaged or absent cache only costs time."""
    env = {**env, "FERRY_CACHE_DIR": str(tmp_path / "cache")}
    mover(env, "init")
    [hint] = (tmp_path / "cache").rglob("key.json")
    assert sorted(json.loads(hint.read_text())) == ["n", "p", "r", "salt"]
    assert b"s3cret" not in hint.read_bytes()
    random_files(tmp_path / "src", 2, 50_000, seed=3)
    first = mover(env, "backup", str(tmp_path / "src"), "--name", "vol")
    assert [p.name for p in (hint.parent / "snapshots").iterdir()] == [first["snapshot_id"]]

    # Rotated from another machine: the hint names a key object that is gone.
    stale = hint.read_text()
    elsewhere = {**env, "FERRY_CACHE_DIR": str(tmp_path / "elsewhere"), "FERRY_NEW_REPO_PASSWORD": "n3w"}
    mover(elsewhere, "key", "rotate")
    mover(env, "ls", code=12)
    assert mover({**env, "FERRY_REPO_PASSWORD": "n3w"}, "ls")["snapshots"][0]["id"] == first["snapshot_id"]
    assert hint.read_text() != stale, "the hint follows the key object that opened the repository"

    hint.write_text('{"salt": "not hex"')
    restored = mover(
        {**env, "FERRY_REPO_PASSWORD": "n3w"}, "restore", first["snapshot_id"], str(tmp_path / "dst")
    )
    assert restored["damaged"] == {} and file_hashes(tmp_path / "dst") == file_hashes(tmp_path / "src")
    mover({**env, "FERRY_REPO_PASSWORD": "n3w", "FERRY_CACHE_DIR": "off"}, "ls")
    mover({**env, "FERRY_REPO_PASSWORD": "n3w", "FERRY_CACHE_DIR": "/proc/no-such-dir"}, "ls")
    assert json.loads(hint.read_text())["salt"] != "not hex"


def test_check_reads_what_the_store_holds_not_the_caches_copies(
    env: dict[str, str], store: ObjectStore, tmp_path: Path
) -> None:
    env = {**env, "FERRY_CACHE_DIR": str(tmp_path / "cache")}
    mover(env, "init")
    random_files(tmp_path / "src", 2, 50_000, seed=4)
    mover(env, "backup", str(tmp_path / "src"), "--name", "vol")
    [index] = store.list(layout.INDEX)  # the cache holds a good copy of it
    damaged = bytearray(store.get(index.key))
    damaged[len(damaged) // 2] ^= 0xFF
    store.put(index.key, bytes(damaged))
    result = mover(env, "check", code=15)
    assert any(
        error.startswith(f"index {layout.id_of(index.key)} does not authenticate")
        for error in result["errors"]
    )


def test_a_service_and_its_mover_jobs_share_one_settings_object(
    store: ObjectStore, stack: LocalStack, tmp_path: Path
) -> None:
    """A service opens the repository from settings and gives its Jobs the env built from them."""
    s3 = S3Settings(
        bucket="", endpoint=stack.s3.endpoint, access_key=stack.s3.access_key, secret_key=stack.s3.secret_key
    )
    settings = RepositorySettings(
        repo_url(store), b"service password", s3 if isinstance(store, S3Store) else None
    )
    repo = open_repository(settings, create=True)
    assert open_repository(settings, create=True).config.id == repo.config.id
    blob_id = put_blob(repo, b"manifests", name="manifests", group="snap-9")
    (tmp_path / "pw").write_text("service password\n")
    env = {**os.environ, **job_env(settings, password_file=str(tmp_path / "pw"))}
    assert "FERRY_REPO_PASSWORD" not in job_env(settings, password_file=str(tmp_path / "pw"))
    listed = mover(env, "ls", "--group", "snap-9")
    assert [s["id"] for s in listed["snapshots"]] == [blob_id]


def test_two_movers_back_up_into_one_repository_at_once(
    env: dict[str, str], store: ObjectStore, tmp_path: Path
) -> None:
    """Two Jobs of one Ferry snapshot (two volumes) write to one repository at the same time."""
    awkward_tree(tmp_path / "a")
    random_files(tmp_path / "b", 8, 300_000, seed=22)
    (tmp_path / "b" / "same-as-a.bin").write_bytes((tmp_path / "a" / "random.bin").read_bytes())  # a race
    mover(env, "init", "--pack-size-mib", "1")
    jobs = {
        name: subprocess.Popen(
            [*MOVER, "backup", str(tmp_path / name), "--name", name, "--limit-upload", "1536", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    }
    most_locks, deadline = 0, time.monotonic() + 120
    while any(job.poll() is None for job in jobs.values()) and time.monotonic() < deadline:
        most_locks = max(most_locks, len(list(store.list(layout.LOCKS))))
        time.sleep(0.02)
    done = {name: job.communicate(timeout=10) for name, job in jobs.items()}
    for name, job in jobs.items():
        assert job.returncode == 0, f"backup {name}: exit {job.returncode}\n{done[name][1]}"
    assert most_locks == 2, "both backups held the repository at the same time"
    snapshots = {
        name: json.loads(out.strip().splitlines()[-1])["snapshot_id"] for name, (out, _) in done.items()
    }
    assert mover(env, "check", "--read-data")["ok"] is True
    assert sorted(s["name"] for s in mover(env, "ls")["snapshots"]) == ["a", "b"]
    for name, snapshot_id in snapshots.items():
        mover(env, "restore", snapshot_id, str(tmp_path / f"dst-{name}"))
        assert describe(tmp_path / f"dst-{name}") == describe(tmp_path / name)
