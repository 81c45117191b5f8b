"""Placeholder."""

from __future__ import annotations

from sandbox.controllers import Controller


class SnapshotController(Controller):
    name = "snapshots"
    resources = ("none",)
