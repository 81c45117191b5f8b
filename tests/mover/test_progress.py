"""A mover's progress where it is watched: events over NATS in Ferry's contract, a bar on a terminal."""

from __future__ import annotations

import asyncio
import base64
import fcntl
import json
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import nats
import pytest

from sandbox.localstack import LocalStack, NatsServer
from shared.bus import ensure_topology
from shared.contracts import Progress, subjects
from shared.contracts.errors import PermanentError
from shared.contracts.events import event_decoder
from shared.runtime import load_settings, movers
from tests.repository.trees import random_files


async def test_a_backup_publishes_progress_events_for_its_request(
    stack: LocalStack, tmp_path: Path, unique: str
) -> None:
    random_files(tmp_path / "src", 8, 500_000)
    env = {**os.environ, "FERRY_REPO": str(tmp_path / "repo"), "FERRY_REPO_PASSWORD": "pw"}
    client = await nats.connect(stack.nats_url)
    try:
        await ensure_topology(client.jetstream())
        events: list[Progress] = []

        async def received(msg: nats.aio.msg.Msg) -> None:
            event = event_decoder.decode(msg.data)
            assert isinstance(event, Progress)
            events.append(event)

        request_id = f"req-{unique}"
        await client.subscribe(subjects.event_subject(request_id, "progress"), cb=received)
        for args in (["init"], ["backup", str(tmp_path / "src"), "--name", "data-0", "--step", "snapshot",
                                "--nats-url", stack.nats_url, "--request-id", request_id]):  # fmt: skip
            job = await asyncio.create_subprocess_exec(sys.executable, "-m", "shared.mover", *args, env=env)
            assert await job.wait() == 0
        for _ in range(100):
            if events:
                break
            await asyncio.sleep(0.05)
    finally:
        await client.drain()
    last = events[-1]
    assert last.request_id == request_id and last.volume == "data-0" and last.step == "snapshot"
    assert last.bytes_done == last.bytes_total == 4_000_000
    assert last.items_done == last.items_total == 8


async def test_a_mover_reaches_a_bus_that_requires_a_token_with_the_env_its_job_gets(
    tmp_path: Path, unique: str
) -> None:
    """The credentials the services use reach the mover Job (shared.runtime.movers), so progress is
    not lost where NATS requires auth — as the deploy base does."""
    token = f"tok-{unique}"
    server = NatsServer(tmp_path / "nats", extra_args=("--auth", token)).start()
    try:
        random_files(tmp_path / "src", 3, 100_000)
        settings = load_settings(
            {"FERRY_NATS_URL": server.url, "FERRY_NATS_TOKEN": token, "FERRY_REPO_PASSWORD": "pw"}
        )
        job = movers.mover_job(
            settings, name="m", namespace="ns", claim="c", args=[], repository_url=str(tmp_path / "repo"),
            secret="creds", request_id=f"req-{unique}", labels={}, read_only=True,
        )  # fmt: skip
        secret = movers.credentials_secret(settings, name="creds", namespace="ns", labels={})
        env = dict(os.environ)
        for var in job["spec"]["template"]["spec"]["containers"][0]["env"]:  # what the kubelet would set
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                key = var["valueFrom"]["secretKeyRef"]["key"]
                env[var["name"]] = base64.b64decode(secret["data"][key]).decode()
        client = await nats.connect(server.url, token=token)
        try:
            await ensure_topology(client.jetstream())
            seen: list[Progress] = []
            sub = await client.subscribe(subjects.event_subject(f"req-{unique}", "progress"))
            for args in (
                ["init"],
                ["backup", str(tmp_path / "src"), "--name", "data-0", "--step", "snapshot"],
            ):
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "shared.mover", *args, env=env
                )
                assert await proc.wait() == 0
            msg = await sub.next_msg(timeout=10)
            event = event_decoder.decode(msg.data)
            assert isinstance(event, Progress)
            seen.append(event)
        finally:
            await client.close()  # drain would wait 30 s on the progress events nobody reads
    finally:
        server.stop()
    assert seen[0].request_id == f"req-{unique}" and seen[0].volume == "data-0"


