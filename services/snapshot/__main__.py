from services.snapshot.snapshotting import SnapshotService
from shared.runtime import run

run(SnapshotService)
