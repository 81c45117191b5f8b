"""The mover's local cache: what it keeps between runs, per repository, so the next run starts sooner.

``--cache-dir`` or ``FERRY_CACHE_DIR`` (``off`` disables it), by default ``$XDG_CACHE_HOME/ferry``
or ``~/.cache/ferry``. Each repository has a directory under ``repos/``, named by a hash of its
location, holding:

- ``key.json``: the salt and scrypt parameters of the key object that opened the repository last
  time. Opening costs one scrypt (~0.15 s of a core) and, on S3, loading botocore and building a
  client (~0.25 s, holding the GIL). scrypt needs that salt, which is read from the store, so
  unaided the two run one after the other. With the hint, scrypt starts on another core at once,
  while botocore loads (``kdf.derive_early``). The salt and parameters are public: the
  repository stores them beside the wrapped key, and they give nothing away without the password.
  When the key was rotated since, the hint matches no key object and scrypt runs as usual.
- ``index/`` and ``snapshots/``: copies of the repository's index files and snapshot records
  (``shared.store.cached``). They are the store's encrypted bytes; nothing is decrypted to disk.

Nothing secret is written. A cache that cannot be read or written (a read-only file system in a
Job) is skipped without a word: it only saves time.
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
from shared.store import StoreError

if TYPE_CHECKING:
    from shared.repository import Repository
    from shared.store import LocalStore, ObjectStore

log = logging.getLogger("ferry.mover")
KEY_HINT = "key.json"


def cache_dir(args: argparse.Namespace) -> Path | None:
    configured = args.cache_dir or os.environ.get(Env.CACHE_DIR, "")
    if configured == "off":
        return None
    if configured:
        return Path(configured)
    if base := os.environ.get("XDG_CACHE_HOME"):
        return Path(base) / "ferry"
    home = os.path.expanduser("~")
    return None if home == "~" else Path(home) / ".cache" / "ferry"  # no home (a random uid): no cache


def repository_dir(args: argparse.Namespace) -> Path | None:
    """This repository's directory in the cache, or None when the cache is off."""
    directory = cache_dir(args)
    url = repository_url(args)
    if directory is None or not url:
        return None
    where = url if url.startswith("s3://") else os.path.abspath(url)
    name = blake3.blake3(f"{where}\n{s3_endpoint(args) or ''}".encode()).hexdigest()[:32]
    return directory / "repos" / name


def cached(args: argparse.Namespace, store: ObjectStore) -> ObjectStore:
    """``store`` with its index files and snapshot records also read from and kept in the cache."""
    from shared.store.cached import CachedStore

    directory = repository_dir(args)
    return store if directory is None else CachedStore(store, directory)


def _hints(args: argparse.Namespace) -> LocalStore | None:
    from shared.store import LocalStore

    directory = repository_dir(args)
    return None if directory is None else LocalStore(directory, fsync=False)


def start_scrypt(args: argparse.Namespace, passphrase: bytes) -> None:
    """Start scrypt for the key object that opened this repository last time, if one is remembered."""
    from shared.repository import kdf

    hints = _hints(args)
    if hints is None:
        return
    try:
        hint = json.loads(hints.get(KEY_HINT))
        salt, n, r, p = bytes.fromhex(hint["salt"]), int(hint["n"]), int(hint["r"]), int(hint["p"])
    except (StoreError, ValueError, KeyError, TypeError):
        return
    kdf.derive_early(passphrase, salt, n, r, p)


def remember_key(args: argparse.Namespace, repo: Repository) -> None:
    """Write down the salt and parameters of the key object that opened ``repo`` (when they changed)."""
    hints = _hints(args)
    key_file = repo.key_file
    if hints is None or key_file is None:
        return
    hint = json.dumps(
        {"salt": key_file.salt.hex(), "n": key_file.n, "r": key_file.r, "p": key_file.p}
    ).encode()
    try:
        if not hints.exists(KEY_HINT) or hints.get(KEY_HINT) != hint:
            hints.put(KEY_HINT, hint)
    except StoreError as e:
        log.debug("cannot write the key hint in %s: %s", hints.location, e)
