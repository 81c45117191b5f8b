"""Resource types the sandbox serves: one ``ResourceType`` per (group, version, plural).

The registry is the single source of discovery, routing and per-kind behaviour (scope, status
subresource, generation, strategic merge). Built-in kinds come from ``builtin.py``; CRDs add and
remove entries at run time (``sandbox.server.registry``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status: bool = False  # has a /status subresource (status reset on create, split on update)
    scale: bool = False  # has a /scale subresource (spec.replicas)
    generation: bool = False  # metadata.generation is kept
    strategic: bool = True  # accepts strategic-merge-patch (built-ins only)
    crd: str = ""  # name of the CRD that defines it, "" for built-ins
    extra_subresources: tuple[str, ...] = ()  # e.g. pods/log, namespaces/finalize
    field_selectors: tuple[str, ...] = field(default=())
    scale_paths: tuple[str, str, str] = ("spec.replicas", "status.replicas", "")
    printer_columns: tuple[tuple[str, str, str], ...] = ()  # a CRD's (name, type, jsonPath) columns

    @property
    def resource(self) -> str:
        """The group-qualified plural (``deployments.apps``, ``pods``): the store's key."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA > beta > alpha, higher numbers first (for preferredVersion)."""
    import re

    m = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not m:
        return (0, 0, 0)
    major = int(m.group(1))
    stage = {"alpha": 1, "beta": 2, None: 3}[m.group(2)]
    minor = int(m.group(3) or 0)
    return (stage, major, minor)
