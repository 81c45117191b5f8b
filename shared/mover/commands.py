"""The ``ferry-mover`` subcommands: parse settings, call ``shared.repository``, print the outcome.

Every command returns its exit code (0, or 3 for a partial result); failures are raised and mapped
to exit codes by ``cli.main``. Output for people goes to stderr, the ``--json`` summary to stdout.
Each command imports the part of ``shared.repository`` it runs, so that a process pays at start-up
only for its own command (a backup does not load restore, prune or check).
"""

from __future__ import annotations

import argparse
import gc
import os
import stat
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from shared.mover import cache
from shared.mover.reporting import Reporter, summary
from shared.mover.settings import (
    Env,
    UsageError,
    open_repository_store,
    parse_duration,
    parse_tags,
    password,
    read_secret,
)

if TYPE_CHECKING:
    from shared.repository import Node, Repository

PARTIAL = 3
LISTED = 200  # differences named in verify's JSON summary (sorted by path); all are counted
SHOWN = 50  # differences written to stderr for people


def _say(text: str) -> None:
    print(text, file=sys.stderr)


def _started() -> None:
    """Start-up is over (``cli.main`` turned the collector off for it): freeze what it made, collect again.

    The objects made so far live until exit; from here on the command's own garbage is collected as usual.
    """
    gc.freeze()
    gc.enable()


def _open(args: argparse.Namespace, *, cached: bool = True) -> Repository:
    """Open the repository; ``cached=False`` reads every object from the store itself (``check``).

    Commands call it before importing the rest of what they run: scrypt, started first, runs on
    another core meanwhile.
    """
    secret = password(args)
    cache.start_scrypt(args, secret)  # on another core, while the rest loads (botocore too)
    from shared.repository import Repository

    store = open_repository_store(args)
    repo = Repository.open(cache.cached(args, store) if cached else store, secret)
    cache.remember_key(args, repo)
    _started()
    return repo


def _reporter(args: argparse.Namespace, label: str, volume: str) -> Reporter:
    url = args.nats_url or os.environ.get(Env.NATS_URL, "")
    request_id = args.request_id or os.environ.get(Env.REQUEST_ID, "")
    nats = None
    if url and request_id:
        from shared.mover.publishing import NatsProgress

        nats = NatsProgress(url, request_id, volume, args.step or None)
    return Reporter(label, bar=sys.stderr.isatty() and not args.quiet, nats=nats)


def _finish(args: argparse.Namespace, doc: dict[str, Any], human: str, code: int = 0) -> int:
    _say(human)
    if args.json:
        summary({**doc, "command": args.command, "exit_code": code})
    return code


def init(args: argparse.Namespace) -> int:
    from shared.repository import Repository

    store = open_repository_store(args)
    secret = password(args)
    like = Repository.open(open_repository_store(args, args.like), secret) if args.like else None
    _started()
    repo = Repository.init(store, secret, like=like, pack_size=args.pack_size_mib * 1024 * 1024)
    cache.remember_key(args, repo)
    return _finish(
        args,
        {"repository": store.location, "id": repo.config.id},
        f"created repository {repo.config.id[:8]} at {store.location}",
    )


def backup(args: argparse.Namespace) -> int:
    repo = _open(args)
    from shared.repository import backup as run_backup

    name = args.name or os.path.basename(os.path.abspath(args.path)) or "root"
    reporter = _reporter(args, f"backup {name}", name)
    parent = None if args.parent == "none" else (args.parent or "auto")
    limit = args.limit_upload * 1024 if args.limit_upload else None
    try:
        result = run_backup(
            repo,
            args.path,
            name=name,
            group=args.group,
            tags=parse_tags(args.tag),
            parent=parent,
            progress=reporter if reporter.active else None,
            threads=args.threads,
            limit_upload=limit,
        )
    finally:
        reporter.close()
    s = result.snapshot.stats
    doc = {
        "snapshot_id": result.snapshot_id,
        "group": result.snapshot.group,
        "name": name,
        "files": s.files,
        "dirs": s.dirs,
        "bytes": s.bytes,
        "bytes_read": s.bytes_read,
        "new_bytes": s.new_bytes,
        "stored_bytes": s.stored_bytes,
        "duration": round(s.duration, 3),
        "parent": result.snapshot.parent,
        "warnings": s.warnings,
    }
    rate = s.bytes / s.duration / 1e6 if s.duration else 0.0
    human = (
        f"snapshot {result.snapshot_id[:8]} saved: {s.files} files, {s.bytes / 1e6:.1f} MB "
        f"({s.new_bytes / 1e6:.1f} MB new, {s.stored_bytes / 1e6:.1f} MB stored) in {s.duration:.1f}s, {rate:.0f} MB/s"
    )
    for warning in s.warnings:
        human += f"\nwarning: {warning}"
    return _finish(args, doc, human, PARTIAL if s.warnings else 0)


