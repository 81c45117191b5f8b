"""Ferry's discovery service: the inventory of an application (see README.md)."""
