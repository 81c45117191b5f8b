"""``python -m services.restore [--step restore|verify|both]``: the restore and verify steps.

Both steps need the same things (the target repository and cluster), so one process serves both by
default; ``--step`` runs one of them, for deployments that scale them apart.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from services.restore.service import RestoreService
from services.restore.verifying import VerifyService
from shared.runtime import Service, load_settings, serve, setup_logging


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


async def serve_all(services: list[Service]) -> None:
    """Like ``shared.runtime.serve`` for several services: the first to stop (or a signal) stops all."""
    if len(services) == 1:
        await serve(services[0])
        return
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        for service in services:
            await service.start()
        waits = [asyncio.create_task(s.wait(), name=f"wait:{s.name}") for s in services]
        waits.append(asyncio.create_task(_wait(stop), name="wait:signal"))
        _done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    finally:
        for service in services:
            await service.drain()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.restore")
    parser.add_argument("--step", choices=["restore", "verify", "both"], default="both")
    args = parser.parse_args()
    settings = load_settings()
    setup_logging("restore", settings.log_level, settings.log_format, settings.secrets())
    services: list[Service] = []
    if args.step in ("restore", "both"):
        services.append(RestoreService(settings))
    if args.step in ("verify", "both"):
        # Two services in one process: the second one's health endpoint takes a free port.
        port = 0 if services else settings.http_port
        services.append(
            VerifyService(load_settings(http_port=port) if port != settings.http_port else settings)
        )
    asyncio.run(serve_all(services))


main()
