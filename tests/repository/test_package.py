"""``shared.repository`` loads its modules on first use: every name it exports must still be there."""

from __future__ import annotations

import subprocess
import sys

import pytest

import shared.repository


@pytest.mark.parametrize("name", shared.repository.__all__)
def test_every_exported_name_imports(name: str) -> None:
    namespace: dict[str, object] = {}
    exec(f"from shared.repository import {name} as imported", namespace)
    assert namespace["imported"] is getattr(shared.repository, name)


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'bakup'"):
        _ = shared.repository.bakup  # type: ignore[attr-defined]


def test_the_errors_come_without_the_engine() -> None:
    """What ``ferry-mover`` maps to exit codes is importable without loading backup, restore or check."""
    code = (
        "import sys; from shared.repository import WrongKey, RepositoryError; "
        "print(sorted(m for m in sys.modules if m.startswith('shared.repository.')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['shared.repository.errors']"
