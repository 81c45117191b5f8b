"""Derive the sandbox's protobuf table from Kubernetes' ``generated.proto`` files, and write it as JSON.

client-go's typed clients (so ``kubectl create deployment``, ``create job``, ``create role``, ``auth
can-i`` ...) send built-in objects as ``application/vnd.kubernetes.protobuf`` and do not fall back to
JSON on a 415. The sandbox reads those bodies with ``sandbox.server.protobuf``, which needs, for every
message, its field numbers and what they hold. Those come from the API's own ``generated.proto``
files (k8s.io/api, k8s.io/apimachinery, k8s.io/apiextensions-apiserver at the sandbox's release),
never from a hand-written list: a wrong number would then decode garbage that no test of ours notices.

A proto file alone does not say what the API's *JSON* looks like, which is what the sandbox stores.
Three facts live only in the Go struct tags of the same packages (``types.go``), so the tool reads
those too, matching struct fields to proto fields by number:

- the JSON name (``$ref`` and ``x-kubernetes-preserve-unknown-fields`` in a CRD schema are not the
  proto names);
- ``json:",inline"`` (a Probe's handler, a Volume's source): the message's fields join its parent's;
- a non-pointer scalar with ``omitempty``: Go's protobuf marshaller writes every non-pointer field,
  empty or not, while its JSON leaves an empty one out. Such a field is flagged ``z`` and dropped when
  zero, so ``replicas: 0`` (a pointer, set) survives and ``generateName: ""`` (unset) does not.

Named slice types that proto wraps in a message (``ExtraValue``: ``repeated string items = 1``) are
listed under ``lists``: their JSON is the bare list. Types whose JSON is written by hand in Go
(Time, Duration, IntOrString, Quantity, RawExtension ...) are the decoder's business, by message name.

The packages are those of every group-version the sandbox serves (``sandbox.types.builtin``, the
access reviews of ``sandbox.server.access``) plus the ones its subresources speak (autoscaling/v1
Scale, authentication/v1 TokenRequest), the body's envelope (``runtime.Unknown``) and the types the
decoder writes by hand (``Duration`` is one, though no served kind holds it yet), and every message
they reach. It writes::

    {"source": ..., "packages": {"apps/v1": "k8s.io.api.apps.v1", ...}, "lists": [...],
     "messages": {"k8s.io.api.apps.v1.DeploymentSpec": {"1": ["replicas", "int32"], "2": ["selector",
     "k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelector"], "4": ["strategy", "DeploymentStrategy"], ...}}}

a field being ``[json name, type, flags]``: the type a proto scalar or a message's name (bare in its
own package, full in another, as the .proto writes it), the flags (left out when none) ``r`` repeated,
``m`` map (string keys; the type is the value's), ``z`` omitted when zero, ``i`` inline.

Run it again when the sandbox's Kubernetes release or its groups change, on the three repositories
(working trees checked out at the release, or any clones with ``--ref`` naming its tag)::

    for repo in api apimachinery apiextensions-apiserver; do
        git clone --bare https://github.com/kubernetes/$repo /tmp/k8s/$repo
    done
    .venv/bin/python -m sandbox.tools.proto_fields --ref v0.32.0 --api /tmp/k8s/api \\
        --apimachinery /tmp/k8s/apimachinery --apiextensions /tmp/k8s/apiextensions-apiserver \\
        > sandbox/server/proto_fields.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from sandbox.server.access import GROUP as ACCESS_GROUP
from sandbox.server.access import VERSION as ACCESS_VERSION
from sandbox.server.protobuf import HAND_WRITTEN
from sandbox.types.builtin import BUILTIN_TYPES

REF = "v0.32.0"  # k8s.io/api's tag for Kubernetes 1.32, the release the sandbox reports
# Group-versions a client writes to although no resource of theirs is listed: the scale subresource's
# Scale and the service-account token subresource's TokenRequest.
SUBRESOURCE_GROUPS = {("autoscaling", "v1"), ("authentication.k8s.io", "v1")}
ENVELOPE = "k8s.io.apimachinery.pkg.runtime.Unknown"  # every body's wrapper: typeMeta, raw
SCALARS = frozenset(
    "string bytes bool int32 int64 uint32 uint64 sint32 sint64 fixed32 fixed64 sfixed32 sfixed64 double float".split()
)
REPOSITORIES = {  # import path prefix -> the argument naming that repository
    "k8s.io/api/": "api",
    "k8s.io/apimachinery/": "apimachinery",
    "k8s.io/apiextensions-apiserver/": "apiextensions",
}


class Tree:
    """The files of one repository: a working tree, or a git repository read at ``ref``."""

    def __init__(self, root: Path, ref: str | None) -> None:
        self.root, self.ref = root, ref
        self._listing: list[str] | None = None

    def read(self, path: str) -> str:
        if self.ref is None:
            return (self.root / path).read_text()
        return self._git("show", f"{self.ref}:{path}")

    def files(self) -> list[str]:
        if self._listing is None:
            if self.ref is None:
                self._listing = sorted(
                    p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()
                )
            else:
                self._listing = self._git("ls-tree", "-r", "--name-only", self.ref).splitlines()
        return self._listing

    def _git(self, *args: str) -> str:
        done = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"git {' '.join(args)} in {self.root}: {done.stderr.strip()}")
        return done.stdout


# -- .proto ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProtoField:
    number: int
    name: str
    type: str  # a scalar, or a message's full name
    label: str  # "optional", "repeated" or "map"


@dataclass
class ProtoFile:
    package: str
    imports: list[str]
    messages: dict[str, list[ProtoField]]  # full name -> fields


_COMMENT = re.compile(r'"[^"\n]*"|//[^\n]*|/\*.*?\*/', re.S)  # strings are matched to be kept
_TOKEN = re.compile(r'"[^"]*"|[A-Za-z_.][\w.]*|-?\d+|[{}<>;=,\[\]()]')


def parse_proto(text: str) -> ProtoFile:
    """The package, imports and messages of a go-to-protobuf file (proto2, no nesting, no enums)."""
    tokens = _TOKEN.findall(_COMMENT.sub(lambda m: m.group() if m.group()[0] == '"' else " ", text))
    out = ProtoFile("", [], {})
    raw: dict[str, list[tuple[int, str, str, str]]] = {}
    pos = 0

    def upto(stop: str) -> list[str]:
        nonlocal pos
        end = tokens.index(stop, pos)
        taken, pos = tokens[pos:end], end + 1
        return taken

    while pos < len(tokens):
        word = tokens[pos]
        pos += 1
        if word in ("syntax", "option"):
            upto(";")
        elif word == "package":
            out.package = upto(";")[0]
        elif word == "import":
            out.imports.append(upto(";")[0].strip('"'))
        elif word == "message":
            name = tokens[pos]
            pos += 2  # the name and "{"
            fields = raw.setdefault(name, [])
            while tokens[pos] != "}":
                statement = upto(";")
                if statement[0] == "option":
                    continue
                if statement[0] in ("message", "enum", "oneof", "reserved", "extensions"):
                    raise SystemExit(f"message {name}: {statement[0]} is not supported")
                if "[" in statement:  # field options, e.g. [default = ...]
                    statement = statement[: statement.index("[")]
                if statement[0] == "map":  # map < K , V > name = N
                    key, value = statement[2], statement[4]
                    if key != "string":
                        raise SystemExit(f"message {name}: a map keyed by {key}")
                    fields.append((int(statement[-1]), statement[-3], value, "map"))
                else:  # label type name = N
                    label, type_, fname = statement[0], statement[1], statement[2]
                    fields.append((int(statement[-1]), fname, type_, label))
            pos += 1
        else:
            raise SystemExit(f"unexpected {word!r} in a .proto file")
    for name, fields in raw.items():
        full = f"{out.package}.{name}"
        out.messages[full] = [
            ProtoField(number, fname, _qualify(type_, out.package), label)
            for number, fname, type_, label in fields
        ]
    return out


def _qualify(type_: str, package: str) -> str:
    if type_ in SCALARS:
        return type_
    if type_.startswith("."):
        return type_[1:]
    return f"{package}.{type_}"


# -- Go struct tags --------------------------------------------------------------------------------


@dataclass(frozen=True)
class GoField:
    json_name: str  # "" when the tag names none ("-", or an inline struct)
    pointer: bool
    omitempty: bool
    inline: bool


@dataclass
class GoPackage:
    structs: dict[str, dict[int, GoField]] = field(default_factory=dict)  # struct -> proto number -> field
    slices: set[str] = field(default_factory=set)  # named slice types (type X []T)
    group: str | None = None  # GroupName of register.go


_STRUCT = re.compile(r"^type (\w+) struct \{$")
_SLICE = re.compile(r"^type (\w+) \[\]\S+", re.M)
_GROUP = re.compile(r'^\s*(?:const\s+)?GroupName\s*=\s*"([^"]*)"', re.M)
_TAG = re.compile(r'(\w+):"([^"]*)"')


def parse_go(sources: Iterable[str]) -> GoPackage:
    """Struct tags (by proto field number), named slices and the group name of one Go package."""
    out = GoPackage()
    for text in sources:
        out.slices.update(_SLICE.findall(text))
        if (group := _GROUP.search(text)) is not None:
            out.group = group.group(1)
        struct: dict[int, GoField] | None = None
        for line in text.splitlines():
            if struct is None:
                if (m := _STRUCT.match(line)) is not None:
                    struct = out.structs.setdefault(m.group(1), {})
                continue
            if line == "}":
                struct = None
                continue
            code = line.strip()
            if code.startswith("//") or "`" not in code:
                continue
            declared, tag = code.split("`")[0].split(), dict(_TAG.findall(code.split("`")[1]))
            if "protobuf" not in tag or tag["protobuf"] == "-":
                continue
            json_tag = tag.get("json", "").split(",")
            name = json_tag[0] if json_tag[0] != "-" else ""
            struct[int(tag["protobuf"].split(",")[1])] = GoField(
                json_name=name,
                pointer=declared[-1].startswith("*"),
                omitempty="omitempty" in json_tag[1:],
                inline="inline" in json_tag[1:],
            )
    return out


# -- the table -------------------------------------------------------------------------------------


class Sources:
    """The .proto files and Go packages of the three repositories, loaded on demand."""

    def __init__(self, trees: dict[str, Tree]) -> None:
        self.trees = trees
        self.files: dict[str, ProtoFile] = {}  # import path -> file
        self.go: dict[str, GoPackage] = {}  # proto package -> its Go package
        self.messages: dict[str, list[ProtoField]] = {}

    def load(self, import_path: str) -> ProtoFile:
        if import_path in self.files:
            return self.files[import_path]
        tree, path = self._locate(import_path)
        proto = parse_proto(tree.read(path))
        self.files[import_path] = proto
        self.messages.update(proto.messages)
        directory = str(PurePosixPath(path).parent)
        go_files = [
            f
            for f in tree.files()
            if str(PurePosixPath(f).parent) == directory
            and f.endswith(".go")
            and not f.endswith("_test.go")
            and not PurePosixPath(f).name.startswith(("zz_generated", "generated."))
        ]
        self.go[proto.package] = parse_go(tree.read(f) for f in go_files)
        for imported in proto.imports:
            self.load(imported)
        return proto

    def _locate(self, import_path: str) -> tuple[Tree, str]:
        for prefix, name in REPOSITORIES.items():
            if import_path.startswith(prefix):
                if name not in self.trees:
                    raise SystemExit(f"{import_path}: pass --{name}")
                return self.trees[name], import_path[len(prefix) :]
        raise SystemExit(f"{import_path}: not in k8s.io/api, apimachinery or apiextensions-apiserver")

    def served_packages(self, wanted: set[tuple[str, str]]) -> dict[str, str]:
        """apiVersion -> proto package, for each wanted (group, version) found in the repositories."""
        found: dict[str, str] = {}
        for prefix, name in REPOSITORIES.items():
            tree = self.trees.get(name)
            if tree is None or name == "apimachinery":
                continue
            present = set(tree.files())
            for path in sorted(present):
                if not path.endswith("/generated.proto") or "/testdata/" in path:
                    continue
                version = PurePosixPath(path).parent.name
                register = str(PurePosixPath(path).parent / "register.go")
                if register not in present:
                    continue
                group_match = _GROUP.search(tree.read(register))
                if group_match is None or (group_match.group(1), version) not in wanted:
                    continue
                proto = self.load(prefix + path)
                group = group_match.group(1)
                found[f"{group}/{version}" if group else version] = proto.package
        missing = {f"{g}/{v}" if g else v for g, v in wanted} - set(found)
        if missing:
            raise SystemExit(f"no generated.proto for {sorted(missing)} (pass the repository that has it)")
        return dict(sorted(found.items()))

    def closure(self, packages: Iterable[str], roots: Iterable[str] = ()) -> list[str]:
        """Every message of these packages, the roots, and every message they reach, sorted."""
        todo = [name for name in self.messages if name.rsplit(".", 1)[0] in set(packages)]
        todo += roots
        seen: set[str] = set()
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            if name not in self.messages:
                raise SystemExit(f"{name}: referenced but defined in no file loaded")
            seen.add(name)
            todo.extend(f.type for f in self.messages[name] if f.type not in SCALARS)
        return sorted(seen)

    def lists(self, messages: Iterable[str]) -> list[str]:
        """The messages that wrap a Go named slice (``repeated items = 1``): in JSON, the bare list."""
        return [
            name
            for name in messages
            if name.rpartition(".")[2] in self.go[name.rpartition(".")[0]].slices
            and [(f.number, f.name, f.label) for f in self.messages[name]] == [(1, "items", "repeated")]
        ]

    def entry(self, message: str) -> dict[str, list[str]]:
        """number -> [json name, type, flags?] for one message."""
        package, _, short = message.rpartition(".")
        go = self.go[package].structs.get(short)
        out: dict[str, list[str]] = {}
        for f in sorted(self.messages[message], key=lambda f: f.number):
            tag = (go or {}).get(f.number)
            flags = ""
            if f.label == "repeated":
                flags += "r"
            elif f.label == "map":
                flags += "m"
            elif tag is not None and f.type in SCALARS and tag.omitempty and not tag.pointer:
                flags += "z"
            if tag is not None and tag.inline:
                flags += "i"
            name = (tag.json_name if tag is not None else "") or f.name
            type_ = f.type.removeprefix(package + ".")  # same package: the bare name, as in .proto
            out[str(f.number)] = [name, type_, flags] if flags else [name, type_]
        return out


def wanted_group_versions() -> set[tuple[str, str]]:
    served = {(rt.group, rt.version) for rt in BUILTIN_TYPES}
    return served | {(ACCESS_GROUP, ACCESS_VERSION)} | SUBRESOURCE_GROUPS


def table(sources: Sources) -> dict[str, object]:
    packages = sources.served_packages(wanted_group_versions())
    messages = sources.closure(packages.values(), [ENVELOPE, *sorted(HAND_WRITTEN)])
    return {
        "packages": packages,
        "lists": sources.lists(messages),
        "messages": {name: sources.entry(name) for name in messages},
    }


def render(data: dict[str, object], source: str) -> str:
    """JSON with one line per message, so a regenerated table reviews as a short diff."""
    messages = data["messages"]
    assert isinstance(messages, dict)
    lines = [
        "{",
        f'  "source": {json.dumps(source)},',
        f'  "packages": {json.dumps(data["packages"])},',
        f'  "lists": {json.dumps(data["lists"])},',
        '  "messages": {',
    ]
    entries = [
        f"    {json.dumps(name)}: {json.dumps(fields, separators=(',', ':'))}"
        for name, fields in messages.items()
    ]
    lines += [",\n".join(entries), "  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.tools.proto_fields", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--api", type=Path, required=True, help="k8s.io/api (github.com/kubernetes/api)")
    parser.add_argument("--apimachinery", type=Path, required=True, help="k8s.io/apimachinery")
    parser.add_argument("--apiextensions", type=Path, required=True, help="k8s.io/apiextensions-apiserver")
    parser.add_argument("--ref", help=f"read the repositories at this git ref (e.g. {REF}), not their trees")
    args = parser.parse_args(argv)
    trees = {
        "api": Tree(args.api, args.ref),
        "apimachinery": Tree(args.apimachinery, args.ref),
        "apiextensions": Tree(args.apiextensions, args.ref),
    }
    source = (
        "generated.proto and types.go of k8s.io/api, k8s.io/apimachinery and k8s.io/apiextensions-apiserver"
        + (f" {args.ref}" if args.ref else "")
    )
    sys.stdout.write(render(table(Sources(trees)), source))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
