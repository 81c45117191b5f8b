"""Packaging checks: the Dockerfile, docker-compose.yml and the kustomize base in deploy/.

None of this can be run here for real (no Docker engine, no cluster), so the tests check what would
break first when someone does: commands that name modules that do not exist, manifests the API server
would refuse (validated offline against the Kubernetes schemas shipped by ``kubernetes-validate``),
references to ServiceAccounts, Secrets, ConfigMaps, volumes and configs that are not defined,
settings the services would refuse at start (loaded through ``shared.runtime.settings``), and ports
published or exposed by a Service that no Ferry process listens on with the settings it is given. They
read files only, need no network and run in well under a few seconds.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import msgspec
import pytest
import yaml
from kubernetes_validate.utils import all_versions

from services.gateway.config import GatewayConfig, TokenEntry, hash_token
from shared.runtime.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
BASE = ROOT / "deploy" / "base"

FERRY_SERVICES = ("intake", "discovery", "snapshot", "transfer", "restore", "verify", "gateway")
# The oldest Kubernetes the manifests promise to work on (k3s in docker-compose runs it) and the newest
# kubernetes-validate knows.
KUBE_VERSIONS = ("1.30.0", all_versions()[-1])
HTTP_PORT = 8080
GATEWAY_PORT = 8081  # the gateway's API (FERRY_GATEWAY_PORT)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


# --- helpers -------------------------------------------------------------------------------------------


def module_file(module: str) -> Path | None:
    """The file ``python -m <module>`` runs, if the repository has it."""
    path = ROOT.joinpath(*module.split("."))
    for candidate in (path / "__main__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def python_m_module(command: list[str]) -> str | None:
    """``python -m services.x`` -> ``services.x``; anything else -> None."""
    if len(command) >= 3 and Path(command[0]).name.startswith("python") and command[1] == "-m":
        return command[2]
    return None


def service_param(name: str, *values: Any, id: str) -> Any:
    return pytest.param(name, *values, id=id)


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str) -> str:
    """Compose's ``${VAR:-default}`` with nothing set: the default."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}", r"\1", value)


def manifest_docs() -> Iterator[tuple[str, dict[str, Any]]]:
    for path in sorted(BASE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


DOCS = list(manifest_docs())


def objects(kind: str) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc for _, doc in DOCS if doc["kind"] == kind}


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (word, _) in enumerate(instructions) if word == "FROM")
    return instructions[last_from:]


