"""Request bodies in ``application/vnd.kubernetes.protobuf``: any built-in kind, read into its JSON form.

client-go's typed clients send built-in objects as protobuf and do not fall back to JSON on a 415, so
``kubectl create deployment``, ``create job``, ``create role``, ``create quota``, ``auth can-i`` and
the like fail against a server that reads only JSON. The body is the ``k8s\\x00`` magic followed by a
``runtime.Unknown`` (typeMeta, raw) whose ``raw`` is the object's own message: the message named like
the kind in the package of its apiVersion.

What each field number holds comes from ``proto_fields.json``, derived from the API's own
``generated.proto`` and Go struct tags by ``sandbox/tools/proto_fields.py`` (never written by hand).
The decoder turns a message into exactly what Go's JSON encoding of the same object gives, so a
protobuf body and a JSON one reach the store alike: JSON names (``$ref``, ``apiGroup``), inline
structs flattened into their parent, an unset non-pointer scalar (which Go's protobuf writes anyway)
left out, bytes as base64, and the types whose JSON Go writes by hand turned into their JSON scalars
(Time, MicroTime, Duration, IntOrString, Quantity, RawExtension, FieldsV1, a CRD schema's JSON and
its ``...Or...`` unions). Unknown field numbers are skipped, as protobuf does; a kind missing from
the table raises ``Unsupported`` (the handler answers 415).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
RUNTIME = "k8s.io.apimachinery.pkg.runtime"
CRD = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1"
ZERO_TIME = -62135596800  # Go's zero time.Time (0001-01-01T00:00:00Z) in Unix seconds: JSON null

Field = tuple[str, str, str]  # json name, type (a scalar or a message's full name), flags


class Unsupported(ValueError):
    """A protobuf body of a kind (or shape) this server cannot read."""


class Table:
    """``proto_fields.json``: apiVersion -> proto package, and every message's fields by number."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.packages: dict[str, str] = data["packages"]
        self.lists: frozenset[str] = frozenset(data["lists"])
        self.messages: dict[str, dict[int, Field]] = {}
        for name, fields in data["messages"].items():
            package = name.rpartition(".")[0]
            self.messages[name] = {
                int(number): (spec[0], _qualify(spec[1], package), spec[2] if len(spec) > 2 else "")
                for number, spec in fields.items()
            }

    def kind(self, api_version: str, kind: str) -> str | None:
        """The message of a kind, if its group-version and the kind are in the table."""
        package = self.packages.get(api_version)
        name = f"{package}.{kind}"
        return name if package is not None and name in self.messages else None


def _qualify(type_: str, package: str) -> str:
    return type_ if type_ in _SCALARS or "." in type_ else f"{package}.{type_}"


@cache
def table() -> Table:
    text = (resources.files("sandbox.server") / "proto_fields.json").read_text()
    return Table(json.loads(text))


# -- the wire format -------------------------------------------------------------------------------

WireValue = int | bytes  # a varint or fixed-width number, or length-delimited bytes


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


def _fields(data: bytes) -> list[tuple[int, int, WireValue]]:
    """(field number, wire type, value) in order; fixed-width values are their little-endian bytes."""
    out: list[tuple[int, int, WireValue]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: WireValue
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 2, 5):
            if wire == 2:
                length, pos = _varint(data, pos)
            else:
                length = 8 if wire == 1 else 4
            if pos + length > len(data):
                raise Unsupported("truncated field")
            value, pos = data[pos : pos + length], pos + length
        else:
            raise Unsupported(f"wire type {wire}")
        out.append((number, wire, value))
    return out


_SCALARS: dict[str, int] = {  # proto scalar -> its wire type
    "string": 2,
    "bytes": 2,
    "bool": 0,
    "int32": 0,
    "int64": 0,
    "uint32": 0,
    "uint64": 0,
    "sint32": 0,
    "sint64": 0,
    "fixed32": 5,
    "sfixed32": 5,
    "float": 5,
    "fixed64": 1,
    "sfixed64": 1,
    "double": 1,
}
_FIXED = {"fixed32": "<I", "sfixed32": "<i", "float": "<f", "fixed64": "<Q", "sfixed64": "<q", "double": "<d"}


