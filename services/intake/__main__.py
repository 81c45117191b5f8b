from services.intake.intake import IntakeService
from shared.runtime import run

run(IntakeService)
