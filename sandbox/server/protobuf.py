"""Request bodies in ``application/vnd.kubernetes.protobuf``, for the kinds kubectl's generators send.

``kubectl create namespace``, ``create secret generic``, ``create configmap`` and ``create
serviceaccount`` build the object in Go and POST it as protobuf (client-go prefers it for built-in
types and does not fall back to JSON on a 415), so a server that only reads JSON refuses them. The
body is the ``k8s\\x00`` magic followed by a ``runtime.Unknown`` (typeMeta, raw) whose ``raw`` is the
object's own message. The field numbers below are those of k8s.io/api's ``generated.proto`` for these
kinds and ObjectMeta; other kinds answer 415 as before. Unknown fields are skipped, as protobuf does.
"""

from __future__ import annotations

import base64
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

# field number -> (json name, kind): "s" string, "b" bytes, "i" varint, "?" bool, "[s]" repeated
# string, "{ss}" map string->string, "{sb}" map string->bytes (base64 in JSON), or a nested schema.
Schema = dict[int, tuple[str, Any]]
_TYPE_META: Schema = {1: ("apiVersion", "s"), 2: ("kind", "s")}
_UNKNOWN: Schema = {
    1: ("typeMeta", _TYPE_META),
    2: ("raw", "b"),
    3: ("contentEncoding", "s"),
    4: ("contentType", "s"),
}
_OWNER: Schema = {
    1: ("kind", "s"),
    3: ("name", "s"),
    4: ("uid", "s"),
    5: ("apiVersion", "s"),
    6: ("controller", "?"),
    7: ("blockOwnerDeletion", "?"),
}
_META: Schema = {
    1: ("name", "s"),
    2: ("generateName", "s"),
    3: ("namespace", "s"),
    6: ("resourceVersion", "s"),
    11: ("labels", "{ss}"),
    12: ("annotations", "{ss}"),
    13: ("ownerReferences", [_OWNER]),
    14: ("finalizers", "[s]"),
}
_REF: Schema = {1: ("kind", "s"), 2: ("namespace", "s"), 3: ("name", "s")}
KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", _META), 2: ("spec", {1: ("finalizers", "[s]")})},
    "Secret": {
        1: ("metadata", _META),
        2: ("data", "{sb}"),
        3: ("type", "s"),
        4: ("stringData", "{ss}"),
        5: ("immutable", "?"),
    },
    "ConfigMap": {
        1: ("metadata", _META),
        2: ("data", "{ss}"),
        3: ("binaryData", "{sb}"),
        4: ("immutable", "?"),
    },
    "ServiceAccount": {
        1: ("metadata", _META),
        2: ("secrets", [_REF]),
        3: ("imagePullSecrets", [{1: ("name", "s")}]),
        4: ("automountServiceAccountToken", "?"),
    },
}


class Unsupported(ValueError):
    """A protobuf body of a kind (or shape) this server cannot read."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise Unsupported("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, varint or length-delimited bytes) in order; fixed-width fields are skipped."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
            out.append((number, value))
        elif wire == 2:
            length, pos = _varint(data, pos)
            out.append((number, data[pos : pos + length]))
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise Unsupported(f"wire type {wire}")
    return out


def _decode(data: bytes, schema: Schema) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for number, value in _fields(data):
        if number not in schema:
            continue
        name, kind = schema[number]
        if isinstance(kind, dict):
            obj[name] = _decode(_bytes(value), kind)
        elif isinstance(kind, list):
            obj.setdefault(name, []).append(_decode(_bytes(value), kind[0]))
        elif kind == "s":
            obj[name] = _bytes(value).decode()
        elif kind == "b":
            obj[name] = _bytes(value)
        elif kind in ("i", "?"):
            obj[name] = bool(value) if kind == "?" else value
        elif kind == "[s]":
            obj.setdefault(name, []).append(_bytes(value).decode())
        else:  # a map entry: key 1, value 2
            entry = dict(_fields(_bytes(value)))
            key = _bytes(entry.get(1, b"")).decode()
            raw = _bytes(entry.get(2, b""))
            obj.setdefault(name, {})[key] = base64.b64encode(raw).decode() if kind == "{sb}" else raw.decode()
    return obj


def _bytes(value: int | bytes) -> bytes:
    if isinstance(value, int):
        raise Unsupported("a number where bytes were expected")
    return value


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body; ``Unsupported`` for kinds without a schema here."""
    if not body.startswith(MAGIC):
        raise Unsupported("missing the k8s protobuf envelope")
    unknown = _decode(body[len(MAGIC) :], _UNKNOWN)
    meta = unknown.get("typeMeta") or {}
    kind = meta.get("kind", "")
    if kind not in KINDS:
        raise Unsupported(f"no protobuf schema for kind {kind!r}")
    obj = _decode(unknown.get("raw", b""), KINDS[kind])
    return {"apiVersion": meta.get("apiVersion", "v1"), "kind": kind, **obj}
