"""Run ``ferry-mover`` as the Job's container would, as a process a drill can kill or outlive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.repository.trees import random_files

PASSWORD = "drill password"
MOVER = str(Path(sys.executable).with_name("ferry-mover"))


def mover_env(repo: str, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FERRY_") or k == "FERRY_CACHE_DIR"}
    return {**clean, "FERRY_REPO": repo, "FERRY_REPO_PASSWORD": PASSWORD, **extra}


def mover(env: dict[str, str], *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run one mover command to its end; its JSON summary (the last stdout line)."""
    done = subprocess.run(
        [MOVER, *args, "--json", "--quiet"], env=env, capture_output=True, text=True, timeout=timeout
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"ferry-mover {args[0]} printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    summary: dict[str, Any] = json.loads(lines[-1])
    summary["exit"] = done.returncode
    summary["stderr"] = done.stderr[-2000:]
    return summary


def start_backup(env: dict[str, str], volume: Path, log: Path) -> subprocess.Popen[bytes]:
    """A slow backup (uploads limited to 2 MiB/s, 1 MiB packs) in its own process group."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [MOVER, "backup", str(volume), "--name", "data-0", "--group", "snap-1"]
            + ["--limit-upload", "2048", "--json", "--quiet"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def volume_of(path: Path, megabytes: int = 12) -> Path:
    random_files(path, megabytes, 1_000_000, seed=3)
    return path
