"""Fixtures for the security tests: the session's pair of sandbox clusters ("east" and "west")."""

from sandbox.testing import sandbox_pair_fixture  # noqa: F401  (provides ``sandbox_pair``)
