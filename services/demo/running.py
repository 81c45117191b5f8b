"""The demo's script: bring the local stack up, run Ferry's services, push a request, show events.

Today it runs the backbone path: intake plus the ``echo`` step as real processes on a real
nats-server, a request through that itinerary, its events printed live, and its final state. The
full migration of the sample app east -> west plugs in here as the services land (issue 7).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import tempfile
from pathlib import Path

import nats
from rich.console import Console
from rich.markup import escape

from services.demo.processes import ServiceProcess, wait_ready
from shared.bus.client import BusClient
from shared.contracts.events import Event, Failed, PhaseChanged, Progress, StepCompleted, StepStarted, Warning
from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from shared.contracts.states import Phase
from shared.localstack import local_stack

console = Console(highlight=False)


def describe(event: Event) -> str:
    step = f"[{event.step.value}] " if event.step else ""
    match event:
        case PhaseChanged():
            return f"phase → {event.phase.value}{': ' + event.reason if event.reason else ''}"
        case StepStarted():
            return f"{step}started (attempt {event.attempt})"
        case Progress():
            return f"{step}progress {event.items_done}/{event.items_total} items, {event.bytes_done >> 20}/{event.bytes_total >> 20} MiB"
        case StepCompleted():
            return f"{step}completed {event.counts} {event.message}"
        case Failed():
            return f"{step}failed (attempt {event.attempt}/{event.max_attempts}): {event.reason}"
        case Warning():
            return f"{step}warning: {event.message}"
        case _:
            return f"{step}{type(event).__name__}"


async def push_stub_request(nats_url: str) -> Phase:
    nc = await nats.connect(nats_url)
    try:
        client = BusClient(nc)
        request = MobilityRequest(
            kind=RequestKind.REPLICATE,
            source=Source(cluster="east", namespaces=["shop"]),
            target=Target(cluster="west"),
            itinerary=["echo"],
            labels={"demo": "backbone"},
        )
        request_id = await client.submit(request)
        console.print(f"submitted [bold]{request_id}[/bold]")
        async for _, event in client.events(request_id):
            console.print(f"  {escape(describe(event))}")
        state = await client.get(request_id)
        return state.phase
    finally:
        await nc.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument(
        "--keep", action="store_true", help="leave everything running and say how to reach it"
    )
    parser.add_argument("--dir", type=Path, help="where to keep state and logs (default: a temp dir)")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        root = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ferry-demo-")))
        console.print("[bold]Ferry demo[/bold]: starting nats-server (JetStream) and SeaweedFS (S3)…")
        running = stack.enter_context(local_stack(root / "stack"))
        console.print(f"  NATS {running.nats_url}   S3 {running.s3.endpoint}")
        env = {"FERRY_NATS_URL": running.nats_url, "FERRY_LOG_FORMAT": "json"}
        services = [ServiceProcess(m, env, root / "logs") for m in ("services.intake", "services.demo.echo")]
        for service in services:
            stack.callback(service.stop)
            service.start()
        wait_ready(services)
        console.print(f"  services up: {', '.join(s.name for s in services)} (logs in {root / 'logs'})")
        phase = asyncio.run(push_stub_request(running.nats_url))
        console.print(f"request finished: [bold]{phase.value}[/bold]")
        if args.keep:
            console.print(
                f"\nLeft running (Ctrl-C to stop): NATS {running.nats_url}, S3 {running.s3.endpoint}"
            )
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(asyncio.Event().wait())
        return 0 if phase is Phase.COMPLETED else 1
    return 1
