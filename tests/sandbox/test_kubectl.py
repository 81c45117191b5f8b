"""The same flows through kubectl (skipped when kubectl is not on PATH)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from kubernetes_asyncio import client

from sandbox import SandboxClusters
from tests.sandbox.conftest import KUBECTL, eventually

Kubectl = Callable[..., Awaitable[tuple[int, str, str]]]

APP = """
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings, namespace: {ns}}}
data: {{mode: fast}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: {ns}}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      containers: [{{name: web, image: nginx, ports: [{{containerPort: 80}}]}}]
"""

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {{name: boxes.{group}}}
spec:
  group: {group}
  scope: Namespaced
  names: {{plural: boxes, singular: box, kind: Box, shortNames: [bx]}}
  versions:
  - name: v1
    served: true
    storage: true
    schema: {{openAPIV3Schema: {{type: object, x-kubernetes-preserve-unknown-fields: true}}}}
"""

BOX = """
apiVersion: {group}/v1
kind: Box
metadata: {{name: b1, namespace: {ns}}}
spec: {{size: 3}}
"""


async def test_kubectl_lists_api_resources_with_short_names(kubectl: Kubectl, east_url: str) -> None:
    code, out, err = await kubectl("--server", east_url, "api-resources")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert "deploy" in rows["deployments"] and "apps/v1" in rows["deployments"]
    assert "volumesnapshots" in rows and "horizontalpodautoscalers" in rows


async def test_kubectl_apply_then_get_all_namespaces(kubectl: Kubectl, ns: str) -> None:
    code, out, err = await kubectl("apply", "-f", "-", stdin=APP.format(ns=ns))
    assert code == 0, err
    assert "deployment.apps/web created" in out
    code, out, err = await kubectl("apply", "-f", "-", stdin=APP.format(ns=ns).replace("fast", "slow"))
    assert code == 0, err
    assert "configmap/settings configured" in out and "deployment.apps/web unchanged" in out
    code, out, err = await kubectl("get", "configmaps", "-A")
    assert code == 0, err
    assert any(line.split()[:2] == [ns, "settings"] for line in out.splitlines())
    code, out, err = await kubectl("get", "deployments,configmaps", "-n", ns, "-o", "name")
    assert code == 0, err
    assert "deployment.apps/web" in out.splitlines() and "configmap/settings" in out.splitlines()
    code, out, _ = await kubectl("get", "cm", "settings", "-n", ns, "-o", "jsonpath={.data.mode}")
    assert out == "slow"


async def test_kubectl_applies_a_crd_then_its_objects(kubectl: Kubectl, ns: str, unique: str) -> None:
    group = f"k{unique}.example.com"
    code, _, err = await kubectl("apply", "-f", "-", stdin=CRD.format(group=group))
    assert code == 0, err
    code, out, err = await kubectl("apply", "-f", "-", stdin=BOX.format(group=group, ns=ns))
    assert code == 0, err
    assert f"box.{group}/b1 created" in out
    code, out, err = await kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        stdin=BOX.format(group=group, ns=ns).replace("size: 3", "size: 4"),
    )
    assert code == 0, err
    code, out, _ = await kubectl("get", "bx", "b1", "-n", ns, "-o", "jsonpath={.spec.size}")
    assert out == "4"


async def test_kubectl_watch_prints_changes_until_its_timeout(
    clusters: SandboxClusters, api: client.ApiClient, ns: str, tmp_path: Path
) -> None:
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH")
    core = client.CoreV1Api(api)
    env = {**os.environ, "HOME": str(tmp_path), "KUBECONFIG": str(clusters.kubeconfig_path)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL,
        "--context",
        "east",
        "get",
        "configmaps",
        "-n",
        ns,
        "-w",
        "--request-timeout=2s",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    async with asyncio.timeout(15):
        while b"kube-root-ca.crt" not in await proc.stdout.readline():
            pass
        await core.create_namespaced_config_map(ns, {"metadata": {"name": "seen-by-watch"}})
        while b"seen-by-watch" not in await proc.stdout.readline():
            pass
        await proc.wait()  # the request timeout ends the watch


async def test_kubectl_delete_namespace_waits_until_it_is_gone(
    kubectl: Kubectl, api: client.ApiClient, unique: str
) -> None:
    core = client.CoreV1Api(api)
    name = f"gone-{unique}"
    await core.create_namespace({"metadata": {"name": name}})
    await core.create_namespaced_config_map(name, {"metadata": {"name": "c"}})
    code, out, err = await kubectl("delete", "namespace", name, "--timeout=20s")
    assert code == 0, err
    assert f'namespace "{name}" deleted' in out
    names = [n.metadata.name for n in (await core.list_namespace()).items]
    assert name not in names


async def test_kubectl_applies_the_shop_app_cleanly(kubectl: Kubectl, clusters: SandboxClusters) -> None:
    from sandbox.apps import SHOP_DIR

    # kubectl cannot map a custom resource whose CRD arrives in the same invocation (on any cluster),
    # so the CRD goes first; the flag given last wins over the fixture's --context east
    code, out, err = await kubectl("--context", "west", "apply", "-f", str(SHOP_DIR / "crds"))
    assert code == 0, err
    code, out, err = await kubectl("--context", "west", "apply", "-f", str(SHOP_DIR))
    assert code == 0, err
    assert "statefulset.apps/db created" in out and "promotion.shop.ferry.dev/winter-sale created" in out
    code, out, err = await kubectl("--context", "west", "get", "pvc", "-n", "shop", "-o", "name")
    assert "persistentvolumeclaim/web-uploads" in out.split()


async def test_kubectl_prints_the_columns_of_a_real_server(
    kubectl: Kubectl, api: client.ApiClient, ns: str
) -> None:
    core = client.CoreV1Api(api)
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    await core.create_namespaced_persistent_volume_claim(ns, {"metadata": {"name": "shown"}, "spec": spec})

    async def bound() -> bool:
        return (await core.read_namespaced_persistent_volume_claim("shown", ns)).status.phase == "Bound"

    await eventually(bound)
    code, out, err = await kubectl("get", "pvc", "-n", ns)
    assert code == 0, err
    header, row = out.splitlines()
    assert header.split()[:3] == ["NAME", "STATUS", "VOLUME"]
    assert row.split()[:2] == ["shown", "Bound"] and "standard" in row.split()
    code, out, err = await kubectl("get", "storageclasses")
    assert "standard (default)" in out
