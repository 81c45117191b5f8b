"""The protobuf decoder on hand-built wire bytes, and the table it reads (sandbox/tools/proto_fields.py).

The bytes are written here field by field, with the numbers of Kubernetes' generated.proto, the way
client-go's marshaller writes them (every non-pointer field present, a pointer only when set), and
the expected result is the JSON that Go's encoding of the same object gives.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from sandbox.server import protobuf
from sandbox.server.protobuf import MAGIC, Unsupported, decode, duration
from sandbox.tools import proto_fields
from sandbox.types.builtin import BUILTIN_TYPES

META = "k8s.io.apimachinery.pkg.apis.meta.v1"
CRD = "k8s.io.apiextensions_apiserver.pkg.apis.apiextensions.v1"


# -- writing the wire format -------------------------------------------------------------------------
def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative numbers as 10-byte two's complement, as Go writes an int32/int64
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def num(field: int, n: int) -> bytes:
    return varint(field << 3) + varint(n)


def ld(field: int, *parts: bytes | str) -> bytes:
    data = b"".join(p.encode() if isinstance(p, str) else p for p in parts)
    return varint(field << 3 | 2) + varint(len(data)) + data


def entry(field: int, key: str, value: bytes | str) -> bytes:
    """One map entry: key 1, value 2."""
    return ld(field, ld(1, key), ld(2, value))


def body(api_version: str, kind: str, *fields: bytes) -> bytes:
    """The k8s envelope: runtime.Unknown{typeMeta{apiVersion, kind}, raw}."""
    return MAGIC + ld(1, ld(1, api_version), ld(2, kind)) + ld(2, *fields)


def meta(name: str, *more: bytes) -> bytes:
    """ObjectMeta as Go writes an unset one: every string present and empty, creationTimestamp zero."""
    zero = num(1, -62135596800) + num(2, 0)
    return ld(1, ld(1, name), ld(2, ""), ld(3, ""), ld(6, ""), num(7, 0), ld(8, zero), *more)


SECONDS = int(datetime(2026, 12, 5, 10, 0, tzinfo=UTC).timestamp())


# -- decoding ------------------------------------------------------------------------------------------
def test_a_time_is_rfc3339_and_the_zero_time_is_left_out() -> None:
    obj = decode(body("v1", "Namespace", meta("n", ld(9, num(1, SECONDS), num(2, 0)))))
    assert obj == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "n", "deletionTimestamp": "2026-12-05T10:00:00Z"},
    }
    empty = decode(body("v1", "Namespace", ld(1, ld(1, "n"), ld(8, b""))))
    assert "creationTimestamp" not in empty["metadata"]


def test_a_micro_time_keeps_microseconds() -> None:
    obj = decode(body("v1", "Event", meta("e"), ld(10, num(1, SECONDS), num(2, 123_456_789))))
    assert obj["eventTime"] == "2026-12-05T10:00:00.123456Z"


@pytest.mark.parametrize(
    ("target_port", "expected"),
    [
        pytest.param(num(1, 0) + num(2, 8080) + ld(3, ""), 8080, id="an int IntOrString is a number"),
        pytest.param(num(1, 1) + num(2, 0) + ld(3, "http"), "http", id="a string IntOrString is a string"),
        pytest.param(num(1, 0) + num(2, 0) + ld(3, ""), 0, id="a zero IntOrString is 0, as Go's JSON has it"),
    ],
)
def test_int_or_string(target_port: bytes, expected: int | str) -> None:
    port = ld(1, ld(1, ""), ld(2, "TCP"), num(3, 80), ld(4, target_port), num(5, 0))
    obj = decode(body("v1", "Service", meta("s"), ld(2, port)))
    assert obj["spec"]["ports"] == [{"protocol": "TCP", "port": 80, "targetPort": expected}]


def test_quantities_in_a_map_are_their_strings() -> None:
    hard = entry(1, "pods", ld(1, "3")) + entry(1, "requests.memory", ld(1, "1Gi"))
    obj = decode(body("v1", "ResourceQuota", meta("q"), ld(2, hard, ld(2, "BestEffort"))))
    assert obj["spec"] == {"hard": {"pods": "3", "requests.memory": "1Gi"}, "scopes": ["BestEffort"]}


def test_a_raw_extension_is_its_json_document() -> None:
    obj = decode(
        body("apps/v1", "ControllerRevision", meta("r"), ld(2, ld(1, b'{"spec":{"a":[1]}}')), num(3, 2))
    )
    assert (obj["data"], obj["revision"]) == ({"spec": {"a": [1]}}, 2)


@pytest.mark.parametrize(
    ("nanoseconds", "text"),
    [
        (0, "0s"),
        (3_600_000_000_000, "1h0m0s"),
        (90_000_000_000, "1m30s"),
        (1_500_000_000, "1.5s"),
        (500_000_000, "500ms"),
        (1_500, "1.5µs"),
        (7, "7ns"),
        (3_600_001_000_000, "1h0m0.001s"),
        (-120_000_000_000, "-2m0s"),
    ],
)
def test_a_duration_is_gos_duration_string(nanoseconds: int, text: str) -> None:
    assert duration(nanoseconds) == text
    assert protobuf.message(num(1, nanoseconds), f"{META}.Duration") == text


def test_maps_of_strings_and_of_bytes() -> None:
    labels = entry(11, "app", "web") + entry(11, "tier", "")
    obj = decode(
        body("v1", "ConfigMap", meta("c", labels), entry(2, "mode", "fast"), entry(3, "blob", b"\x00\xff"))
    )
    assert obj["metadata"]["labels"] == {"app": "web", "tier": ""}
    assert (obj["data"], obj["binaryData"]) == ({"mode": "fast"}, {"blob": "AP8="})


def test_nested_repeated_messages_and_strings() -> None:
    rules = ld(2, ld(1, "get"), ld(1, "list"), ld(2, ""), ld(3, "pods")) + ld(
        2, ld(1, "*"), ld(5, "/healthz")
    )
    obj = decode(body("rbac.authorization.k8s.io/v1", "Role", meta("r"), rules))
    assert obj["rules"] == [
        {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
        {"verbs": ["*"], "nonResourceURLs": ["/healthz"]},
    ]


def test_an_explicit_zero_stays_and_an_unset_scalar_goes() -> None:
    # replicas and revisionHistoryLimit are pointers (present: set); minReadySeconds and paused are not
    spec = num(1, 0) + num(5, 0) + num(6, 0) + num(7, 0) + ld(4, ld(1, ""))
    obj = decode(body("apps/v1", "Deployment", meta("d"), ld(2, spec), ld(3, b"")))
    assert obj["metadata"] == {"name": "d"}  # generateName "", generation 0, zero time: all unset
    assert obj["spec"] == {"replicas": 0, "revisionHistoryLimit": 0, "strategy": {}}
    assert obj["status"] == {}
    suspend = decode(body("batch/v1", "CronJob", meta("c"), ld(2, ld(1, "* * * * *"), num(4, 0))))
    assert suspend["spec"] == {"schedule": "* * * * *", "suspend": False}


def test_an_inline_struct_joins_its_parent() -> None:
    probe = ld(1, ld(1, ld(1, "true"))) + num(2, 0) + num(4, 5)
    container = ld(1, "c") + ld(2, "busybox") + ld(10, probe)
    obj = decode(body("v1", "Pod", meta("p"), ld(2, ld(2, container))))
    assert obj["spec"]["containers"][0]["livenessProbe"] == {
        "exec": {"command": ["true"]},
        "periodSeconds": 5,
    }


def test_json_names_that_are_not_the_proto_names() -> None:
    params = ld(1, "example.com") + ld(2, "Params") + ld(3, "p")
    obj = decode(body("networking.k8s.io/v1", "IngressClass", meta("i"), ld(2, ld(1, "x"), ld(2, params))))
    assert obj["spec"]["parameters"] == {"apiGroup": "example.com", "kind": "Params", "name": "p"}


def test_negative_numbers_and_packed_repeated_numbers() -> None:
    assert decode(body("scheduling.k8s.io/v1", "PriorityClass", meta("pc"), num(2, -5)))["value"] == -5
    unpacked = num(4, 1000) + num(4, 2000)
    packed = ld(4, varint(1000) + varint(2000))
    for groups in (unpacked, packed):
        obj = decode(body("v1", "Pod", meta("p"), ld(2, ld(14, groups))))
        assert obj["spec"]["securityContext"] == {"supplementalGroups": [1000, 2000]}


def test_a_list_wrapper_is_its_list() -> None:
    extra = entry(5, "scopes", ld(1, "a") + ld(1, "b"))
    obj = decode(body("authorization.k8s.io/v1", "SubjectAccessReview", meta("r"), ld(2, ld(3, "u"), extra)))
    assert obj["spec"] == {"user": "u", "extra": {"scopes": ["a", "b"]}}


def test_a_crd_schema_keeps_its_json_names_and_unions() -> None:
    spec_schema = ld(5, "object") + num(38, 1)
    schema = (
        ld(5, "object")
        + ld(8, ld(1, b'{"a":1}'))
        + entry(29, "spec", spec_schema)
        + ld(30, num(1, 0))
        + ld(24, ld(1, ld(5, "string")))
    )
    assert protobuf.message(schema, f"{CRD}.JSONSchemaProps") == {
        "type": "object",
        "default": {"a": 1},
        "properties": {"spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        "additionalProperties": False,
        "items": {"type": "string"},
    }


def test_unknown_field_numbers_are_skipped() -> None:
    extras = (
        num(99, 7) + ld(98, "junk") + varint(97 << 3 | 1) + b"\x00" * 8 + varint(96 << 3 | 5) + b"\x00" * 4
    )
    obj = decode(body("v1", "Namespace", meta("n", extras), extras))
    assert obj == {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        pytest.param(
            body("v1", "Widget", meta("w")), "no protobuf schema for kind 'Widget'", id="unknown kind"
        ),
        pytest.param(
            body("example.com/v1", "Namespace", meta("w")), "no protobuf schema for kind", id="unknown group"
        ),
        pytest.param(b"{}", "missing the k8s protobuf envelope", id="no envelope"),
        pytest.param(body("v1", "Namespace", meta("n"))[:-3], "truncated", id="truncated"),
    ],
)
def test_what_cannot_be_read_is_unsupported(raw: bytes, why: str) -> None:
    with pytest.raises(Unsupported, match=why):
        decode(raw)


async def test_a_kind_outside_the_table_is_a_415(east_url: str, ns: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{east_url}/api/v1/namespaces/{ns}/configmaps",
            data=body("v1", "Widget", meta("w")),
            headers={"Content-Type": protobuf.CONTENT_TYPE},
        ) as response:
            status, answer = response.status, await response.json()
    assert status == 415
    assert answer["reason"] == "UnsupportedMediaType"
    assert answer["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf"
    )


# -- the table -------------------------------------------------------------------------------------------
def test_every_kind_the_sandbox_serves_is_in_the_table() -> None:
    table = protobuf.table()
    missing = [rt.kind for rt in BUILTIN_TYPES if table.kind(rt.group_version, rt.kind) is None]
    assert missing == []
    assert protobuf.HAND_WRITTEN <= set(table.messages)


GO_TYPES = """
package v1