def test_a_mover_job_holds_no_secret_and_mounts_the_files_its_settings_name(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nnot-really\n-----END CERTIFICATE-----\n")
    creds = tmp_path / "ferry.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\njwt\n")
    settings = load_settings(
        {
            "FERRY_NATS_URL": "tls://nats.ferry.svc:4222",
            "FERRY_NATS_CREDS": str(creds),
            "FERRY_NATS_TLS_CA": str(ca),
            "FERRY_NATS_PASSWORD": "nats-password-value",
            "FERRY_S3_SECRET_KEY": "s3-secret-value",
            "FERRY_S3_PATH_STYLE": "false",
            "FERRY_REPO_PASSWORD": "repo-password-value",
        }
    )
    job = movers.mover_job(
        settings, name="m", namespace="ns", claim="data", args=["restore", "s1", "/data"],
        repository_url="s3://b/r", secret="creds", request_id="r1", labels={"a": "b"}, read_only=False,
    )  # fmt: skip
    text = json.dumps(job)
    for value in ("nats-password-value", "s3-secret-value", "repo-password-value", "not-really", "jwt"):
        assert value not in text
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {v["name"]: v.get("value", v.get("valueFrom")) for v in container["env"]}
    assert env["FERRY_NATS_CREDS"] == f"{movers.FILES_MOUNT}/nats.creds"
    assert env["FERRY_NATS_TLS_CA"] == f"{movers.FILES_MOUNT}/nats-ca.pem"
    assert env["FERRY_S3_VIRTUAL_HOST"] == "1"
    assert env["FERRY_NATS_PASSWORD"] == {"secretKeyRef": {"name": "creds", "key": "FERRY_NATS_PASSWORD"}}
    assert container["resources"]["limits"]["memory"] == "768Mi"
    assert {"name": "mover-files", "mountPath": movers.FILES_MOUNT, "readOnly": True} in container[
        "volumeMounts"
    ]
    secret = movers.credentials_secret(settings, name="creds", namespace="ns", labels={})
    assert base64.b64decode(secret["data"]["nats.creds"]) == creds.read_bytes()
    assert base64.b64decode(secret["data"]["FERRY_REPO_PASSWORD"]) == b"repo-password-value"


def test_a_file_setting_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    settings = load_settings({"FERRY_S3_CA_BUNDLE": str(tmp_path / "missing.pem")})
    with pytest.raises(PermanentError, match="FERRY_S3_CA_BUNDLE=.*missing.pem"):
        movers.credentials_secret(settings, name="creds", namespace="ns", labels={})


def _on_a_terminal(args: list[str], env: dict[str, str], columns: int = 160) -> tuple[int, str]:
    """Run ``ferry-mover`` with stderr on a pseudo-terminal; its exit code and what the terminal got."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    job = subprocess.Popen([sys.executable, "-m", "shared.mover", *args], env=env,
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave)  # fmt: skip
    os.close(slave)
    received, deadline = bytearray(), time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every holder of the terminal's other end has closed it
                    break
                if not data:
                    break
                received += data
            elif job.poll() is not None:
                break
    finally:
        os.close(master)
    return job.wait(timeout=10), received.decode(errors="replace")


def test_a_backup_on_a_terminal_shows_bytes_files_and_rate(tmp_path: Path) -> None:
    random_files(tmp_path / "src", 12, 500_000)
    env = {**os.environ, "FERRY_REPO": str(tmp_path / "repo"), "FERRY_REPO_PASSWORD": "pw", "TERM": "xterm"}
    for unset in ("NO_COLOR", "COLUMNS", "LINES", "TERM_PROGRAM"):
        env.pop(unset, None)
    init = subprocess.run([sys.executable, "-m", "shared.mover", "init"], env=env, capture_output=True)
    assert init.returncode == 0, init.stderr
    code, screen = _on_a_terminal(["backup", str(tmp_path / "src"), "--limit-upload", "3072"], env)
    assert code == 0, screen
    frames = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen).replace("\n", "\r").split("\r")
    bars = [frame for frame in frames if frame.startswith("backup src ")]
    assert bars, f"no progress bar on the terminal: {screen!r}"
    assert re.search(r"6\.0/6\.0 MB +\d+(\.\d+)? [kM]?B/s +12/12 files", bars[-1]), (
        f"the last frame shows bytes, rate and files: {bars[-1]!r}"
    )
    assert any(re.match(r"snapshot [0-9a-f]{8} saved: 12 files", frame) for frame in frames)

    logged = subprocess.run([sys.executable, "-m", "shared.mover", "backup", str(tmp_path / "src")], env=env,
                            capture_output=True, text=True)  # fmt: skip
    assert logged.returncode == 0 and "/12 files" not in logged.stderr and "\x1b[" not in logged.stderr, (
        f"in a Job log (stderr not a terminal) only the summary: {logged.stderr!r}"
    )
