from services.intake.drills import DrillsService
from services.intake.intake import IntakeService
from services.intake.policies import PolicyService
from shared.runtime import run

run(IntakeService, PolicyService, DrillsService)
