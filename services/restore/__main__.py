from services.restore.service import RestoreService
from shared.runtime import run

run(RestoreService)
