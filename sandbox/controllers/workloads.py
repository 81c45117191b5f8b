"""Placeholder."""

from __future__ import annotations

from sandbox.controllers import Controller


class WorkloadController(Controller):
    name = "workloads"
    resources = ("none",)
