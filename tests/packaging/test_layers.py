"""The layers `make lint` enforces (.importlinter): a copy of the code with one forbidden import per
rule is refused by lint-imports, each rule named BROKEN, while the copy as it is passes. So a rule
that stopped holding — deleted, or loosened until it allows what it forbids — fails this test."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# module to add -> (its import, the rule that must then be broken)
VIOLATIONS = {
    "shared/contracts/_up.py": ("import shared.runtime", "Layers point one way"),
    "shared/bus/_kube.py": ("import kubernetes_asyncio", "Only shared.kube (and the sandbox) import"),
    "services/intake/_s3.py": ("import boto3", "Only shared.store imports boto3"),
    "shared/runtime/_double.py": ("import sandbox.cluster", "Ferry's code never imports the sandbox"),
    "services/intake/_peer.py": ("import services.restore.service", "Services talk over the bus"),
    "services/restore/_bus.py": ("import nats", "Only shared.bus and the service runtime import nats"),
    "shared/contracts/_ring_a.py": ("import shared.contracts._ring_b", "No import circles"),
    "shared/contracts/_ring_b.py": ("import shared.contracts._ring_a", "No import circles"),
    "shared/store/_http.py": ("import aiohttp", "Only the gateway, the CLI, shared.kube"),
}


def lint_imports(tree: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(tree / ".importlinter")],
        cwd=tree, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.stdout + done.stderr


def copy_of_the_code(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in ("shared", "services", "sandbox"):
        shutil.copytree(
            ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    shutil.copy(ROOT / ".importlinter", tree / ".importlinter")
    return tree


def test_each_layer_rule_refuses_its_forbidden_import_and_the_code_as_it_is_passes(tmp_path: Path) -> None:
    tree = copy_of_the_code(tmp_path)
    assert "Contracts: 8 kept, 0 broken." in lint_imports(tree)

    for module, (line, _) in VIOLATIONS.items():
        (tree / module).write_text(line + "\n")
    report = lint_imports(tree)
    assert "Contracts: 0 kept, 8 broken." in report, report[-3000:]
    # Eight rules, eight broken (each import above breaks one rule), and each rule named.
    for _, rule in VIOLATIONS.values():
        assert rule in report, f"{rule!r} not reported:\n{report[-3000:]}"
