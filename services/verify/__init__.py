"""The verify service: proves that the target holds what the snapshot says (see README.md)."""