def dockerignore_keeps(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent directories wins."""
    patterns = [
        p.strip() for p in DOCKERIGNORE.read_text().splitlines() if p.strip() and not p.startswith("#")
    ]
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    keep = True
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        regex = fnmatch.translate(pattern).replace(".*", "[^/]*")
        if pattern.startswith("**/"):
            regex = "(.*/)?" + fnmatch.translate(pattern[3:]).replace(".*", "[^/]*")
        if any(re.fullmatch(regex, prefix) for prefix in prefixes):
            keep = negate
    return keep


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def listening(name: str, env: dict[str, str]) -> dict[int, str]:
    """The TCP ports the process of Ferry service ``name`` listens on with ``env``, each with what it
    serves: the settings go through the runtime (and the gateway's own configuration), as at start.
    Each listens on every interface, or a published port would lead nowhere."""
    settings = load_settings(env)
    assert settings.http_host not in LOOPBACK, f"{name}: FERRY_HTTP_HOST={settings.http_host}"
    ports = {settings.http_port: "/healthz, /readyz, /metrics"}
    if name == "gateway":
        if "REPLACE-ME" in settings.gateway_tokens:  # deploy/'s placeholder: what an operator puts there
            valid = [TokenEntry(sha256=hash_token("a-token"), scopes=[])]
            settings = msgspec.structs.replace(settings, gateway_tokens=msgspec.json.encode(valid).decode())
        config = GatewayConfig.load(settings, env)
        assert config.host not in LOOPBACK, f"gateway: FERRY_GATEWAY_HOST={config.host}"
        ports[config.port] = "the API"
    return ports


# --- docker-compose.yml ---------------------------------------------------------------------------------


def test_the_compose_file_is_accepted_by_docker_compose() -> None:
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=20)
    if probe.returncode != 0:
        pytest.skip("the docker client has no compose plugin; the YAML checks below still run")
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_file_has_the_bus_the_store_both_clusters_and_every_service() -> None:
    services = load_compose()["services"]
    missing = {"nats", "seaweedfs", "east", "west", *FERRY_SERVICES} - set(services)
    assert not missing, f"docker-compose.yml lacks services {sorted(missing)}"


@pytest.mark.parametrize(
    "name", [service_param(n, id=f"compose runs {n} as python -m services.{n}") for n in FERRY_SERVICES]
)
def test_compose_runs_each_ferry_service_from_its_module(name: str) -> None:
    service = load_compose()["services"][name]
    module = python_m_module(service["command"])
    assert module == f"services.{name}", service["command"]
    assert module_file(module) is not None, f"services/{name}/__main__.py does not exist"


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"compose builds {n} from the one Dockerfile") for n in FERRY_SERVICES]
)
def test_compose_builds_every_ferry_service_from_the_one_image(name: str) -> None:
    compose = load_compose()
    service = compose["services"][name]
    assert service["image"] == compose["services"]["intake"]["image"]
    assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"compose checks {n}'s health on /healthz") for n in FERRY_SERVICES]
)
def test_compose_health_checks_each_service_on_healthz(name: str) -> None:
    service = load_compose()["services"][name]
    probe = " ".join(service["healthcheck"]["test"])
    assert "/healthz" in probe and "FERRY_HTTP_PORT" in probe
    assert service["environment"]["FERRY_HTTP_PORT"] == str(HTTP_PORT)
    # The probe is Python (the slim image has no curl); it has to compile.
    code = service["healthcheck"]["test"][service["healthcheck"]["test"].index("-c") + 1]
    ast.parse(code)


def compose_env(name: str, tmp_path: Path) -> dict[str, str]:
    """The environment compose gives service ``name``, its FERRY_CONFIG file written under ``tmp_path``."""
    compose = load_compose()
    service = compose["services"][name]
    env = {key: interpolate(str(value)) for key, value in service["environment"].items()}
    mounted = {c["target"]: compose["configs"][c["source"]]["content"] for c in service.get("configs", [])}
    assert env["FERRY_CONFIG"] in mounted, "FERRY_CONFIG names a file the service does not mount"
    config = tmp_path / "ferry.toml"
    config.write_text(mounted[env["FERRY_CONFIG"]])
    return {**env, "FERRY_CONFIG": str(config)}


def published(service: dict[str, Any]) -> list[int]:
    """The container side of each of a compose service's ``ports`` (``8081:8081``, ``127.0.0.1:1:2/tcp``,
    or the long form)."""
    ports = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"compose gives {n} settings the runtime accepts") for n in FERRY_SERVICES]
)
def test_compose_settings_load_through_the_runtime(name: str, tmp_path: Path) -> None:
    service = load_compose()["services"][name]
    settings = load_settings(compose_env(name, tmp_path))
    assert settings.nats.url == "nats://nats:4222"
    assert settings.s3.endpoint == "http://seaweedfs:8333"
    assert settings.kubeconfig == "/kube/config"
    assert settings.http_port == HTTP_PORT
    assert set(settings.repositories) == {"east", "west"}
    mounts = {v.split(":")[1] for v in service["volumes"]}
    assert "/kube" in mounts, "FERRY_KUBECONFIG lies on a volume the service does not mount"


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"compose publishes only ports {n} listens on") for n in FERRY_SERVICES]
)
def test_compose_publishes_only_ports_the_service_listens_on(name: str, tmp_path: Path) -> None:
    ports = listening(name, compose_env(name, tmp_path))
    stray = [p for p in published(load_compose()["services"][name]) if p not in ports]
    assert not stray, f"{name} publishes {stray}, but listens on {ports}"


def test_compose_publishes_the_gateway_api_and_its_metrics(tmp_path: Path) -> None:
    ports = listening("gateway", compose_env("gateway", tmp_path))
    assert ports[GATEWAY_PORT] == "the API"
    assert sorted(published(load_compose()["services"]["gateway"])) == sorted(ports)


def test_only_the_gateway_gets_the_gateway_tokens() -> None:
    services = load_compose()["services"]
    holders = {n for n in FERRY_SERVICES if "FERRY_GATEWAY_TOKENS" in services[n]["environment"]}
    assert holders == {"gateway"}
    tokens = json.loads(services["gateway"]["environment"]["FERRY_GATEWAY_TOKENS"])
    assert all(re.fullmatch(r"[0-9a-f]{64}", t["sha256"]) and t["scopes"] for t in tokens)


def test_nats_runs_jetstream_with_monitoring_and_a_volume() -> None:
    compose = load_compose()
    nats = compose["services"]["nats"]
    assert nats["image"].startswith("nats:")
    assert "-js" in nats["command"] and nats["command"][nats["command"].index("-m") + 1] == "8222"
    store = nats["command"][nats["command"].index("-sd") + 1]
    assert any(v.split(":")[1] == store and v.split(":")[0] in compose["volumes"] for v in nats["volumes"])


@pytest.mark.parametrize(
    "cluster", [pytest.param(c, id=f"k3s cluster {c} shares its kubeconfig") for c in ("east", "west")]
)
def test_each_k3s_cluster_writes_its_kubeconfig_where_the_merge_reads_it(cluster: str) -> None:
    services = load_compose()["services"]
    k3s = services[cluster]
    assert k3s["image"].startswith("rancher/k3s:") and k3s["privileged"] is True
    output = Path(k3s["environment"]["K3S_KUBECONFIG_OUTPUT"])
    volume = next(v.split(":")[0] for v in k3s["volumes"] if v.split(":")[1] == str(output.parent))
    merge = services["kubeconfigs"]
    merge_source = next(v.split(":")[1] for v in merge["volumes"] if v.split(":")[0] == volume)
    assert output.name == f"{cluster}.yaml" and merge_source == "/k3s"
    assert f"{cluster}=https://{cluster}:6443" in merge["environment"]["FERRY_CLUSTERS"]


def test_the_kubeconfig_merge_names_contexts_after_the_clusters(tmp_path: Path) -> None:
    compose = load_compose()
    script = tmp_path / "merge.py"
    script.write_text(compose["configs"]["merge-kubeconfigs"]["content"])
    source, target = tmp_path / "k3s", tmp_path / "kube"
    source.mkdir()
    target.mkdir()
    for cluster in ("east", "west"):
        k3s_written = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "default",
                    "cluster": {"server": "https://127.0.0.1:6443", "certificate-authority-data": "Q0E="},
                }
            ],
            "users": [
                {"name": "default", "user": {"client-certificate-data": cluster, "client-key-data": "S0VZ"}}
            ],
            "contexts": [{"name": "default", "context": {"cluster": "default", "user": "default"}}],
            "current-context": "default",
        }
        (source / f"{cluster}.yaml").write_text(yaml.safe_dump(k3s_written))
    env = {
        **os.environ,
        "FERRY_CLUSTERS": compose["services"]["kubeconfigs"]["environment"]["FERRY_CLUSTERS"],
        "KUBECONFIG_SOURCE": str(source),
        "KUBECONFIG_TARGET": str(target),
    }
    subprocess.run([sys.executable, str(script)], env=env, check=True, capture_output=True, timeout=30)
    merged = yaml.safe_load((target / "config").read_text())
    servers = {c["name"]: c["cluster"]["server"] for c in merged["clusters"]}
    users = {u["name"]: u["user"]["client-certificate-data"] for u in merged["users"]}
    assert servers == {"east": "https://east:6443", "west": "https://west:6443"}
    assert users == {"east": "east", "west": "west"}
    assert {c["name"] for c in merged["contexts"]} == {"east", "west"}
    host = yaml.safe_load((target / "host.yaml").read_text())
    assert {c["cluster"]["server"] for c in host["clusters"]} == {
        "https://127.0.0.1:6443",
        "https://127.0.0.1:6444",
    }


def test_every_reference_in_the_compose_file_is_defined() -> None:
    compose = load_compose()
    services = compose["services"]
    problems = []
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            if dependency not in services:
                problems.append(f"{name} depends on unknown service {dependency}")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")) and source not in compose["volumes"]:
                problems.append(f"{name} mounts undeclared volume {source}")
        for config in service.get("configs", []):
            if config["source"] not in compose.get("configs", {}):
                problems.append(f"{name} uses undeclared config {config['source']}")
        command = service.get("command", [])
        if module := python_m_module(command):
            if module_file(module) is None:
                problems.append(f"{name} runs python -m {module}, which does not exist")
        elif len(command) == 2 and command[0] == "python":
            mounted = {c["target"]: c["source"] for c in service.get("configs", [])}
            if command[1] not in mounted:
                problems.append(f"{name} runs {command[1]}, which nothing mounts")
            else:
                ast.parse(compose["configs"][mounted[command[1]]]["content"])
    assert not problems


# --- Dockerfile and .dockerignore -------------------------------------------------------------------------


def test_the_image_builds_on_python_3_11_slim() -> None:
    instructions = dockerfile_instructions()
    args = dict(a.split("=", 1) for w, a in instructions if w == "ARG" and "=" in a)
    images = [a.split()[0] for w, a in instructions if w == "FROM"]
    bases = [args.get(image.strip("${}"), image) for image in images]
    assert bases and all(b == "python:3.11-slim" for b in bases), bases


def test_the_image_runs_as_a_non_root_user() -> None:
    users = [a for w, a in final_stage(dockerfile_instructions()) if w == "USER"]
    assert users, "the final stage sets no USER: the services would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_the_image_installs_the_project_with_pip_from_pyproject() -> None:
    runs = " ".join(a for w, a in dockerfile_instructions() if w == "RUN")
    assert re.search(r"pip install [^&]*/src\b", runs), "no `pip install` of the copied project"
    assert dockerignore_keeps("pyproject.toml")


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        pytest.param("pyproject.toml", True, id="the build context keeps pyproject.toml"),
        pytest.param("README.md", True, id="the build context keeps README.md, which pyproject names"),
        pytest.param("shared/runtime/settings.py", True, id="the build context keeps the shared package"),
        pytest.param("services/gateway/__main__.py", True, id="the build context keeps the services"),
        pytest.param(
            "sandbox/__init__.py", False, id="the build context leaves out the sandbox (a test double)"
        ),
        pytest.param(
            "sandbox/localstack/processes.py",
            False,
            id="the build context leaves out the local-stack launcher",
        ),
        pytest.param(".venv/bin/python", False, id="the build context leaves out the virtualenv"),
        pytest.param(".git/HEAD", False, id="the build context leaves out git"),
        pytest.param("tests/conftest.py", False, id="the build context leaves out the tests"),
        pytest.param(
            "shared/__pycache__/x.cpython-311.pyc", False, id="the build context leaves out bytecode"
        ),
    ],
)
def test_dockerignore(path: str, kept: bool) -> None:
    assert dockerignore_keeps(path) is kept


def test_the_image_default_command_names_a_service_module() -> None:
    cmd = [a for w, a in final_stage(dockerfile_instructions()) if w == "CMD"]
    assert not [a for w, a in final_stage(dockerfile_instructions()) if w == "ENTRYPOINT"]
    command = json.loads(cmd[-1])  # exec form: python is PID 1 and gets SIGTERM itself
    module = python_m_module(command)
    assert module and module.split(".")[0] == "services" and module.split(".")[1] in FERRY_SERVICES
    assert module_file(module) is not None, f"{module} does not exist"


def test_the_image_build_checks_every_service_module() -> None:
    runs = " ".join(a for w, a in dockerfile_instructions() if w == "RUN")
    listed = re.search(r"for s in \(([^)]*)\)", runs)
    assert listed, "the build no longer checks the service modules"
    assert {s.strip(" '\"") for s in listed.group(1).split(",")} == set(FERRY_SERVICES)


@pytest.mark.parametrize(
    "script",
    [
        pytest.param(script, id=f"the image has the {script} entry point")
        for script in ("ferry-mover", "ferry")
    ],
)
def test_entry_points_in_the_image_name_modules_that_exist(script: str) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert script in scripts, f"pyproject.toml declares no {script} script"
    runs = " ".join(a for w, a in dockerfile_instructions() if w == "RUN")
    assert f"command -v {script}" in runs, f"the build does not check that {script} is installed"
    module, _, function = scripts[script].partition(":")
    path = module_file(module)
    assert path is not None, f"{scripts[script]}: {module} does not exist"
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    assert function in names, f"{module} defines no {function}()"


# --- deploy/ --------------------------------------------------------------------------------------------


def test_every_file_kustomization_lists_exists() -> None:
    missing = [r for r in kustomization()["resources"] if not (BASE / r).is_file()]
    assert not missing


def test_every_yaml_in_the_base_is_listed_in_kustomization() -> None:
    listed = set(kustomization()["resources"])
    present = {p.name for p in BASE.glob("*.y*ml")} - {"kustomization.yaml"}
    assert present - listed == set()


@pytest.mark.parametrize(
    ("filename", "doc", "version"),
    [
        pytest.param(
            f,
            d,
            v,
            id=f"{d['kind']} {d['metadata']['name']} in {f} is valid for Kubernetes {v.rsplit('.', 1)[0]}",
        )
        for f, d in DOCS
        for v in KUBE_VERSIONS
    ],
)
def test_manifest_is_valid_against_the_kubernetes_schema(
    filename: str, doc: dict[str, Any], version: str
) -> None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        path = ".".join(str(p) for p in e.path)
        pytest.fail(f"{filename}: {doc['kind']} {doc['metadata']['name']}: {path}: {e.message}")


def test_the_base_has_a_deployment_for_every_service() -> None:
    assert set(objects("Deployment")) == {f"ferry-{n}" for n in FERRY_SERVICES}


@pytest.mark.parametrize(
    "name", [service_param(n, id=f"the {n} Deployment runs python -m services.{n}") for n in FERRY_SERVICES]
)
def test_deployment_command_names_a_module_that_exists(name: str) -> None:
    (container,) = containers(objects("Deployment")[f"ferry-{name}"])
    module = python_m_module(container["command"])
    assert module == f"services.{name}", container["command"]
    assert module_file(module) is not None, f"services/{name}/__main__.py does not exist"


@pytest.mark.parametrize(
    "name", [pytest.param(n, id=f"the {n} Deployment is probed, scraped and bounded") for n in FERRY_SERVICES]
)
def test_deployment_probes_metrics_and_resources(name: str) -> None:
    deployment = objects("Deployment")[f"ferry-{name}"]
    (container,) = containers(deployment)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == ({"http": HTTP_PORT, "api": GATEWAY_PORT} if name == "gateway" else {"http": HTTP_PORT})
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"]["path"] == path
        assert container[probe]["httpGet"]["port"] in ("http", HTTP_PORT)
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(HTTP_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"
    for bound in ("requests", "limits"):
        assert set(container["resources"][bound]) == {"cpu", "memory"}


def test_every_service_account_a_deployment_uses_is_defined_and_its_own() -> None:
    accounts = objects("ServiceAccount")
    used = {
        name: d["spec"]["template"]["spec"].get("serviceAccountName")
        for name, d in objects("Deployment").items()
    }
    assert all(used.values()), f"a Deployment runs as the default ServiceAccount: {used}"
    assert set(used.values()) <= set(accounts), f"undefined: {set(used.values()) - set(accounts)}"
    assert len(set(used.values())) == len(used), "two Deployments share a ServiceAccount"


def test_every_cluster_role_binding_binds_a_defined_role_to_a_defined_service_account() -> None:
    roles, accounts = objects("ClusterRole"), objects("ServiceAccount")
    for name, binding in objects("ClusterRoleBinding").items():
        assert binding["roleRef"]["name"] in roles, name
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["name"] in accounts, name
            assert subject["namespace"] == accounts[subject["name"]]["metadata"]["namespace"], name


def granted(service: str) -> list[dict[str, Any]]:
    """The rules bound to a service's ServiceAccount."""
    roles = objects("ClusterRole")
    return [
        rule
        for binding in objects("ClusterRoleBinding").values()
        if any(s["name"] == f"ferry-{service}" for s in binding["subjects"])
        for rule in roles[binding["roleRef"]["name"]]["rules"]
    ]


def allows(rules: list[dict[str, Any]], verb: str, group: str, resource: str) -> bool:
    return any(
        (verb in r["verbs"] or "*" in r["verbs"])
        and (group in r["apiGroups"] or "*" in r["apiGroups"])
        and (resource in r["resources"] or "*" in r["resources"])
        for r in rules
    )


@pytest.mark.parametrize(
    ("service", "verb", "group", "resource", "allowed"),
    [
        pytest.param("discovery", "list", "apps", "deployments", True, id="discovery can list any type"),
        pytest.param(
            "discovery", "list", "example.com", "widgets", True, id="discovery can list custom resources"
        ),
        pytest.param("discovery", "create", "", "configmaps", False, id="discovery cannot write anything"),
        pytest.param("discovery", "delete", "", "secrets", False, id="discovery cannot delete anything"),
        pytest.param(
            "snapshot",
            "create",
            "snapshot.storage.k8s.io",
            "volumesnapshots",
            True,
            id="snapshot can take volume snapshots",
        ),
        pytest.param(
            "snapshot",
            "delete",
            "snapshot.storage.k8s.io",
            "volumesnapshots",
            True,
            id="snapshot can remove its volume snapshots",
        ),
        pytest.param(
            "snapshot",
            "create",
            "",
            "persistentvolumeclaims",
            True,
            id="snapshot can provision temporary PVCs",
        ),
        pytest.param("snapshot", "create", "batch", "jobs", True, id="snapshot can run mover jobs"),
        pytest.param("snapshot", "delete", "batch", "jobs", True, id="snapshot can remove mover jobs"),
        pytest.param("snapshot", "create", "", "secrets", True, id="snapshot can create the mover's secret"),
        pytest.param(
            "snapshot", "get", "", "secrets", True, id="snapshot reads the secrets it captures, by name"
        ),
        pytest.param("snapshot", "list", "", "secrets", False, id="snapshot cannot list secrets"),
        pytest.param("snapshot", "update", "", "secrets", False, id="snapshot cannot change secrets"),
        pytest.param("snapshot", "patch", "apps", "deployments", True, id="snapshot can quiesce deployments"),
        pytest.param("snapshot", "patch", "batch", "cronjobs", True, id="snapshot can suspend cronjobs"),
        pytest.param(
            "snapshot", "delete", "apps", "deployments", False, id="snapshot cannot delete workloads"
        ),
        pytest.param("restore", "create", "apps", "deployments", True, id="restore can create workloads"),
        pytest.param(
            "restore", "create", "example.com", "widgets", True, id="restore can create custom resources"
        ),
        pytest.param("restore", "create", "batch", "jobs", True, id="restore can run mover jobs"),
        pytest.param("restore", "create", "", "persistentvolumeclaims", True, id="restore can create PVCs"),
        pytest.param(
            "restore",
            "bind",
            "rbac.authorization.k8s.io",
            "clusterroles",
            True,
            id="restore can restore role bindings",
        ),
        pytest.param("restore", "impersonate", "", "users", False, id="restore cannot impersonate"),
        pytest.param("intake", "get", "", "pods", False, id="intake has no Kubernetes access"),
        pytest.param("transfer", "get", "", "pods", False, id="transfer has no Kubernetes access"),
        pytest.param("gateway", "get", "", "pods", False, id="the gateway has no Kubernetes access"),
    ],
)
def test_rbac_is_least_privilege_per_service(
    service: str, verb: str, group: str, resource: str, allowed: bool
) -> None:
    assert allows(granted(service), verb, group, resource) is allowed


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, id=f"{n} mounts no API token")
        for n in FERRY_SERVICES
        if n in ("intake", "transfer", "gateway")
    ],
)
def test_services_without_kubernetes_access_mount_no_token(name: str) -> None:
    account = objects("ServiceAccount")[f"ferry-{name}"]
    pod = objects("Deployment")[f"ferry-{name}"]["spec"]["template"]["spec"]
    assert account.get("automountServiceAccountToken") is False
    assert pod.get("automountServiceAccountToken") is False


