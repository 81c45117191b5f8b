"""Maintenance scripts of the sandbox (not imported at run time)."""