// +optional
type Widget struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty" protobuf:"bytes,1,opt,name=metadata"`
	Spec WidgetSpec `json:"spec,omitempty" protobuf:"bytes,2,opt,name=spec"`
}

type WidgetSpec struct {
	// Replicas is a pointer: a zero that is sent was set.
	Replicas *int32 `json:"replicas,omitempty" protobuf:"varint,1,opt,name=replicas"`
	Mode string `json:"mode,omitempty" protobuf:"bytes,2,opt,name=mode"`
	Name string `json:"name" protobuf:"bytes,3,opt,name=name"`
	Common `json:",inline" protobuf:"bytes,4,opt,name=common"`
	APIGroup string `json:"apiGroup" protobuf:"bytes,5,opt,name=aPIGroup"`
	Tags []string `json:"tags,omitempty" protobuf:"bytes,6,rep,name=tags"`
	Extra map[string]ExtraValue `json:"extra,omitempty" protobuf:"bytes,7,rep,name=extra"`
}

type Common struct {
	Enabled bool `json:"enabled,omitempty" protobuf:"varint,1,opt,name=enabled"`
}

type ExtraValue []string
"""
PROTO = """
/* Copyright: see http://www.apache.org/licenses/LICENSE-2.0 */
syntax = "proto2";
package k8s.io.api.widgets.v1;
import "k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto";
option go_package = "k8s.io/api/widgets/v1";

