"""Re-export the data-path fixtures (stores on SeaweedFS and in a directory, repositories)."""

from tests.store.conftest import data_bucket, repo, store, store_kind  # noqa: F401