def restore(args: argparse.Namespace) -> int:
    repo = _open(args)
    from shared.repository import restore as run_restore

    reporter = _reporter(args, "restore", args.name or os.path.basename(os.path.abspath(args.target)))
    started = time.monotonic()
    try:
        result = run_restore(
            repo,
            args.snapshot,
            args.target,
            allow_partial=args.allow_partial,
            progress=reporter if reporter.active else None,
            delta=args.delta,
            path=args.only or "",
        )
    finally:
        reporter.close()
    duration = time.monotonic() - started
    doc: dict[str, Any] = {
        "snapshot_id": result.snapshot_id,
        "files": result.files,
        "bytes": result.bytes,
        "duration": round(duration, 3),
        "damaged": result.damaged,
        "warnings": result.warnings,
    }
    human = f"restored snapshot {result.snapshot_id[:8]}: {result.files} files, {result.bytes / 1e6:.1f} MB in {duration:.1f}s"
    if args.delta:
        doc |= {
            "delta": True,
            "files_written": result.files_written,
            "bytes_written": result.bytes_written,
            "files_skipped": result.files_skipped,
            "bytes_skipped": result.bytes_skipped,
            "removed": result.removed,
        }
        human += (
            f"; {result.files_written} files written ({result.bytes_written / 1e6:.1f} MB), "
            f"{result.files_skipped} already right, {result.removed} entries removed"
        )
    for path, reason in sorted(result.damaged.items()):
        human += f"\ndamaged: {path}: {reason}"
    for warning in result.warnings:
        human += f"\nwarning: {warning}"
    return _finish(args, doc, human, PARTIAL if result.damaged else 0)


def verify(args: argparse.Namespace) -> int:
    """Compare a directory with a snapshot, reading every byte; read-only: the repository gets no lock."""
    repo = _open(args)
    from shared.repository import compare

    reporter = _reporter(args, "verify", args.name or os.path.basename(os.path.abspath(args.path)))
    started = time.monotonic()
    try:
        result = compare(
            repo,
            args.snapshot,
            args.path,
            threads=args.threads,
            progress=reporter if reporter.active else None,
            path=args.only or "",
        )
    finally:
        reporter.close()
    duration = time.monotonic() - started
    listed = sorted(result.differences)[:LISTED]
    doc = {
        "snapshot_id": result.snapshot_id,
        "files": result.files,
        "bytes": result.bytes,
        "bytes_read": result.bytes_read,
        "different": len(result.differences),
        "differences": {path: result.differences[path] for path in listed},
        "duration": round(duration, 3),
    }
    verdict = "equal" if result.equal else f"{len(result.differences)} difference(s)"
    human = (
        f"verified {args.path} against snapshot {result.snapshot_id[:8]}: {result.files} files, "
        f"{result.bytes_read / 1e6:.1f} MB read and hashed in {duration:.1f}s: {verdict}"
    )
    for path in listed[:SHOWN]:
        human += f"\ndiffers: {path}: {result.differences[path]}"
    if len(result.differences) > SHOWN:
        human += f"\n... and {len(result.differences) - SHOWN} more"
    return _finish(args, doc, human, 0 if result.equal or args.report else PARTIAL)


def _mode(node_type: str, mode: int) -> str:
    kinds = {
        "dir": stat.S_IFDIR,
        "symlink": stat.S_IFLNK,
        "fifo": stat.S_IFIFO,
        "chardev": stat.S_IFCHR,
        "blockdev": stat.S_IFBLK,
    }
    return stat.filemode(kinds.get(node_type, stat.S_IFREG) | mode)


