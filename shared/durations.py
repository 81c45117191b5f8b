"""Durations as people write them in requests, flags and settings: ``90s``, ``30m``, ``12h``, ``7d``, ``2w``.

One parser for the whole product (retention's keep-within, the mover's ``--keep-within``, ...); each
caller turns its ``ValueError`` into its own kind of error (a usage error, a permanent failure).
"""

from __future__ import annotations

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def seconds(value: str) -> float:
    """'90s', '30m', '12h', '7d', '2w' or a plain number of seconds -> seconds; ValueError otherwise."""
    text = value.strip()
    try:
        amount = float(text[:-1]) * UNITS[text[-1]] if text and text[-1] in UNITS else float(text)
    except (ValueError, IndexError):
        raise ValueError(f"not a duration: {value[:100]!r} (use e.g. 90s, 30m, 12h, 7d, 2w)") from None
    if amount < 0:
        raise ValueError(f"a duration cannot be negative: {value[:100]!r}")
    return amount
