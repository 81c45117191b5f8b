"""JSON log lines that carry the request id and step, with secrets redacted.

The request id lives in a context variable set by the step runner, so every line logged while a step
runs — by Ferry or by a library — names its request. Known secret values (passwords, tokens) are
replaced by ``***`` before a line is written: Secrets never reach the logs.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("ferry_request_id", default="")
step_var: contextvars.ContextVar[str] = contextvars.ContextVar("ferry_step", default="")


@contextlib.contextmanager
def request_context(request_id: str, step: str = "") -> Iterator[None]:
    tokens = (request_id_var.set(request_id), step_var.set(step))
    try:
        yield
    finally:
        request_id_var.reset(tokens[0])
        step_var.reset(tokens[1])


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.service = service
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if rid := request_id_var.get():
            doc["request_id"] = rid
        if step := step_var.get():
            doc["step"] = step
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return self.redact(json.dumps(doc, ensure_ascii=False))


class TextFormatter(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        rid = request_id_var.get()
        prefix = f"[{rid}{'/' + step_var.get() if step_var.get() else ''}] " if rid else ""
        line = f"{record.levelname.lower():7} {self.service}: {prefix}{record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return self.redact(line)


def setup_logging(service: str, level: str = "INFO", fmt: str = "json", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter((JsonFormatter if fmt == "json" else TextFormatter)(service, secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("nats").setLevel(logging.WARNING)
