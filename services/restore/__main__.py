"""``python -m services.restore``: the restore, rollback and cleanup steps, one process, one lifecycle.

A rollback is the restore's inverse, and a drill's cleanup removes what its restore wrote: both need
the same access to the target cluster (the rollback the source's too, to bring it back). Each
service's health endpoint takes a free port; /metrics of the first serves them all.
"""

from services.restore.cleaningup import CleanupService
from services.restore.rollingback import RollbackService
from services.restore.service import RestoreService
from shared.runtime import run

run(RestoreService, RollbackService, CleanupService)
