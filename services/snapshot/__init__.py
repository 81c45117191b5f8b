"""Ferry's snapshot service: an application's manifests and volumes into the repository (README.md)."""