def ls(args: argparse.Namespace) -> int:
    from shared.repository.walking import walk

    repo = _open(args)
    if args.snapshot is None:
        rows = []
        for snapshot_id, record in repo.snapshots(group=args.group, name=args.name):
            rows.append(
                {
                    "id": snapshot_id,
                    "time": record.time,
                    "kind": record.kind,
                    "name": record.name,
                    "group": record.group,
                    "size": record.size,
                    "tags": record.tags,
                    "hostname": record.hostname,
                }
            )
            tags = ",".join(f"{k}={v}" for k, v in sorted(record.tags.items()))
            print(
                f"{snapshot_id[:8]}  {record.time[:19]}  {record.kind:4}  {record.name:20}  {record.group[:12]:12}  {record.size:>14}  {tags}"
            )
        if args.json:
            summary({"command": "ls", "snapshots": rows, "exit_code": 0})
        return 0
    snapshot_id, record = repo.load_snapshot(args.snapshot)
    if record.kind == "blob":
        print(f"<blob {record.name}>  {record.size}")
        return 0
    for path, node in walk(repo, record.root):
        when = datetime.fromtimestamp(node.mtime_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
        suffix = f" -> {node.target}" if node.target else ""
        print(
            f"{_mode(node.type, node.mode)} {node.uid:>5} {node.gid:>5} {node.size:>12} {when}  {path}{suffix}"
        )
    return 0


def _compared(node: Node) -> tuple[object, ...]:
    """What ``diff`` compares: content, type, mode, owner, link target, extended attributes."""
    return (
        node.type,
        node.size,
        tuple(node.content),
        node.mode,
        node.uid,
        node.gid,
        node.target,
        sorted(node.xattrs.items()),
    )


def diff(args: argparse.Namespace) -> int:
    from shared.repository.walking import walk

    repo = _open(args)
    trees = []
    for ref in (args.first, args.second):
        _, record = repo.load_snapshot(ref, kind="tree")
        trees.append({path: _compared(node) for path, node in walk(repo, record.root)})
    old, new = trees
    changes = {
        "added": sorted(new.keys() - old.keys()),
        "removed": sorted(old.keys() - new.keys()),
        "modified": sorted(p for p in old.keys() & new.keys() if old[p] != new[p]),
    }
    for sign, key in (("+", "added"), ("-", "removed"), ("M", "modified")):
        for path in changes[key]:
            print(f"{sign} {path}")
    counts = {key: len(paths) for key, paths in changes.items()}
    return _finish(
        args,
        {**counts, "changes": changes},
        f"{counts['added']} added, {counts['removed']} removed, {counts['modified']} modified",
    )


def check(args: argparse.Namespace) -> int:
    from shared.repository import check as run_check

    repo = _open(args, cached=False)  # what the store holds, not the cache's copies
    report = run_check(repo, read_data=args.read_data)
    for warning in report.warnings:
        _say(f"warning: {warning}")
    for error in report.errors:
        _say(f"error: {error}")
    doc = {
        "ok": report.ok,
        "errors": report.errors,
        "warnings": report.warnings,
        "packs": report.packs,
        "blobs": report.blobs,
        "snapshots": report.snapshots,
        "bytes_read": report.bytes_read,
    }
    verdict = "no errors were found" if report.ok else f"{len(report.errors)} error(s) found"
    return _finish(
        args,
        doc,
        f"checked {report.packs} packs, {report.snapshots} snapshots: {verdict}",
        0 if report.ok else 15,
    )


def forget(args: argparse.Namespace) -> int:
    from shared.repository import Policy
    from shared.repository import forget as run_forget
    from shared.repository import prune as run_prune

    if args.keep_last is None and args.keep_within is None:
        raise UsageError("forget needs --keep-last and/or --keep-within")
    within = timedelta(seconds=parse_duration(args.keep_within)) if args.keep_within else None
    repo = _open(args)
    result = run_forget(repo, Policy(keep_last=args.keep_last, keep_within=within), dry_run=args.dry_run)
    doc: dict[str, Any] = {"kept": result.kept, "removed": result.removed, "dry_run": args.dry_run}
    human = f"{'would remove' if args.dry_run else 'removed'} {len(result.removed)} snapshot(s), kept {len(result.kept)}"
    if args.prune and not args.dry_run:
        pruned = run_prune(repo)
        doc["prune"] = pruned.__dict__
        human += f"; pruned {pruned.packs_deleted} pack(s), rewrote {pruned.packs_rewritten}, freed {pruned.bytes_freed / 1e6:.1f} MB"
    return _finish(args, doc, human)


def prune(args: argparse.Namespace) -> int:
    from shared.repository import prune as run_prune

    repo = _open(args)
    result = run_prune(repo, dry_run=args.dry_run)
    human = (
        f"{'would delete' if args.dry_run else 'deleted'} {result.packs_deleted} pack(s), rewrote {result.packs_rewritten}, "
        f"{result.bytes_freed / 1e6:.1f} MB freed"
    )
    for missing in result.missing:
        human += f"\nwarning: {missing}"
    return _finish(args, {**result.__dict__, "dry_run": args.dry_run}, human)


def unlock(args: argparse.Namespace) -> int:
    from shared.repository.locking import remove_stale
    from shared.repository.recovering import index_orphan_packs

    repo = _open(args)
    with repo.lock(purpose="unlock"):  # a stale lock is a dead backup's: index the packs it left first
        index_orphan_packs(repo)
    removed = remove_stale(repo.store)
    return _finish(args, {"removed": removed}, f"removed {removed} stale lock(s)")


def key(args: argparse.Namespace) -> int:
    repo = _open(args)
    if args.action == "list":
        keys = repo.keys()
        for key_id in keys:
            print(f"{'*' if key_id == repo.key_id else ' '} {key_id}")
        return _finish(args, {"keys": keys, "current": repo.key_id}, f"{len(keys)} key(s)")
    new = read_secret(
        args.new_password_file, Env.NEW_PASSWORD_FILE, Env.NEW_PASSWORD, "new repository password"
    )
    old_id = repo.key_id
    new_id = repo.rotate_key(new)
    cache.remember_key(args, repo)
    return _finish(
        args,
        {"old_key": old_id, "new_key": new_id},
        f"key {old_id[:8]} replaced by {new_id[:8]}; no data was rewritten",
    )
