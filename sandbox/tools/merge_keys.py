"""Derive the sandbox's strategic-merge table from the Kubernetes OpenAPI, and write it as JSON.

The sandbox must not borrow its patch rules from the code it tests (Ferry's restore has a table of
its own): a wrong key would then be wrong on both sides and every test would stay green. So its
table comes from the API's own declarations, the ``x-kubernetes-patch-merge-key`` and
``x-kubernetes-patch-strategy`` extensions the Go types' ``patchMergeKey``/``patchStrategy`` tags
become in the OpenAPI document.

The document is read from the ``kubernetes-validate`` package (a dev dependency, from PyPI): it ships
each release's OpenAPI definitions converted to JSON Schema with the ``x-kubernetes-*`` extensions
kept (``kubernetes-json-schema/v<release>-local/_definitions.json``). A ``swagger.json`` from
kubernetes/kubernetes (``api/openapi-spec``) works as well (``--definitions``).

For every built-in kind the sandbox serves (``sandbox.types.builtin``) the walk follows the kind's
properties, lists' items and ``$ref``s from the object's root; a list's items add no path segment, so
``spec.template.spec.containers.ports`` is the ports of any container of a Deployment. It writes::

    {"source": ..., "kinds": {"apps/v1/Deployment": {"spec.template.spec.containers": ["name", "merge"]}}}

with ``null`` for a list merged without a key (``metadata.finalizers``: a set of strings). A field
with no strategy (``tolerations``) is absent: its lists are replaced.

Run it again when the sandbox's Kubernetes version or its kinds change::

    .venv/bin/python -m sandbox.tools.merge_keys > sandbox/server/merge_keys.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from sandbox.types.builtin import BUILTIN_TYPES

RELEASE = "1.32.0"  # the release the sandbox's discovery and kubelet report (sandbox/types/builtin.py)
KEY, STRATEGY = "x-kubernetes-patch-merge-key", "x-kubernetes-patch-strategy"
GVK = "x-kubernetes-group-version-kind"

Rule = tuple[str | None, str]  # (merge key, patch strategy)


def load_definitions(path: Path | None, release: str) -> tuple[dict[str, Any], str]:
    """The OpenAPI definitions by name, and a sentence naming where they came from."""
    if path is None:
        package = resources.files("kubernetes_validate")
        document = package / "kubernetes-json-schema" / f"v{release}-local" / "_definitions.json"
        from importlib.metadata import version

        source = (
            f"Kubernetes v{release} OpenAPI definitions, as shipped by kubernetes-validate "
            f"{version('kubernetes-validate')} (kubernetes-json-schema/v{release}-local/_definitions.json)"
        )
        text = document.read_text()
    else:
        source, text = f"{path.name} (Kubernetes OpenAPI)", path.read_text()
    doc = json.loads(text)
    return doc.get("definitions") or doc["$defs"], source


def _ref(schema: dict[str, Any]) -> str | None:
    """The definition a property points to (``$ref``, possibly wrapped in ``allOf``)."""
    ref = schema.get("$ref")
    if ref is None and schema.get("allOf"):
        ref = schema["allOf"][0].get("$ref")
    return str(ref).rsplit("/", 1)[-1] if ref else None


def _walk(defs: dict[str, Any], name: str, path: str, seen: tuple[str, ...]) -> Iterator[tuple[str, Rule]]:
    """(path, rule) for every field below definition ``name`` that declares a patch strategy."""
    if name in seen:  # JSONSchemaProps nests itself
        return
    for field, prop in (defs[name].get("properties") or {}).items():
        here = f"{path}.{field}" if path else field
        if STRATEGY in prop:
            yield here, (prop.get(KEY), prop[STRATEGY])
        inner = prop.get("items") if "array" in _types(prop) else prop
        target = _ref(inner or {})
        if target is not None:
            yield from _walk(defs, target, here, (*seen, name))
        values = prop.get("additionalProperties")
        if isinstance(values, dict) and (values_ref := _ref(values)) is not None:
            if any(True for _ in _walk(defs, values_ref, "", (*seen, name))):
                raise SystemExit(
                    f"{name}.{field}: a map of patch-merged values; the table has no syntax for it"
                )


def _types(prop: dict[str, Any]) -> list[str]:
    kind = prop.get("type", [])
    return [kind] if isinstance(kind, str) else list(kind)


def _by_kind(defs: dict[str, Any]) -> dict[tuple[str, str, str], str]:
    """(group, version, kind) -> the definition of that kind."""
    out: dict[tuple[str, str, str], str] = {}
    for name, schema in defs.items():
        for gvk in schema.get(GVK) or []:
            out.setdefault((gvk.get("group", ""), gvk["version"], gvk["kind"]), name)
    return out


def table(defs: dict[str, Any]) -> dict[str, dict[str, Rule]]:
    """``apiVersion/Kind`` -> {json path -> rule} for the strategic-merge kinds the sandbox serves."""
    kinds = _by_kind(defs)
    out: dict[str, dict[str, Rule]] = {}
    for rt in BUILTIN_TYPES:
        if not rt.strategic:
            continue
        name = kinds.get((rt.group, rt.version, rt.kind))
        if name is None:
            raise SystemExit(f"{rt.group_version} {rt.kind}: not in the OpenAPI definitions")
        out[f"{rt.group_version}/{rt.kind}"] = dict(sorted(_walk(defs, name, "", ())))
    return out


def render(rules: dict[str, dict[str, Rule]], source: str) -> str:
    """JSON with one line per path, so a regenerated table reviews as a short diff."""
    lines = ["{", f'  "source": {json.dumps(source)},', '  "kinds": {']
    for n, (kind, paths) in enumerate(rules.items()):
        lines.append(f"    {json.dumps(kind)}: {{")
        entries = [f"      {json.dumps(path)}: {json.dumps(list(rule))}" for path, rule in paths.items()]
        lines.append(",\n".join(entries))
        lines.append("    }" + ("," if n < len(rules) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(line for line in lines if line) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sandbox.tools.merge_keys", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--release", default=RELEASE, help="Kubernetes release in kubernetes-validate (%(default)s)"
    )
    parser.add_argument("--definitions", type=Path, help="a swagger.json / _definitions.json to read instead")
    args = parser.parse_args(argv)
    defs, source = load_definitions(args.definitions, args.release)
    sys.stdout.write(render(table(defs), source))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