def _scalar(type_: str, value: WireValue) -> Any:
    if isinstance(value, int):
        if type_ == "bool":
            return value != 0
        if type_ in ("int32", "int64"):  # negative numbers are 10-byte two's complement
            return value - (1 << 64) if value >= 1 << 63 else value
        if type_ in ("sint32", "sint64"):
            return (value >> 1) ^ -(value & 1)
        return value
    if type_ == "string":
        try:
            return value.decode()
        except UnicodeDecodeError as e:
            raise Unsupported("a string field that is not UTF-8") from e
    if type_ == "bytes":
        return base64.b64encode(value).decode()
    return struct.unpack(_FIXED[type_], value)[0]


def _packed(type_: str, data: bytes) -> list[Any]:
    """The numbers of a packed repeated scalar (proto2 writes them unpacked; a reader accepts both)."""
    values: list[Any] = []
    pos = 0
    if _SCALARS[type_] == 0:
        while pos < len(data):
            number, pos = _varint(data, pos)
            values.append(_scalar(type_, number))
    else:
        size = 8 if _SCALARS[type_] == 1 else 4
        values = [_scalar(type_, data[i : i + size]) for i in range(0, len(data) - size + 1, size)]
    return values


# -- messages --------------------------------------------------------------------------------------


def _value(type_: str, wire: int, value: WireValue) -> Any:
    if type_ in _SCALARS:
        if wire != _SCALARS[type_]:
            raise Unsupported(f"wire type {wire} for a {type_}")
        return _scalar(type_, value)
    if not isinstance(value, bytes) or wire != 2:
        raise Unsupported(f"a number where a {type_.rpartition('.')[2]} was expected")
    return message(value, type_)


def message(data: bytes, name: str) -> Any:
    """The JSON form of one message of the table (a dict, or a scalar for the hand-written types)."""
    t = table()
    fields = t.messages.get(name)
    if fields is None:
        raise Unsupported(f"no protobuf schema for {name}")
    obj: dict[str, Any] = {}
    for number, wire, value in _fields(data):
        spec = fields.get(number)
        if spec is None:
            continue
        json_name, type_, flags = spec
        if "m" in flags:  # an entry: key 1, value 2
            if not isinstance(value, bytes):
                raise Unsupported(f"{json_name}: a map entry that is a number")
            entry = {n: (w, v) for n, w, v in _fields(value)}
            key = _value("string", *entry[1]) if 1 in entry else ""
            item = _value(type_, *entry[2]) if 2 in entry else _empty(type_)
            obj.setdefault(json_name, {})[key] = item
        elif "r" in flags:
            items = obj.setdefault(json_name, [])
            if type_ in _SCALARS and wire == 2 and _SCALARS[type_] != 2 and isinstance(value, bytes):
                items.extend(_packed(type_, value))
            else:
                items.append(_value(type_, wire, value))
        else:
            item = _value(type_, wire, value)
            if item is None or ("z" in flags and item in ("", 0)):  # 0 is False too
                continue
            if "i" in flags and isinstance(item, dict):
                obj.update(item)
            else:
                obj[json_name] = item
    if name in t.lists:
        return obj.get("items", [])
    special = _SPECIAL.get(name)
    return special(obj) if special is not None else obj


def _empty(type_: str) -> Any:
    """A map value the entry left out: the type's zero."""
    if type_ in _SCALARS:
        return {"string": "", "bytes": "", "bool": False}.get(type_, 0)
    return message(b"", type_)


# -- the types whose JSON Go writes by hand ---------------------------------------------------------


def _time(obj: dict[str, Any], micro: bool = False) -> str | None:
    """RFC 3339 in UTC, seconds (Time) or microseconds (MicroTime); the zero time is null."""
    seconds, nanos = obj.get("seconds", 0), obj.get("nanos", 0)
    if not obj or (seconds == ZERO_TIME and nanos == 0):  # an empty message is the zero time too
        return None
    try:
        moment = datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError) as e:
        raise Unsupported(f"a time out of range: {seconds}s") from e
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos // 1000:06d}Z" if micro else f"{text}Z"


