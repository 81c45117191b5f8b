"""``ferry-mover verify`` and ``restore --delta`` as a Job runs them: a subprocess, exit codes, JSON lines."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.mover.test_cli import mover
from tests.repository.trees import awkward_tree, describe, random_files


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "FERRY_REPO": str(tmp_path / "repo"), "FERRY_REPO_PASSWORD": "s3cret",
            "FERRY_CACHE_DIR": str(tmp_path / "cache")}  # fmt: skip


def test_verify_then_delta_restore_then_verify_again(env: dict[str, str], tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    awkward_tree(vol)
    mover(env, "init", "--pack-size-mib", "1")
    snapshot_id = mover(env, "backup", str(vol), "--name", "data-0")["snapshot_id"]
    before = describe(vol)

    same = mover(env, "verify", snapshot_id, str(vol))
    assert (same["different"], same["differences"], same["exit_code"]) == (0, {}, 0)
    assert same["files"] == 11 and same["bytes_read"] >= same["bytes"] - 60 * 1024 * 1024
    assert not list((tmp_path / "repo" / "locks").iterdir()), "verify takes no lock"

    with open(vol / "random.bin", "r+b") as f:
        f.seek(1024 * 1024)
        f.write(b"\0" * 4096)
    (vol / "readonly-dir").chmod(0o755)
    (vol / "readonly-dir" / "stray").write_text("not in the snapshot\n")
    (vol / "run.sh").unlink()
    differs = mover(env, "verify", snapshot_id[:8], str(vol), code=3)
    assert differs["differences"] == {
        "random.bin": f"content differs ({3 * 1024 * 1024 + 17} bytes restored, {3 * 1024 * 1024 + 17} in the snapshot)",
        "readonly-dir": "mode 755, the snapshot has 555",
        "readonly-dir/stray": "not in the snapshot (an extra file in the restored volume)",
        "run.sh": "missing from the restored volume",
    }
    assert (
        differs["different"] == 4 and "differs: run.sh: missing from the restored volume" in differs["stderr"]
    )

    delta = mover(env, "restore", snapshot_id, str(vol), "--delta")
    assert delta["delta"] is True and delta["damaged"] == {}
    assert (delta["files_written"], delta["removed"]) == (2, 1)  # random.bin (one chunk), run.sh
    assert delta["bytes_written"] < 3 * 1024 * 1024 and delta["files_skipped"] == delta["files"] - 2
    assert describe(vol) == before
    assert mover(env, "verify", "latest", str(vol))["different"] == 0
    again = mover(env, "restore", snapshot_id, str(vol), "--delta")
    assert (again["files_written"], again["bytes_written"], again["removed"]) == (0, 0, 0)


def test_verify_lists_at_most_200_differences_but_counts_them_all(
    env: dict[str, str], tmp_path: Path
) -> None:
    vol = tmp_path / "vol"
    random_files(vol, 3, 1000)
    mover(env, "init")
    snapshot_id = mover(env, "backup", str(vol))["snapshot_id"]
    for i in range(250):
        (vol / f"extra-{i:03d}").write_text("x")
    result = mover(env, "verify", snapshot_id, str(vol), code=3)
    assert result["different"] == 250 and sorted(result["differences"]) == [
        f"extra-{i:03d}" for i in range(200)
    ]
    assert "... and 200 more" in result["stderr"]


def test_a_plain_restore_summary_is_unchanged_and_delta_into_an_empty_directory_restores_all(
    env: dict[str, str], tmp_path: Path
) -> None:
    random_files(tmp_path / "src", 4, 50_000)
    mover(env, "init")
    snapshot_id = mover(env, "backup", str(tmp_path / "src"))["snapshot_id"]
    plain = mover(env, "restore", snapshot_id, str(tmp_path / "plain"))
    assert set(plain) == {"snapshot_id", "files", "bytes", "duration", "damaged", "warnings", "command", "exit_code",
                          "stderr"}  # fmt: skip
    delta = mover(env, "restore", snapshot_id, str(tmp_path / "fresh"), "--delta")
    assert (delta["files_written"], delta["bytes_written"], delta["files_skipped"]) == (4, 200_000, 0)
    digests = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "fresh").iterdir()}
    assert digests == {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "src").iterdir()
    }
