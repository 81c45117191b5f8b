"""``ferry-mover``: the command a snapshot or restore Job runs next to a volume.

Each subcommand is a thin shell over ``shared.repository``; what this module owns is the contract
with whoever runs it — a person at a terminal (progress bar, readable errors) or a Kubernetes Job
controller and a Ferry service (exit codes that say whether to retry, a final ``--json`` line,
progress events over NATS). Exit codes are listed in ``EXIT_CODES`` and in README.md.
"""

from __future__ import annotations

import argparse
import ctypes
import faulthandler
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

from shared.mover import commands
from shared.mover.reporting import summary
from shared.mover.settings import Env, UsageError, add_repository_options
from shared.repository import (
    DamagedFiles,
    IntegrityError,
    RepositoryError,
    RepositoryExists,
    RepositoryLocked,
    RepositoryNotFound,
    SnapshotNotFound,
    WrongKey,
)
from shared.store import AccessDenied, ObjectNotFound, StoreError

log = logging.getLogger("ferry.mover")

OK, FAILED, USAGE, PARTIAL = 0, 1, 2, 3
NO_REPOSITORY, LOCKED, WRONG_KEY, TEMPORARY, STORE_REFUSED, DAMAGED, NO_SNAPSHOT = 10, 11, 12, 13, 14, 15, 16
INTERRUPTED = 130
EXIT_CODES = {
    OK: "success",
    FAILED: "unexpected failure (a bug, or an error not classified below)",
    USAGE: "usage error: bad flags, missing repository/password settings, repository already exists",
    PARTIAL: "done, but partially: some files unreadable (backup) or damaged (restore --allow-partial); "
    "verify: the directory differs from the snapshot",
    NO_REPOSITORY: "no repository at this location (run init)",
    LOCKED: "repository locked by another process (temporary: retry later)",
    WRONG_KEY: "wrong password or key file (permanent)",
    TEMPORARY: "object store unreachable or throttling after retries (temporary: retry later)",
    STORE_REFUSED: "object store refused the request: credentials, permissions, missing bucket (permanent)",
    DAMAGED: "integrity failure: check found errors, or restore found damaged files",
    NO_SNAPSHOT: "no such snapshot",
    INTERRUPTED: "interrupted (SIGINT/SIGTERM); the repository stays consistent, a rerun resumes",
}


def exit_code_for(error: BaseException) -> int:
    table: list[tuple[type[BaseException], int]] = [
        (UsageError, USAGE),
        (RepositoryExists, USAGE),
        (RepositoryNotFound, NO_REPOSITORY),
        (RepositoryLocked, LOCKED),
        (WrongKey, WRONG_KEY),
        (DamagedFiles, DAMAGED),
        (IntegrityError, DAMAGED),
        (SnapshotNotFound, NO_SNAPSHOT),
        (AccessDenied, STORE_REFUSED),
        (ObjectNotFound, STORE_REFUSED),
        (KeyboardInterrupt, INTERRUPTED),
        (NotADirectoryError, USAGE),
        (FileNotFoundError, USAGE),
    ]
    for kind, code in table:
        if isinstance(error, kind):
            return code
    if isinstance(error, StoreError):
        return TEMPORARY if error.temporary else STORE_REFUSED
    if isinstance(error, RepositoryError):
        return TEMPORARY if error.temporary else FAILED
    return FAILED


