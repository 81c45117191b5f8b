"""The local stack launcher starts real servers, reports where they answer, and stops them."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import pytest

from sandbox.localstack import LocalStack, NatsServer, StackError, local_stack


def _answers(url: str) -> bool:
    host, port = url.split("//")[1].rsplit(":", 1)
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_session_stack_answers(stack: LocalStack) -> None:
    assert _answers(stack.nats_url)
    assert stack.nats is not None
    with urllib.request.urlopen(f"{stack.nats.monitor_url}/jsz", timeout=2) as response:
        assert b"config" in response.read()


def test_nats_restart_keeps_port(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "n").start()
    try:
        url = server.url
        server.restart()
        assert server.url == url
        assert _answers(url)
    finally:
        server.stop()
    assert not _answers(url)


def test_env_vars_point_at_running_servers(stack: LocalStack) -> None:
    env = {
        "FERRY_NATS_URL": stack.nats_url,
        "FERRY_S3_ENDPOINT": stack.s3.endpoint,
        "FERRY_S3_ACCESS_KEY": stack.s3.access_key,
        "FERRY_S3_SECRET_KEY": stack.s3.secret_key,
    }
    with local_stack(env=env) as reused:
        assert reused.nats is None and reused.seaweed is None
        assert reused.nats_url == stack.nats_url
        assert reused.s3 == stack.s3


def test_failed_start_names_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sandbox.localstack.processes.READY_TIMEOUT", 5)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = NatsServer(tmp_path / "n", port=taken.getsockname()[1])
        with pytest.raises(StackError, match="nats-server"):
            server.start()
        server.stop()