def duration(nanoseconds: int) -> str:
    """Go's ``time.Duration.String()``: ``1h0m0s``, ``1m30s``, ``1.5s``, ``500ms``, ``0s``."""
    if nanoseconds == 0:
        return "0s"
    sign, n = ("-", -nanoseconds) if nanoseconds < 0 else ("", nanoseconds)
    if n < 1_000_000_000:  # below a second: the largest unit that keeps a whole part
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if n >= size:
                return sign + _decimal(n, size) + unit
    hours, rest = divmod(n, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = _decimal(rest, 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    return f"{sign}{minutes}m{text}" if minutes else sign + text


def _decimal(n: int, size: int) -> str:
    whole, fraction = divmod(n, size)
    digits = len(str(size)) - 1
    tail = f"{fraction:0{digits}d}".rstrip("0") if digits else ""
    return f"{whole}.{tail}" if tail else str(whole)


def _int_or_string(obj: dict[str, Any]) -> int | str:
    return str(obj.get("strVal", "")) if obj.get("type") == 1 else int(obj.get("intVal", 0))


def _raw_json(field: str) -> Callable[[dict[str, Any]], Any]:
    """A message holding JSON bytes (RawExtension, FieldsV1, a CRD's JSON): the parsed document."""

    def parse(obj: dict[str, Any]) -> Any:
        raw = base64.b64decode(obj.get(field, ""))
        if not raw:
            return None
        if raw.startswith(MAGIC):  # an embedded object in protobuf
            return decode(raw)
        try:
            return json.loads(raw)
        except ValueError as e:
            raise Unsupported(f"embedded bytes that are not JSON: {e}") from e

    return parse


def _schema_or_array(obj: dict[str, Any]) -> Any:
    return obj.get("jSONSchemas") or obj.get("schema")


def _schema_or_bool(obj: dict[str, Any]) -> Any:
    return obj["schema"] if obj.get("schema") is not None else bool(obj.get("allows", False))


def _schema_or_strings(obj: dict[str, Any]) -> Any:
    return obj.get("property") or obj.get("schema")


_SPECIAL: dict[str, Callable[[dict[str, Any]], Any]] = {
    f"{META}.Time": _time,
    f"{META}.MicroTime": lambda obj: _time(obj, micro=True),
    f"{META}.Duration": lambda obj: duration(int(obj.get("duration", 0))),
    f"{META}.FieldsV1": _raw_json("Raw"),
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": _int_or_string,
    "k8s.io.apimachinery.pkg.api.resource.Quantity": lambda obj: obj.get("string") or "0",
    "k8s.io.apimachinery.pkg.api.resource.QuantityValue": lambda obj: obj.get("string") or "0",
    f"{RUNTIME}.RawExtension": _raw_json("raw"),
    f"{CRD}.JSON": _raw_json("raw"),
    f"{CRD}.JSONSchemaPropsOrArray": _schema_or_array,
    f"{CRD}.JSONSchemaPropsOrBool": _schema_or_bool,
    f"{CRD}.JSONSchemaPropsOrStringArray": _schema_or_strings,
}

HAND_WRITTEN = frozenset(_SPECIAL)  # sandbox/tools/proto_fields.py puts each of them in the table


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf request body; ``Unsupported`` for kinds without a schema here."""
    if not body.startswith(MAGIC):
        raise Unsupported("missing the k8s protobuf envelope")
    envelope = {number: value for number, _, value in _fields(body[len(MAGIC) :])}
    type_meta = envelope.get(1, b"")
    raw, encoding = envelope.get(2, b""), envelope.get(3, b"")
    if not isinstance(type_meta, bytes) or not isinstance(raw, bytes):
        raise Unsupported("a runtime.Unknown that is not one")
    if encoding:
        raise Unsupported(f"content encoding {encoding!r}")
    meta = message(type_meta, f"{RUNTIME}.TypeMeta")
    api_version, kind = meta.get("apiVersion", ""), meta.get("kind", "")
    name = table().kind(api_version, kind)
    if name is None:
        raise Unsupported(f"no protobuf schema for kind {kind!r} of {api_version or 'no apiVersion'}")
    obj = message(raw, name)
    return {"apiVersion": api_version, "kind": kind, **obj}