def env_sources(name: str) -> tuple[list[str], list[tuple[str, str, str]]]:
    (container,) = containers(objects("Deployment")[f"ferry-{name}"])
    maps = [s["configMapRef"]["name"] for s in container.get("envFrom", []) if "configMapRef" in s]
    secrets = [
        (e["name"], e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    ]
    return maps, secrets


def deployment_env(name: str) -> dict[str, str]:
    """The environment the ``ferry-<name>`` container gets: its ConfigMaps, Secret keys and values."""
    maps, secret_refs = env_sources(name)
    config_maps, secrets = objects("ConfigMap"), objects("Secret")
    env: dict[str, str] = {}
    for map_name in maps:
        assert map_name in config_maps, f"ConfigMap {map_name} is not defined"
        env.update(config_maps[map_name]["data"])
    for var, secret, key in secret_refs:
        assert secret in secrets and key in secrets[secret]["stringData"], (
            f"{var}: {secret}/{key} is not defined"
        )
        env[var] = secrets[secret]["stringData"][key]
    (container,) = containers(objects("Deployment")[f"ferry-{name}"])
    env.update({e["name"]: str(e["value"]) for e in container.get("env", []) if "value" in e})
    return env


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, id=f"the {n} Deployment gets settings the runtime accepts") for n in FERRY_SERVICES],
)
def test_deployment_settings_exist_and_load_through_the_runtime(name: str) -> None:
    settings = load_settings(deployment_env(name))
    assert settings.nats.url.startswith("nats://nats.") and settings.nats.token
    assert settings.http_port == HTTP_PORT and settings.image
    needs_repository = name in ("discovery", "snapshot", "transfer", "restore", "verify")
    assert bool(settings.repo_password and settings.s3.secret_key) is needs_repository
    assert bool(settings.gateway_tokens) is (name == "gateway")


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, id=f"the {n} Deployment declares only ports it listens on") for n in FERRY_SERVICES],
)
def test_deployment_container_ports_are_ports_the_service_listens_on(name: str) -> None:
    ports = listening(name, deployment_env(name))
    (container,) = containers(objects("Deployment")[f"ferry-{name}"])
    declared = {p["containerPort"] for p in container["ports"]}
    assert declared == set(ports), f"ferry-{name} declares {sorted(declared)}, but listens on {ports}"


