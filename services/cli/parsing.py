"""The ``ferry`` command line: flags that feel like kubectl and Velero, turned into a MobilityRequest.

Flags that take lists accept both repetition and commas (``-n a -n b`` == ``-n a,b``); mappings take
``old:new`` (or ``old=new`` when a name itself has a colon, like a registry with a port). The request
built from the flags is checked by the same ``decode_request`` the bus uses, before anything is sent,
and a contract error is reported against the flag that set the field (exit 2), not a JSON path.

``ferry completion bash|zsh`` prints a completion script generated from this same parser
(``services.cli.completing``), so a new flag completes the day it is added.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from shared.bus.client import DOCUMENTS
from shared.contracts.requests import (
    ConflictPolicy,
    ExistingVolumes,
    MobilityRequest,
    RequestInvalid,
    RequestKind,
    SnapshotMethod,
    decode_request,
)
from shared.contracts.states import Phase

OUTPUTS = ("table", "json", "yaml")
EXAMPLES = {
    "migrate": """examples:
  ferry migrate --from east --to west -n shop --namespace-mapping shop:shop-west --watch
  ferry migrate --from east --to west -l app=web --storage-class-mapping gp2:standard --dry-run
  ferry migrate --from east --to west -n shop --quiesce --wait -o json | jq .phase

staged (pre-seed the volumes while the source serves, then switch with a short downtime):
  ferry migrate --from east --to west -n shop --stage --watch      # repeat: each sends only what changed
  ferry migrations                                                 # stages done, data age
  ferry migrate --from east --to west -n shop --cutover --watch    # quiesce, last delta, restore all
  ferry rollback REQUEST --watch                                   # undo: target cleaned, source back""",
    "rollback": """examples:
  ferry rollback migrate-20261123-101500-3fa2c1 --watch
  ferry rollback migrate-20261123-101500-3fa2c1 --wait -o json | jq .phase

Removes everything the migration plan created on the target (found by its labels) and scales the
source back up from the annotations the quiesce left. Rolling back twice is harmless.""",
    "replicate": """examples:
  ferry replicate --from east -n shop --to-repository west --idempotency-key nightly-2026-11-23""",
    "restore": """examples:
  ferry restore --from east --to west --from-snapshot latest --namespace-mapping shop:shop-drill --watch""",
    "drill": """examples:
  ferry drill shop-dr --watch                      # the policy's DR side: latest replica, verify, clean up
  ferry drill shop-dr --snapshot snap-42 --keep    # a given replica, the drill namespaces left to look at
  ferry drill --from east --to west --from-snapshot latest --namespace-mapping shop:shop-drill --watch""",
}


class UsageError(Exception):
    """A bad flag or flag value; ``flag`` names it. Exit code 2."""

    def __init__(self, flag: str, message: str) -> None:
        super().__init__(f"argument {flag}: {message}")
        self.flag = flag


# JSON path prefix of a request field -> the flag that sets it (longest prefix wins).
FLAG_OF_FIELD = {
    "$.source.cluster": "--from",
    "$.source.namespaces": "-n/--namespace",
    "$.source.selector": "-l/--selector",
    "$.source.include_resources": "--include-resources",
    "$.source.exclude_resources": "--exclude-resources",
    "$.source.repository": "--from-repository",
    "$.source.snapshot": "--from-snapshot",
    "$.target.cluster": "--to",
    "$.target.repository": "--to-repository",
    "$.target.namespace_map": "--namespace-mapping",
    "$.target.storage_class_map": "--storage-class-mapping",
    "$.target.registry_map": "--registry-mapping",
    "$.target.resource_modifiers": "--resource-modifiers",
    "$.volumes.parallel": "--parallel",
    "$.volumes.method": "--snapshot-method",
    "$.volumes.exclude_storage_classes": "--exclude-storage-classes",
    "$.volumes.existing": "--existing-volume-policy",
    "$.restore.resources": "--resource",
    "$.restore.volume_paths": "--volume-path",
    "$.restore.rewrite_references": "--no-rewrite-references",
    "$.restore.completed_jobs": "--restore-completed-jobs",
    "$.preflight_only": "--preflight",
    "$.quiesce": "--quiesce",
    "$.keep": "--keep",
    "$.stage": "--stage",
    "$.cutover": "--cutover",
    "$.auto_rollback": "--no-auto-rollback",
    "$.conflict_policy": "--existing-resource-policy",
    "$.idempotency_key": "--idempotency-key",
    "$.labels": "--label",
    "$.itinerary": "--steps",
}


