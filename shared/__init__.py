"""Ferry's common code: contracts, bus, cluster access, object store, repository, runtime."""
