"""Placeholder."""

from __future__ import annotations

from sandbox.controllers import Controller


class Kubelet(Controller):
    name = "kubelet"
    resources = ("none",)
