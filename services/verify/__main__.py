from services.verify.service import VerifyService
from shared.runtime import run

run(VerifyService)
