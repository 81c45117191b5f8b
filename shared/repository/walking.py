"""Walking snapshot trees: the one traversal used by check, prune, copy, ls and diff.

Trees are read one directory at a time (depth-first, name order), so memory follows the depth of the
tree, not its size.
"""

from __future__ import annotations

from collections.abc import Iterator

from shared.repository.formats import Node, Snapshot
from shared.repository.repo import Repository


def walk(repo: Repository, root: bytes, prefix: str = "") -> Iterator[tuple[str, Node]]:
    """Every (relative path, node) under the tree ``root``, parents before their children."""
    for node in repo.read_tree(root).nodes:
        path = f"{prefix}/{node.name}" if prefix else node.name
        yield path, node
        if node.type == "dir" and node.subtree:
            yield from walk(repo, node.subtree, path)


def referenced(repo: Repository, record: Snapshot) -> Iterator[tuple[str, bytes]]:
    """Every blob a snapshot record needs, with the path that needs it ('' for trees and blobs)."""
    if record.kind == "blob":
        for chunk in record.content:
            yield f"<{record.name}>", chunk
        return
    yield "", record.root
    for path, node in walk(repo, record.root):
        if node.type == "dir":
            yield "", node.subtree
        for chunk in node.content:
            yield path, chunk