def selected(service: dict[str, Any]) -> list[str]:
    """The Ferry services whose Deployment's pods a Service selects."""
    wanted = service["spec"].get("selector") or {}
    return [
        name
        for name in FERRY_SERVICES
        if wanted
        and wanted.items()
        <= objects("Deployment")[f"ferry-{name}"]["spec"]["template"]["metadata"]["labels"].items()
    ]


@pytest.mark.parametrize(
    "service",
    [
        pytest.param(name, id=f"Service {name} sends its traffic to ports a Ferry process listens on")
        for name, doc in objects("Service").items()
        if selected(doc)
    ],
)
def test_every_service_port_reaches_a_port_a_ferry_process_listens_on(service: str) -> None:
    doc = objects("Service")[service]
    for name in selected(doc):
        ports = listening(name, deployment_env(name))
        (container,) = containers(objects("Deployment")[f"ferry-{name}"])
        named = {p["name"]: p["containerPort"] for p in container["ports"]}
        for port in doc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            number = named.get(target) if isinstance(target, str) else target
            assert number in ports, (
                f"{service} port {port['port']} -> {target}: ferry-{name} listens on {ports}"
            )


def test_the_gateway_service_exposes_the_api_and_nothing_else() -> None:
    ports = listening("gateway", deployment_env("gateway"))
    (container,) = containers(objects("Deployment")["ferry-gateway"])
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    targets = [p["targetPort"] for p in objects("Service")["ferry-gateway"]["spec"]["ports"]]
    assert [ports.get(named.get(t, 0) if isinstance(t, str) else t) for t in targets] == ["the API"]


