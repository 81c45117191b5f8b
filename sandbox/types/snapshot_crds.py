"""The CSI external-snapshotter CRDs (snapshot.storage.k8s.io/v1), installed in every sandbox.

Real clusters get these from the external-snapshotter project as CustomResourceDefinitions, so the
sandbox installs them the same way (as CRD objects), and Ferry's discovery sees them as CRDs.
"""

from __future__ import annotations

from typing import Any

GROUP = "snapshot.storage.k8s.io"


def _crd(plural: str, kind: str, scope: str, short: list[str], status: bool) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
    }
    if status:
        version["subresources"] = {"status": {}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "annotations": {
                "api-approved.kubernetes.io": "https://github.com/kubernetes-csi/external-snapshotter/pull/814"
            },
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
            },
            "scope": scope,
            "versions": [version],
        },
    }


def snapshot_crds() -> list[dict[str, Any]]:
    return [
        _crd("volumesnapshotclasses", "VolumeSnapshotClass", "Cluster", ["vsclass", "vsclasses"], False),
        _crd("volumesnapshotcontents", "VolumeSnapshotContent", "Cluster", ["vsc", "vscs"], True),
        _crd("volumesnapshots", "VolumeSnapshot", "Namespaced", ["vs"], True),
    ]