// A widget; the comment mentions /* and */ and // in passing.
message Widget {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional WidgetSpec spec = 2;
}
message WidgetSpec {
  optional int32 replicas = 1;
  optional string mode = 2;
  optional string name = 3;
  optional Common common = 4;
  optional string aPIGroup = 5;
  repeated string tags = 6;
  map<string, ExtraValue> extra = 7;
}
message Common {
  optional bool enabled = 1;
}
message ExtraValue {
  // +protobuf.nullable=true
  repeated string items = 1;
}
"""
META_PROTO = """
syntax = "proto2";
package k8s.io.apimachinery.pkg.apis.meta.v1;
message ObjectMeta {
  optional string name = 1;
}
"""


def test_the_tool_derives_names_flags_and_lists_from_proto_and_go(tmp_path: Path) -> None:
    files = {
        "api/widgets/v1/generated.proto": PROTO,
        "api/widgets/v1/types.go": GO_TYPES,
        "api/widgets/v1/register.go": 'package v1\n\nconst GroupName = "widgets.example.com"\n',
        "apimachinery/pkg/apis/meta/v1/generated.proto": META_PROTO,
        "apimachinery/pkg/apis/meta/v1/types.go": 'type ObjectMeta struct {\n\tName string `json:"name,omitempty" protobuf:"bytes,1,opt,name=name"`\n}\n',
    }
    for path, text in files.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    sources = proto_fields.Sources(
        {name: proto_fields.Tree(tmp_path / name, None) for name in ("api", "apimachinery")}
    )
    packages = sources.served_packages({("widgets.example.com", "v1")})
    assert packages == {"widgets.example.com/v1": "k8s.io.api.widgets.v1"}
    names = sources.closure(packages.values())
    assert names == [
        "k8s.io.api.widgets.v1.Common",
        "k8s.io.api.widgets.v1.ExtraValue",
        "k8s.io.api.widgets.v1.Widget",
        "k8s.io.api.widgets.v1.WidgetSpec",
        f"{META}.ObjectMeta",
    ]
    assert sources.entry("k8s.io.api.widgets.v1.WidgetSpec") == {
        "1": ["replicas", "int32"],  # a pointer: present means set
        "2": ["mode", "string", "z"],  # omitempty, not a pointer: empty means unset
        "3": ["name", "string"],  # no omitempty: "" is what JSON shows
        "4": ["common", "Common", "i"],
        "5": ["apiGroup", "string"],
        "6": ["tags", "string", "r"],
        "7": ["extra", "ExtraValue", "m"],
    }
    assert sources.entry("k8s.io.api.widgets.v1.Widget")["1"] == ["metadata", f"{META}.ObjectMeta"]
    assert sources.entry(f"{META}.ObjectMeta") == {"1": ["name", "string", "z"]}
    assert sources.lists(names) == ["k8s.io.api.widgets.v1.ExtraValue"]