def test_the_example_secrets_are_marked_as_placeholders() -> None:
    for name, secret in objects("Secret").items():
        assert secret["metadata"]["annotations"]["ferry.dev/placeholder"] == "true", name
        assert all("REPLACE-ME" in value for value in secret["stringData"].values()), name


def test_nats_runs_jetstream_in_a_stateful_set_with_its_own_volumes() -> None:
    (statefulset,) = objects("StatefulSet").values()
    services = objects("Service")
    headless = services[statefulset["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert services["nats"]["spec"]["ports"][0]["port"] == 4222
    claims = {c["metadata"]["name"] for c in statefulset["spec"]["volumeClaimTemplates"]}
    (container,) = containers(statefulset)
    assert "data" in claims and {m["name"] for m in container["volumeMounts"]} >= claims
    config_volume = next(v for v in statefulset["spec"]["template"]["spec"]["volumes"] if "configMap" in v)
    nats_conf = objects("ConfigMap")[config_volume["configMap"]["name"]]["data"]["nats.conf"]
    assert re.search(r"^jetstream\s*\{[^}]*store_dir:\s*/data\b", nats_conf, re.M)
    for route in re.findall(r"nats://(nats-\d+)\.", nats_conf):
        assert int(route.split("-")[1]) < statefulset["spec"]["replicas"], f"route to missing pod {route}"


def test_the_base_builds_with_kustomize_into_the_ferry_namespace() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("no kubectl; the file-level checks above still run")
    result = subprocess.run([kubectl, "kustomize", str(BASE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    built = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert len(built) == len(DOCS)
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    assert all(d["metadata"].get("namespace") == "ferry" for d in built if d["kind"] not in cluster_scoped)
