"""Placeholder."""

from __future__ import annotations

from sandbox.controllers import Controller


class StorageController(Controller):
    name = "storage"
    resources = ("none",)
