"""Remembering how the repository's key is derived, so that the next run starts scrypt at once.

Opening a repository costs one scrypt (~0.15 s of a core) and, on S3, loading botocore and building
a client (~0.25 s, holding the GIL). scrypt needs the salt of the repository's key object, which is
read from the store, so unaided the two run one after the other. The mover remembers that salt and
the scrypt parameters in its cache directory, and the next run starts scrypt on another core right
away while botocore loads (``crypto.derive_early``). The salt and parameters are public: they are
stored beside the wrapped key in the repository, and give nothing away without the password. Nothing
secret is written. When the key was rotated since, the remembered salt no longer matches any key
object and scrypt runs as usual.

The cache directory is ``--cache-dir`` or ``FERRY_CACHE_DIR`` (``off`` disables it), by default
``$XDG_CACHE_HOME/ferry`` or ``~/.cache/ferry``. A cache that cannot be read or written (a read-only
file system in a Job) is skipped without a word: it only saves time.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import blake3

from shared.mover.settings import Env, repository_url, s3_endpoint

if TYPE_CHECKING:
    from shared.repository import Repository

log = logging.getLogger("ferry.mover")


def cache_dir(args: argparse.Namespace) -> Path | None:
    configured = args.cache_dir or os.environ.get(Env.CACHE_DIR, "")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ferry"


def _hint_file(args: argparse.Namespace, url: str | None = None) -> Path | None:
    directory = cache_dir(args)
    url = url or repository_url(args)
    if directory is None or not url:
        return None
    where = url if url.startswith("s3://") else os.path.abspath(url)
    name = blake3.blake3(f"{where}\n{s3_endpoint(args) or ''}".encode()).hexdigest()[:32]
    return directory / "keys" / f"{name}.json"


def start(args: argparse.Namespace, passphrase: bytes, url: str | None = None) -> None:
    """Start scrypt for the key object that opened this repository last time, if one is remembered."""
    from shared.repository import crypto

    path = _hint_file(args, url)
    if path is None:
        return
    try:
        hint = json.loads(path.read_text())
        salt, n, r, p = bytes.fromhex(hint["salt"]), int(hint["n"]), int(hint["r"]), int(hint["p"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    crypto.derive_early(passphrase, salt, n, r, p)


def remember(args: argparse.Namespace, repo: Repository, url: str | None = None) -> None:
    """Write down the salt and parameters of the key object that opened ``repo`` (when they changed)."""
    path = _hint_file(args, url)
    key_file = repo.key_file
    if path is None or key_file is None:
        return
    text = json.dumps({"salt": key_file.salt.hex(), "n": key_file.n, "r": key_file.r, "p": key_file.p})
    try:
        if path.exists() and path.read_text() == text:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(text)
        partial.replace(path)
    except OSError as e:
        log.debug("cannot write the key hint %s: %s", path, e)
