"""Keys and ciphers: chunk ids, blob encryption, and the passphrase that unlocks the master key.

- The *master key* is 64 random bytes made at ``init``: 32 for AES-256-GCM (every blob, pack header,
  index and snapshot) and 32 for BLAKE3 keyed hashing of chunk ids. Keying the ids means the store
  cannot confirm that a guessed file is in the repository.
- The master key never leaves the client in clear: each ``keys/<id>`` object holds it wrapped
  (AES-GCM) by a key derived from a passphrase with scrypt. A key file or an env var (how a Kubernetes
  Secret reaches a Job) is just another source of that passphrase. Rotating the key writes a new key
  object and deletes the old one: no data is rewritten, since data is encrypted with the master key.
- Every encrypted object is ``nonce(12) || ciphertext || tag(16)``; the associated data binds a blob to
  its id and type, so a blob moved or swapped in the store fails authentication instead of restoring
  someone else's bytes.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

import blake3
import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.repository.errors import IntegrityError, WrongKey
from shared.repository.formats import KeyFile
from shared.repository.kdf import derive, wrapping_key

NONCE = 12
TAG = 16
OVERHEAD = NONCE + TAG
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_WRAP_AAD = b"ferry-master-key-v1"
PROBE, PROBE_ABOVE = 32 * 1024, 256 * 1024
_local = threading.local()  # one zstd context per thread: contexts are not thread-safe, and costly to make


@dataclass(frozen=True)
class MasterKey:
    encryption: bytes
    chunk_id: bytes

    @classmethod
    def generate(cls, chunk_id: bytes | None = None) -> MasterKey:
        return cls(secrets.token_bytes(32), chunk_id or secrets.token_bytes(32))

    def raw(self) -> bytes:
        return self.encryption + self.chunk_id


class Cipher:
    """Seal and open blobs and records with one master key. Thread-safe; releases the GIL."""

    def __init__(self, key: MasterKey, compression_level: int = 1) -> None:
        self.key = key
        self._aead = AESGCM(key.encryption)
        self._id_key = key.chunk_id
        self.level = compression_level

    def chunk_id(self, data: bytes | memoryview) -> bytes:
        """The keyed BLAKE3 of ``data``."""
        return blake3.blake3(data, key=self._id_key).digest()

    def seal(self, plaintext: bytes | memoryview, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def seal_into(self, plaintext: bytes | memoryview, aad: bytes, out: memoryview) -> None:
        """Seal into ``out`` (exactly ``len(plaintext) + OVERHEAD`` bytes): no allocation per blob."""
        nonce = os.urandom(NONCE)
        out[:NONCE] = nonce
        self._aead.encrypt_into(nonce, plaintext, aad, out[NONCE:])

    def open(self, sealed: bytes | memoryview, aad: bytes, what: str) -> bytes:
        view = memoryview(sealed)
        if len(view) < OVERHEAD:
            raise IntegrityError(f"{what} is truncated ({len(view)} bytes)")
        try:
            return self._aead.decrypt(view[:NONCE], view[NONCE:], aad)
        except InvalidTag as e:
            raise IntegrityError(f"{what} does not authenticate (corrupt or tampered)") from e

    def compress(self, data: bytes | memoryview) -> tuple[bytes | memoryview, bool]:
        """zstd at the repository's level; keep the raw bytes when compression does not pay.

        Big chunks are probed first: two 32 KiB samples that do not shrink mean media, archives or
        encrypted data, and compressing the whole chunk would burn CPU for nothing.
        """
        compressor = self._compressor()
        if len(data) >= PROBE_ABOVE:
            view = memoryview(data)
            middle = len(view) // 2
            sample = len(compressor.compress(view[:PROBE])) + len(
                compressor.compress(view[middle : middle + PROBE])
            )
            if sample > 2 * PROBE * 0.97:
                return data, False
        packed = compressor.compress(data)
        if len(packed) < len(data) - len(data) // 32:
            return packed, True
        return data, False

    def _compressor(self) -> zstandard.ZstdCompressor:
        compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
        if compressor is None:
            compressor = _local.compressor = zstandard.ZstdCompressor(level=self.level)
        return compressor

    @staticmethod
    def decompress(data: bytes, size: int) -> bytes:
        decompressor: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
        if decompressor is None:
            decompressor = _local.decompressor = zstandard.ZstdDecompressor()
        return decompressor.decompress(data, max_output_size=size)

    def seal_record(self, encoded: bytes, aad: bytes) -> bytes:
        """Compress and encrypt a metadata record (index, snapshot, pack header)."""
        return self.seal(zstandard.ZstdCompressor(level=3).compress(encoded), aad)

    def open_record(self, sealed: bytes, aad: bytes, what: str) -> bytes:
        return zstandard.ZstdDecompressor().decompress(self.open(sealed, aad, what), max_output_size=1 << 31)


def wrap(
    master: MasterKey, passphrase: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P
) -> KeyFile:
    """A new key object: the master key encrypted under scrypt(passphrase)."""
    salt = secrets.token_bytes(32)
    kek = derive(passphrase, salt, n, r, p)
    nonce = os.urandom(NONCE)
    wrapped = nonce + AESGCM(kek).encrypt(nonce, master.raw(), _WRAP_AAD)
    now = datetime.now(UTC).isoformat()
    return KeyFile(now, socket.gethostname(), "scrypt", n, r, p, salt, wrapped)


def unwrap(key_file: KeyFile, passphrase: bytes) -> MasterKey:
    """The master key, or ``WrongKey`` when this passphrase does not open this key object."""
    if key_file.kdf != "scrypt":
        raise WrongKey(f"unsupported key derivation {key_file.kdf!r}")
    kek = wrapping_key(passphrase, key_file.salt, key_file.n, key_file.r, key_file.p)
    try:
        raw = AESGCM(kek).decrypt(key_file.wrapped[:NONCE], key_file.wrapped[NONCE:], _WRAP_AAD)
    except InvalidTag as e:
        raise WrongKey("wrong passphrase or key file") from e
    return MasterKey(raw[:32], raw[32:64])


def blob_aad(blob_id: bytes, blob_type: int) -> bytes:
    return blob_id + bytes([blob_type])
