"""The CSI external-snapshotter CRDs (snapshot.storage.k8s.io/v1), installed in every sandbox.

Real clusters get these from the external-snapshotter project as CustomResourceDefinitions, so the
sandbox installs them the same way (as CRD objects), and Ferry's discovery sees them as CRDs.
"""

from __future__ import annotations

from typing import Any

GROUP = "snapshot.storage.k8s.io"


def _col(name: str, path: str, kind: str = "string") -> dict[str, str]:
    return {"name": name, "type": kind, "jsonPath": path}


COLUMNS = {
    "VolumeSnapshot": [
        _col("ReadyToUse", ".status.readyToUse", "boolean"),
        _col("SourcePVC", ".spec.source.persistentVolumeClaimName"),
        _col("SourceSnapshotContent", ".spec.source.volumeSnapshotContentName"),
        _col("RestoreSize", ".status.restoreSize"),
        _col("SnapshotClass", ".spec.volumeSnapshotClassName"),
        _col("SnapshotContent", ".status.boundVolumeSnapshotContentName"),
        _col("CreationTime", ".status.creationTime", "date"),
        _col("Age", ".metadata.creationTimestamp", "date"),
    ],
    "VolumeSnapshotContent": [
        _col("ReadyToUse", ".status.readyToUse", "boolean"),
        _col("RestoreSize", ".status.restoreSize", "integer"),
        _col("DeletionPolicy", ".spec.deletionPolicy"),
        _col("Driver", ".spec.driver"),
        _col("VolumeSnapshotClass", ".spec.volumeSnapshotClassName"),
        _col("VolumeSnapshot", ".spec.volumeSnapshotRef.name"),
        _col("VolumeSnapshotNamespace", ".spec.volumeSnapshotRef.namespace"),
        _col("Age", ".metadata.creationTimestamp", "date"),
    ],
    "VolumeSnapshotClass": [
        _col("Driver", ".driver"),
        _col("DeletionPolicy", ".deletionPolicy"),
        _col("Age", ".metadata.creationTimestamp", "date"),
    ],
}


def _crd(plural: str, kind: str, scope: str, short: list[str], status: bool) -> dict[str, Any]:
    version: dict[str, Any] = {
        "name": "v1",
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        "additionalPrinterColumns": COLUMNS[kind],
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
