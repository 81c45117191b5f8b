"""The service runtime: settings, logs, health/metrics, the lifecycle, and the step runner.

Every service is ``Service`` (or ``StepService`` for a step of the itinerary) plus its own logic;
``python -m services.<name>`` calls ``run(ServiceClass)``.
"""

from shared.runtime.lifecycle import Service, run, serve, serve_all
from shared.runtime.logs import request_context, setup_logging
from shared.runtime.settings import Settings, load_settings
from shared.runtime.stepping import StepContext, StepService

__all__ = [
    "Service",
    "Settings",
    "StepContext",
    "StepService",
    "load_settings",
    "request_context",
    "run",
    "serve",
    "serve_all",
    "setup_logging",
]
