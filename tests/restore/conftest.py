"""Fixtures for restore tests (unit tests need none; cluster tests add theirs here)."""
