"""Flags to requests: what each flag sets in the MobilityRequest, and how a bad flag is refused (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from services.cli.parsing import build_parser, request_from_args
from tests.cli.conftest import invoke

BASE = ["migrate", "--from", "east", "--to", "west", "-n", "shop"]


def fields(request: Any) -> dict[str, Any]:
    return msgspec.to_builtins(request)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(
            ["migrate", "--from", "east", "--to", "west", "-n", "a", "--namespace", "b,c"],
            {
                "kind": "migrate",
                "source.cluster": "east",
                "target.cluster": "west",
                "source.namespaces": ["a", "b", "c"],
            },
            id="namespaces are repeated or comma-separated",
        ),
        pytest.param(
            [
                *BASE,
                "--namespace-mapping",
                "shop:shop-dr",
                "--namespace-mapping",
                "a:b,c:d",
                "--storage-class-mapping",
                "gp2:standard",
            ],
            {
                "target.namespace_map": {"shop": "shop-dr", "a": "b", "c": "d"},
                "target.storage_class_map": {"gp2": "standard"},
            },
            id="mappings are old:new, repeated or comma-separated",
        ),
        pytest.param(
            [
                *BASE,
                "--registry-mapping",
                "docker.io=registry.local:5000",
                "--registry-mapping",
                "quay.io:mirror.local",
            ],
            {"target.registry_map": {"docker.io": "registry.local:5000", "quay.io": "mirror.local"}},
            id="a registry with a port is mapped with =",
        ),
        pytest.param(
            [
                *BASE,
                "-l",
                "app=web,tier!=cache",
                "--include-resources",
                "deployments.apps,configmaps",
                "--exclude-resources",
                "secrets",
            ],
            {
                "source.selector": "app=web,tier!=cache",
                "source.include_resources": ["deployments.apps", "configmaps"],
                "source.exclude_resources": ["secrets"],
            },
            id="selector and resource filters",
        ),
        pytest.param(
            [
                *BASE,
                "--existing-resource-policy",
                "update",
                "--quiesce",
                "--dry-run",
                "--idempotency-key",
                "deploy-42",
                "--label",
                "team=shop",
                "--label",
                "ticket=OPS-1",
            ],
            {
                "conflict_policy": "update",
                "quiesce": True,
                "dry_run": True,
                "idempotency_key": "deploy-42",
                "labels": {"team": "shop", "ticket": "OPS-1"},
            },
            id="policy, quiesce, dry run, idempotency key and labels",
        ),
        pytest.param(
            [
                *BASE,
                "--snapshot-method",
                "csi",
                "--parallel",
                "8",
                "--exclude-storage-classes",
                "nfs",
                "--skip-volume-data",
            ],
            {
                "volumes.method": "csi",
                "volumes.parallel": 8,
                "volumes.exclude_storage_classes": ["nfs"],
                "volumes.copy_data": False,
            },
            id="volume options",
        ),
        pytest.param(
            [*BASE, "--include-resources", "pods", "--keep-owned"],
            {"keep_owned": True, "source.include_resources": ["pods"]},
            id="keep what a controller would make",
        ),
        pytest.param(
            ["replicate", "--from", "east", "-n", "shop", "--to-repository", "west-region"],
            {"kind": "replicate", "target.cluster": None, "target.repository": "west-region"},
            id="a replica needs no target cluster",
        ),
        pytest.param(
            [
                "restore",
                "--from",
                "east",
                "--to",
                "west",
                "--from-snapshot",
                "latest",
                "--namespace-mapping",
                "shop:shop-drill",
            ],
            {"kind": "restore", "source.snapshot": "latest", "target.namespace_map": {"shop": "shop-drill"}},
            id="a restore of the latest snapshot into a renamed namespace",
        ),
        pytest.param(
            [
                "drill",
                "--from",
                "east",
                "--to",
                "west",
                "--from-snapshot",
                "snap-1",
                "--namespace-mapping",
                "shop:shop-drill",
            ],
            {"kind": "drill", "source.snapshot": "snap-1", "target.namespace_map": {"shop": "shop-drill"}},
            id="a drill into an isolated namespace",
        ),
        pytest.param(
            [*BASE, "--stage"],
            {"stage": True, "cutover": False, "quiesce": False, "auto_rollback": True},
            id="a stage copies while the source keeps serving",
        ),
        pytest.param(
            [*BASE, "--cutover"],
            {"stage": False, "cutover": True, "auto_rollback": True},
            id="a cutover rolls back on failure by default",
        ),
        pytest.param(
            [*BASE, "--cutover", "--no-auto-rollback"],
            {"cutover": True, "auto_rollback": False},
            id="a cutover may leave the source down when it fails",
        ),
        pytest.param(
            BASE,
            {"stage": False, "cutover": False, "auto_rollback": True, "rollback_of": ""},
            id="a plain migrate is neither a stage nor a cutover",
        ),
    ],
)
def test_flags_build_the_request(argv: list[str], expected: dict[str, Any]) -> None:
    request = fields(request_from_args(build_parser().parse_args(argv)))
    for path, value in expected.items():
        node: Any = request
        for part in path.split("."):
            node = node[part]
        assert node == value, path


def test_resource_modifiers_are_read_from_the_file(tmp_path: Path) -> None:
    rules = "version: v1\nresourceModifierRules:\n- conditions: {groupResource: deployments.apps}\n"
    (tmp_path / "mods.yaml").write_text(rules)
    args = build_parser().parse_args([*BASE, "--resource-modifiers", str(tmp_path / "mods.yaml")])
    assert request_from_args(args).target.resource_modifiers == rules


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        pytest.param(
            ["migrate", "--from", "east", "-n", "shop"],
            "argument --to: a migrate request needs a target cluster",
            id="a migration without --to",
        ),
        pytest.param(
            ["migrate", "--from", "east", "--to", "west"],
            "argument -n/--namespace",
            id="a migration naming no namespace",
        ),
        pytest.param(
            [*BASE, "-n", "Shop"], "argument -n/--namespace", id="a namespace that is not a DNS name"
        ),
        pytest.param(
            [*BASE, "--namespace-mapping", "shop"],
            "argument --namespace-mapping: expected old:new",
            id="a mapping without a colon",
        ),
        pytest.param(
            [*BASE, "--storage-class-mapping", "a:b,a:c"],
            "argument --storage-class-mapping: 'a' is mapped twice",
            id="a class mapped twice",
        ),
        pytest.param(
            [*BASE, "--existing-resource-policy", "merge"],
            "argument --existing-resource-policy: invalid choice",
            id="an unknown policy",
        ),
        pytest.param([*BASE, "--parallel", "0"], "argument --parallel", id="zero parallel copies"),
        pytest.param(
            [*BASE, "--parallel", "many"],
            "argument --parallel: invalid int value",
            id="a parallelism that is not a number",
        ),
        pytest.param(
            [*BASE, "--resource-modifiers", "/nonexistent/mods.yaml"],
            "argument --resource-modifiers: cannot read",
            id="a missing modifiers file",
        ),
        pytest.param(
            [*BASE, "--include-resources", "pods", "--exclude-resources", "pods"],
            "argument --exclude-resources",
            id="a resource both included and excluded",
        ),
        pytest.param(
            [*BASE, "--label", "team"], "argument --label: expected key=value", id="a label without a value"
        ),
        pytest.param(
            [*BASE, "--wait", "--watch"],
            "argument --watch: not allowed with argument --wait",
            id="wait and watch together",
        ),
        pytest.param(
            ["restore", "--from", "east", "--to", "west"],
            "the following arguments are required: --from-snapshot",
            id="a restore without a snapshot",
        ),
        pytest.param([*BASE, "--colour", "red"], "unrecognized arguments: --colour", id="an unknown flag"),
        pytest.param(
            ["list", "--limit", "0", "--url", "http://127.0.0.1:9"],
            "argument --limit",
            id="a list limit of zero",
        ),
        pytest.param(
            ["list", "--label", "team", "--url", "http://127.0.0.1:9"],
            "argument --label: expected key=value",
            id="a list label filter without a value",
        ),
        pytest.param(
            ["list", "--since", "yesterday", "--url", "http://127.0.0.1:9"],
            "argument --since: expected an ISO 8601 time",
            id="a list since a time that is not one",
        ),
        pytest.param(["teleport"], "invalid choice: 'teleport'", id="an unknown command"),
        pytest.param(
            [*BASE, "--stage", "--cutover"],
            "argument --cutover: a request is a stage or a cutover, not both",
            id="a stage and a cutover together",
        ),
        pytest.param(
            [*BASE, "--stage", "--quiesce"],
            "argument --quiesce: a stage keeps the source serving",
            id="a stage that would quiesce the source",
        ),
        pytest.param(
            [*BASE, "--no-auto-rollback"],
            "argument --no-auto-rollback: goes with --cutover",
            id="no auto rollback without a cutover",
        ),
        pytest.param(
            [*BASE, "--stage", "--no-auto-rollback"],
            "argument --no-auto-rollback: goes with --cutover",
            id="no auto rollback on a stage",
        ),
        pytest.param(
            ["replicate", "--from", "east", "-n", "shop", "--stage"],
            "unrecognized arguments: --stage",
            id="only a migrate has stages",
        ),
        pytest.param(
            ["rollback"], "the following arguments are required: REQUEST", id="a rollback naming nothing"
        ),
    ],
)
async def test_bad_flags_exit_2_naming_the_flag(
    argv: list[str], words: str, capsys: pytest.CaptureFixture[str]
) -> None:
    result = await invoke(*argv)
    assert result.code == 2
    assert words in result.err + capsys.readouterr().err  # argparse writes its own errors to sys.stderr


async def test_without_a_gateway_or_a_bus_the_error_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FERRY_URL", raising=False)
    monkeypatch.delenv("FERRY_BUS", raising=False)
    result = await invoke("list")
    assert result.code == 1
    assert "--url / $FERRY_URL" in result.err and "--bus" in result.err
