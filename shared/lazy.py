"""Names a package imports on first use (PEP 562), so that a process pays at start-up only for what
it runs: ``ferry-mover backup`` does not load restore or prune, a local repository does not load S3."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable


def lazy_names(package: str, modules: dict[str, list[str]]) -> Callable[[str], object]:
    """The module ``__getattr__`` of ``package``: each name, from its module, imported when first asked for."""
    module_of = {name: module for module, names in modules.items() for name in names}
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> object:
        module = module_of.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value  # asked for once
        return value

    return __getattr__
