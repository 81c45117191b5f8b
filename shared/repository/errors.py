"""The repository's errors, each telling the mover (and through it a Job controller) what to do next.

``temporary`` errors are worth retrying (a lock held by another backup, the store unreachable);
the others need a person (a wrong key, a damaged pack, a missing snapshot). Store errors from
``shared.store`` pass through unchanged: they already carry the same ``temporary`` flag.
"""

from __future__ import annotations


class RepositoryError(Exception):
    """Something is wrong with the repository or with the way it was asked to do something."""

    temporary: bool = False


class RepositoryNotFound(RepositoryError):
    """No repository at this location (``ferry-mover init`` creates one)."""


class RepositoryExists(RepositoryError):
    """``init`` was asked to create a repository where one already lives."""


class WrongKey(RepositoryError):
    """None of the repository's keys opens with the given passphrase or key file."""


class RepositoryLocked(RepositoryError):
    """Another process holds a conflicting lock (a prune while backing up, or the reverse)."""

    temporary = True


class IntegrityError(RepositoryError):
    """Data read back does not match what was written (corrupt or tampered blob, pack or index)."""


class SnapshotNotFound(RepositoryError):
    """No snapshot with this id (or id prefix), or the prefix is ambiguous."""


class DamagedFiles(RepositoryError):
    """A restore could not rebuild some files; ``damaged`` maps each path to the reason."""

    def __init__(self, damaged: dict[str, str]) -> None:
        listing = "\n".join(f"  {path}: {reason}" for path, reason in sorted(damaged.items()))
        super().__init__(f"{len(damaged)} file(s) could not be restored intact:\n{listing}")
        self.damaged = damaged
