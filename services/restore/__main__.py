"""``python -m services.restore``: the restore and rollback steps, one process, one lifecycle.

A rollback is the restore's inverse and needs the same access to the target cluster (and the
source's, to bring it back); the rollback service's health endpoint takes a free port.
"""

from services.restore.rollingback import RollbackService
from services.restore.service import RestoreService
from shared.runtime import run

run(RestoreService, RollbackService)