def tune_malloc() -> None:
    """Keep big buffers on the heap (no mmap/munmap and page faults per 1-16 MiB chunk or pack)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 1024 * 1024)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 1024 * 1024)  # M_TRIM_THRESHOLD
        libc.mallopt(-8, 4)  # M_ARENA_MAX: threads share a few arenas instead of one each
    except (OSError, AttributeError):
        pass


class _StepNames:
    """The choices of ``--step``, read from Ferry's contracts only when ``--step`` or ``--help`` is used.

    The contracts package costs ~0.04 s to import, for one enum that a backup without ``--step`` never reads.
    """

    def _values(self) -> list[str]:
        from shared.contracts.steps import StepName

        return [s.value for s in StepName]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values())

    def __contains__(self, value: object) -> bool:
        return value in self._values()


Run = Callable[[argparse.Namespace], int]
Command = Callable[[str, Run, str], argparse.ArgumentParser]  # adds one subcommand


def parser() -> argparse.ArgumentParser:
    common = _common_options()
    top = argparse.ArgumentParser(
        prog="ferry-mover",
        description="Back up and restore volumes to a Ferry repository.",
        epilog="exit codes: " + "; ".join(f"{c} {d}" for c, d in EXIT_CODES.items()),
    )
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str, run: Run, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_text, description=help_text)
        p.set_defaults(run=run)
        return p

    _add_data_commands(command)
    _add_inspecting_commands(command)
    _add_maintenance_commands(command)
    return top


def _common_options() -> argparse.ArgumentParser:
    """The repository and output options every subcommand takes."""
    common = argparse.ArgumentParser(add_help=False)
    add_repository_options(common)
    out = common.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print a JSON summary as the last line on stdout")
    out.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    out.add_argument("--verbose", "-v", action="store_true", help="log debug details")
    out.add_argument("--nats-url", help=f"publish progress events to this NATS (env {Env.NATS_URL})")
    out.add_argument("--request-id", help=f"the Ferry request these events belong to (env {Env.REQUEST_ID})")
    step = out.add_argument("--step", help="the request step running this mover")
    step.choices = _StepNames()  # set afterwards: add_argument lists the choices at once
    out.add_argument("--threads", type=int, default=None, help="CPU worker threads (default: usable cores)")
    return common


def _add_only_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--path",
        dest="only",
        metavar="REL",
        help="only this file or directory of the snapshot (relative to its root, e.g. base/16); "
        "nothing beside it is touched",
    )


def _add_data_commands(command: Command) -> None:
    """init, backup, restore, verify: what mover Jobs run."""
    p = command("init", commands.init, "create a repository (encrypted with the password)")
    p.add_argument("--pack-size-mib", type=int, default=16, help="target pack size (default 16 MiB)")
    p.add_argument(
        "--like",
        metavar="REPO",
        help="share this repository's chunk-id key (same password), for cheap copies",
    )
    p = command("backup", commands.backup, "back up a directory as a new snapshot")
    p.add_argument("path")
    p.add_argument("--name", help="snapshot name, e.g. the volume name (default: directory name)")
    p.add_argument("--group", help="Ferry snapshot id grouping the volumes and manifests of one application")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help="a tag (repeatable), e.g. app=shop")
    p.add_argument("--parent", help="parent snapshot id, or 'none' (default: latest with the same name)")
    p.add_argument("--limit-upload", type=int, metavar="KIB_S", help="upload rate limit in KiB/s")
    p = command("restore", commands.restore, "restore a snapshot into a directory")
    p.add_argument("snapshot", help="snapshot id, unique prefix, or 'latest'")
    p.add_argument("target")
    p.add_argument(
        "--name", help="the volume's name in progress events (default: the target directory's name)"
    )
    p.add_argument(
        "--allow-partial", action="store_true", help="exit 3 instead of 15 when some files are damaged"
    )
    p.add_argument(
        "--delta",
        action="store_true",
        help="TARGET may hold an older state: write only the chunks that differ, remove what the snapshot lacks",
    )
    _add_only_option(p)
    p = command(
        "verify", commands.verify, "compare a directory with a snapshot, every byte (read-only, no lock)"
    )
    p.add_argument("snapshot", help="snapshot id, unique prefix, or 'latest'")
    p.add_argument("path")
    p.add_argument("--name", help="the volume's name in progress events (default: the directory's name)")
    p.add_argument(
        "--report",
        action="store_true",
        help="exit 0 when the comparison ran, equal or not (the JSON summary says what differs): "
        "the verify step's mover Jobs use it, so that a difference is reported, not retried",
    )
    _add_only_option(p)


def _add_inspecting_commands(command: Command) -> None:
    """ls, diff, check: read-only looks at the repository."""
    p = command("ls", commands.ls, "list snapshots, or the files of one snapshot")
    p.add_argument("snapshot", nargs="?")
    p.add_argument("--group")
    p.add_argument("--name")
    p = command("diff", commands.diff, "show what changed between two snapshots")
    p.add_argument("first")
    p.add_argument("second")
    p = command("check", commands.check, "verify the repository's structure (and with --read-data, all data)")
    p.add_argument("--read-data", action="store_true")


def _add_maintenance_commands(command: Command) -> None:
    """forget, prune, unlock, key: keeping the repository in shape."""
    p = command(
        "forget", commands.forget, "delete snapshots by policy (whole Ferry snapshots, per app/series)"
    )
    p.add_argument("--keep-last", type=int)
    p.add_argument("--keep-within", metavar="DURATION", help="e.g. 7d, 12h")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--prune", action="store_true", help="prune afterwards")
    p = command("prune", commands.prune, "remove data no snapshot needs (exclusive lock)")
    p.add_argument("--dry-run", action="store_true")
    command("unlock", commands.unlock, "remove stale locks (holders dead or silent for 5 minutes)")
    p = command("key", commands.key, "key management: 'key rotate' re-wraps the data key with a new password")
    p.add_argument("action", choices=["rotate", "list"])
    p.add_argument(
        "--new-password-file",
        help=f"file with the new password (env {Env.NEW_PASSWORD_FILE} or {Env.NEW_PASSWORD})",
    )


def main(argv: list[str] | None = None) -> int:
    try:  # a crash in native code then leaves every thread's stack in the Job's log
        faulthandler.enable()
    except (AttributeError, ValueError, OSError, RuntimeError):  # stderr is not a file, or None
        pass
    tune_malloc()
    # Start-up allocates objects that all live until exit (modules, botocore's service model): the
    # collector only rescans them, ~0.2 s of a 1 s incremental backup. It stays off until the
    # repository is open (``commands._started``), and what is alive at the end is frozen, so that the
    # interpreter's last collection at exit does not scan it once more (~0.15 s).
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    gc.disable()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    def interrupted(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    try:
        code = int(args.run(args))
    except BaseException as e:  # noqa: BLE001 - every failure becomes an exit code and a message
        if isinstance(e, SystemExit):
            raise
        code = exit_code_for(e)
        message = str(e) or type(e).__name__
        if code == FAILED:
            log.exception("ferry-mover %s failed", args.command)
        print(f"ferry-mover {args.command}: {message}", file=sys.stderr)
        if args.json:
            doc: dict[str, Any] = {
                "command": args.command,
                "error": message,
                "exit_code": code,
                "meaning": EXIT_CODES[code],
            }
            if isinstance(e, DamagedFiles):
                doc["damaged"] = e.damaged
            doc["duration"] = round(time.monotonic() - started, 3)
            summary(doc)
    finally:
        gc.freeze()
        gc.enable()
    return code


if __name__ == "__main__":
    sys.exit(main())
