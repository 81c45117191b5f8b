"""scrypt, the key derivation that turns a passphrase into the key wrapping a repository's master key.

Kept apart from ``crypto`` (which loads cryptography, zstandard and BLAKE3) and light to import, so
that the mover can start scrypt before it loads anything heavy: ``derive_early`` runs it in a thread
(scrypt releases the GIL) while the process goes on importing and connecting to the store.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
from concurrent.futures import Future


def derive(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)


_early: dict[tuple[bytes, int, int, int], tuple[bytes, Future[bytes]]] = {}
_early_lock = threading.Lock()


def derive_early(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> None:
    """Start scrypt for a key object about to be opened, in a thread of its own.

    It runs on another core while this one does other work (importing, reading the key object).
    ``wrapping_key`` with the same passphrase, salt and parameters then waits for the result instead
    of deriving it again; any other key object is derived as usual.
    """
    future: Future[bytes] = Future()

    def run() -> None:
        try:
            future.set_result(derive(passphrase, salt, n, r, p))
        except BaseException as e:  # handed to wrapping_key, which raises it
            future.set_exception(e)

    with _early_lock:
        _early[(salt, n, r, p)] = (passphrase, future)
    threading.Thread(target=run, name="ferry-scrypt", daemon=True).start()


def wrapping_key(passphrase: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    """scrypt(passphrase), from ``derive_early`` when it was started for this very passphrase and key."""
    with _early_lock:
        early = _early.pop((salt, n, r, p), None)
    if early is not None and hmac.compare_digest(early[0], passphrase):
        return early[1].result()
    return derive(passphrase, salt, n, r, p)