def flag_for(path: str) -> str:
    matches = [p for p in FLAG_OF_FIELD if path == p or path.startswith((p + ".", p + "["))]
    return FLAG_OF_FIELD[max(matches, key=len)] if matches else path


def items(values: list[str] | None) -> list[str]:
    """Repeated and comma-separated values, flattened, blanks dropped."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()]


def pairs(values: list[str] | None, flag: str, separators: str = ":=") -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in items(values):
        at = next((item.index(s) for s in ("=", ":") if s in separators and s in item), -1)
        old, new = (item[:at].strip(), item[at + 1 :].strip()) if at > 0 else ("", "")
        if not old or not new:
            shape = "key=value" if separators == "=" else "old:new"
            raise UsageError(flag, f"expected {shape}, got {item!r}")
        if old in mapping:
            raise UsageError(flag, f"{old!r} is mapped twice")
        mapping[old] = new
    return mapping


def request_from_args(args: argparse.Namespace) -> MobilityRequest:
    """The request the flags describe, checked like the bus checks it; UsageError names the flag."""
    modifiers = ""
    if args.resource_modifiers:
        try:
            modifiers = Path(args.resource_modifiers).read_text()
        except OSError as e:
            raise UsageError(
                "--resource-modifiers", f"cannot read {args.resource_modifiers}: {e.strerror}"
            ) from None
    labels = pairs(args.label, "--label", "=")
    staging = _staging(args)
    source: dict[str, Any] = {
        "cluster": args.source_cluster,
        "namespaces": items(args.namespace),
        "selector": args.selector or "",
        "include_resources": items(args.include_resources),
        "exclude_resources": items(args.exclude_resources),
        "repository": args.from_repository or "",
    }
    if getattr(args, "from_snapshot", None):
        source["snapshot"] = args.from_snapshot
    keep = {"keep": True} if getattr(args, "keep", False) else {}  # a drill's namespaces stay
    target: dict[str, Any] = {
        "repository": args.to_repository or "",
        "namespace_map": pairs(args.namespace_mapping, "--namespace-mapping"),
        "storage_class_map": pairs(args.storage_class_mapping, "--storage-class-mapping"),
        "registry_map": pairs(args.registry_mapping, "--registry-mapping"),
        "resource_modifiers": modifiers,
    }
    if args.target_cluster:
        target["cluster"] = args.target_cluster
    document = {
        "kind": args.command,
        "source": source,
        "target": target,
        "volumes": {
            "copy_data": not args.skip_volume_data,
            "method": args.snapshot_method,
            "parallel": args.parallel,
            "exclude_storage_classes": items(args.exclude_storage_classes),
            "existing": args.existing_volume_policy,
        },
        "restore": {
            "resources": items(args.resource),
            "volume_paths": items(args.volume_path),
            "rewrite_references": not args.no_rewrite_references,
            "completed_jobs": args.restore_completed_jobs,
        },
        "conflict_policy": args.existing_resource_policy,
        "quiesce": args.quiesce,
        "keep_owned": args.keep_owned,
        "dry_run": args.dry_run,
        "preflight_only": args.preflight,
        "idempotency_key": args.idempotency_key or "",
        "labels": labels,
        "itinerary": items(args.steps),
        **staging,
        **keep,
    }
    try:
        return decode_request(msgspec.json.encode(document))
    except RequestInvalid as e:
        raise UsageError(flag_for(e.field), e.reason) from None


def _staging(args: argparse.Namespace) -> dict[str, bool]:
    """``--stage``, ``--cutover`` and ``--no-auto-rollback`` (migrate only) as request fields; the
    contract refuses a stage with a cutover, and the opt-out alone would silently mean nothing."""
    stage, cutover = getattr(args, "stage", False), getattr(args, "cutover", False)
    keep_down = getattr(args, "no_auto_rollback", False)
    if keep_down and not cutover:
        raise UsageError("--no-auto-rollback", "goes with --cutover (only a cutover rolls back on failure)")
    return {"stage": stage, "cutover": cutover, "auto_rollback": not keep_down}


def _common(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection and output")
    group.add_argument(
        "--url", default=os.environ.get("FERRY_URL", ""), help="the gateway (default $FERRY_URL)"
    )
    group.add_argument(
        "--bus",
        default=os.environ.get("FERRY_BUS", ""),
        metavar="NATS_URL",
        help="talk to NATS directly, e.g. nats://127.0.0.1:4222 (default $FERRY_BUS)",
    )
    group.add_argument("--token-file", help="read the gateway token from a file (default $FERRY_TOKEN)")
    group.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for one answer (default 10)"
    )
    group.add_argument(
        "-o", "--output", choices=OUTPUTS, default="table", help="output format (default table)"
    )


def _request_flags(parser: argparse.ArgumentParser, kind: str) -> None:
    """The flags of ``migrate|replicate|restore|drill``: the clusters, then one group each (as --help)."""
    if kind == "drill":  # `ferry drill POLICY`, or an ad hoc drill from flags (services.cli.recovering)
        parser.add_argument(
            "policy_or_app",
            nargs="?",
            metavar="POLICY",
            help="drill this policy's DR side; with --from, the application (namespace) of an ad hoc drill",
        )
    parser.add_argument(
        "--from",
        dest="source_cluster",
        required=kind != "drill",
        metavar="CONTEXT",
        help="source cluster (kubeconfig context)",
    )
    parser.add_argument(
        "--to", dest="target_cluster", metavar="CONTEXT", help="target cluster (kubeconfig context)"
    )
    if kind in ("restore", "drill"):
        parser.add_argument(
            "--from-snapshot",
            *(["--snapshot"] if kind == "drill" else []),
            dest="from_snapshot",
            required=kind == "restore",
            metavar="ID",
            help="snapshot to restore ('latest' for the newest)",
        )
    if kind == "drill":
        parser.add_argument(
            "--keep",
            action="store_true",
            help="leave the drill's namespaces in place for a look (default: removed after the checks)",
        )
    _what_flags(parser.add_argument_group("what to take"))
    _landing_flags(parser.add_argument_group("how it lands"))
    _volume_flags(parser.add_argument_group("volumes"))
    if kind == "migrate":
        _staged_flags(parser.add_argument_group("staged migration"))
    _run_flags(parser.add_argument_group("the request"))


def _what_flags(what: argparse._ArgumentGroup) -> None:
    """Which objects and volumes a request takes."""
    what.add_argument(
        "-n", "--namespace", action="append", metavar="NS", help="namespace(s), repeatable or comma-separated"
    )
    what.add_argument("-l", "--selector", metavar="SELECTOR", help="label selector, as kubectl -l")
    what.add_argument(
        "--include-resources", action="append", metavar="RES", help="e.g. deployments.apps,configmaps"
    )
    what.add_argument("--exclude-resources", action="append", metavar="RES")
    what.add_argument(
        "--resource",
        action="append",
        metavar="KIND/NAME",
        help="restore only these objects, e.g. deployment/web,configmap/app (or kind/namespace/name)",
    )
    what.add_argument(
        "--volume-path",
        action="append",
        metavar="NS/CLAIM:PATH",
        help="restore only this path of a volume, e.g. shop/pgdata-db-0:/base/16 (repeatable)",
    )
    what.add_argument(
        "--keep-owned",
        action="store_true",
        help="also restore objects their owner's controller would make (pods of a ReplicaSet, ...)",
    )
    what.add_argument(
        "--from-repository", metavar="NAME", help="source region's repository (default: the default)"
    )


def _landing_flags(how: argparse._ArgumentGroup) -> None:
    """How the objects land in the target: names, classes, registries, conflicts."""
    how.add_argument("--to-repository", metavar="NAME", help="target region's repository")
    how.add_argument(
        "--namespace-mapping", action="append", metavar="OLD:NEW", help="rename namespaces, repeatable"
    )
    how.add_argument("--storage-class-mapping", action="append", metavar="OLD:NEW")
    how.add_argument(
        "--registry-mapping",
        action="append",
        metavar="OLD=NEW",
        help="image registries (use = when a name has a port)",
    )
    how.add_argument("--resource-modifiers", metavar="FILE", help="Velero resource-modifier YAML")
    how.add_argument("--existing-resource-policy", choices=[p.value for p in ConflictPolicy], default="skip")


def _volume_flags(vol: argparse._ArgumentGroup) -> None:
    """How volume data is captured and copied."""
    vol.add_argument("--snapshot-method", choices=[m.value for m in SnapshotMethod], default="auto")
    vol.add_argument("--parallel", type=int, default=2, metavar="N", help="volumes copied at once (1-64)")
    vol.add_argument("--exclude-storage-classes", action="append", metavar="SC")
    vol.add_argument("--skip-volume-data", action="store_true", help="manifests only")
    vol.add_argument(
        "--existing-volume-policy",
        choices=[p.value for p in ExistingVolumes],
        default="auto",
        help="a claim that already exists in the target: refresh it (delta restore), keep its data, or fail; "
        "auto refreshes claims Ferry restored before and keeps any other",
    )


def _staged_flags(staged: argparse._ArgumentGroup) -> None:
    """A migrate in stages: pre-seed the volumes while the source serves, then one cutover."""
    staged.add_argument(
        "--stage",
        action="store_true",
        help="copy only the volumes' data into the target (claims, no workloads); the source keeps "
        "serving. Repeatable: each stage sends only new chunks and rewrites only changed files",
    )
    staged.add_argument(
        "--cutover",
        action="store_true",
        help="the final run: quiesce the source and leave it down, send the last delta, restore "
        "everything, wait until available; reports the downtime",
    )
    staged.add_argument(
        "--no-auto-rollback",
        action="store_true",
        help="with --cutover: if a step fails after the quiesce, leave the source down (default: "
        "roll back, bringing the source back)",
    )


def _follow_flags(group: argparse._ArgumentGroup) -> None:
    follow = group.add_mutually_exclusive_group()
    follow.add_argument("--wait", action="store_true", help="wait for the end; exit code tells the outcome")
    follow.add_argument("--watch", action="store_true", help="show live progress until the end")


def _run_flags(run: argparse._ArgumentGroup) -> None:
    """The request itself: dry run, preflight, idempotency, labels, and whether to wait for it."""
    run.add_argument("--quiesce", action="store_true", help="scale workloads to zero during the final copy")
    run.add_argument("--dry-run", action="store_true", help="discover and report; change nothing")
    run.add_argument(
        "--preflight",
        action="store_true",
        help="only check that the request can run (clusters, permissions, storage classes, repositories)",
    )
    run.add_argument(
        "--no-rewrite-references",
        action="store_true",
        help="with a namespace mapping, leave <svc>.<ns>.svc references in values as they are",
    )
    run.add_argument(
        "--restore-completed-jobs",
        action="store_true",
        help="also re-create Jobs that had completed in the source (they run again)",
    )
    run.add_argument("--idempotency-key", metavar="KEY", help="the same key returns the same request")
    run.add_argument("--label", action="append", metavar="K=V", help="label the request, repeatable")
    run.add_argument("--steps", action="append", metavar="STEP", help=argparse.SUPPRESS)  # itinerary override
    _follow_flags(run)


def _rollback_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``ferry rollback REQUEST``: the request is built from the stored migrate, not from flags."""
    p = sub.add_parser(
        "rollback",
        help="undo a migrate: remove what it created on the target, bring the source back",
        epilog=EXAMPLES["rollback"],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("id", metavar="REQUEST", help="the migrate request (a stage, a cutover) to undo")
    _follow_flags(p.add_argument_group("the request"))
    _common(p)


MoreParsers = Callable[
    ["argparse._SubParsersAction[argparse.ArgumentParser]", Callable[[argparse.ArgumentParser], None]], None
]


def build_parser(more: MoreParsers | None = None) -> argparse.ArgumentParser:
    """Every command's parser; ``more`` adds commands defined elsewhere (``main`` passes the
    disaster-recovery ones: they reuse this module's helpers, so this module cannot import them)."""
    parser = argparse.ArgumentParser(
        prog="ferry",
        description="Move and replicate Kubernetes applications between clusters.",
        epilog="Exit codes: 0 completed/ok, 1 error, 2 usage, 3 partially failed, 4 failed, 5 cancelled.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    helps = {
        "migrate": "move an application to another cluster",
        "replicate": "copy an application's snapshot to another region (DR)",
        "restore": "restore a snapshot into a cluster",
        "drill": "DR drill: restore a replica into an isolated namespace, verify it, clean up",
    }
    for kind in RequestKind:
        if kind is RequestKind.ROLLBACK:  # `ferry rollback REQUEST`: built from the request it undoes
            _rollback_parser(sub)
            continue
        p = sub.add_parser(
            kind.value,
            help=helps[kind.value],
            epilog=EXAMPLES[kind.value],
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        _request_flags(p, kind.value)
        _common(p)
    for name, text in (
        ("status", "show one request and its steps"),
        ("watch", "live progress of a request"),
        ("cancel", "cancel a request"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("id", metavar="ID")
        if name == "watch":
            p.add_argument("--after", type=int, default=0, help=argparse.SUPPRESS)
        if name == "status":
            p.add_argument(
                "--document",
                choices=DOCUMENTS,
                help="print a step's document instead: the inventory, the restore report, a dry run's "
                "rendered objects, the verification report",
            )
        _common(p)
    _common(sub.add_parser("migrations", help="migration plans: stages, data age, cutover, downtime"))
    p = sub.add_parser("list", help="list requests, newest first")
    p.add_argument("--phase", choices=[ph.value for ph in Phase])
    p.add_argument("--kind", choices=[k.value for k in RequestKind])
    p.add_argument("--label", metavar="K=V", help="only requests with this label")
    p.add_argument("--since", metavar="TIME", help="created at or after (ISO 8601)")
    p.add_argument("--limit", type=int, default=50)
    _common(p)
    p = sub.add_parser("snapshots", help="list snapshots, or describe one")
    p.add_argument("id", nargs="?", metavar="ID")
    p.add_argument("--cluster", help="only this source cluster")
    p.add_argument("-n", "--namespace", help="only this namespace")
    p.add_argument("--app", help="only this application's series")
    p.add_argument("--repository", help="the repository to read (default: the default)")
    p.add_argument("--limit", type=int, help="at most this many, newest first")
    p.add_argument("--delete", action="store_true", help="delete snapshot ID (admin scope)")
    keep = p.add_argument_group("retention (admin scope): keep these, delete the rest, prune their data")
    keep.add_argument("--keep-last", type=int, metavar="N", help="keep the newest N of each application")
    keep.add_argument("--keep-within", metavar="AGE", help="keep those younger than AGE, e.g. 7d, 12h")
    keep.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    _common(p)
    if more is not None:  # the disaster-recovery commands (services.cli.policies, which uses this module)
        more(sub, _common)
    p = sub.add_parser("clusters", help="kubeconfig contexts and their reachability")
    p.add_argument("--kubeconfig", help="with --bus: the kubeconfig to read (default $KUBECONFIG)")
    _common(p)
    p = sub.add_parser("sandbox", help="a local Ferry: NATS, SeaweedFS, two sandbox clusters, the services")
    p.add_argument("action", choices=("up", "down", "status"))
    p.add_argument("--dir", default=".ferry", help="state and data directory (default .ferry)")
    p.add_argument("--seed", action="store_true", help="seed the east cluster with sandbox/apps/shop")
    p.add_argument("--services", metavar="LIST", help="services to start (default: all that exist)")
    p.add_argument("--image", help="the image mover Jobs run (default: Ferry's, run by the sandbox kubelet)")
    p = sub.add_parser("completion", help="print a shell completion script")
    p.add_argument("shell", choices=("bash", "zsh"))
    return parser
