"""One HTTP exchange with an API server: auth from the kubeconfig, errors typed, retries with backoff.

Everything goes through ``ApiClient.call_api`` with ``_preload_content=False``: the client library
signs the request (tokens, exec plugins, client certificates, CA from the kubeconfig) and hands back
the raw aiohttp response, and this module reads it. So no typed model, no DynamicClient and no
``ApiException`` is involved — the traps listed in docs (a ``kind: Status`` body returned as data,
wrong default patch content types, a shared discovery cache file) cannot occur. A ``Status`` body is
never returned as an object: a failure raises (``errors.error_for``), a success ``Status`` (what a
DELETE of most built-ins answers) is returned only by ``request(..., allow_status=True)``.

Retries follow Ferry's one policy (``shared.retrying``): 429 and 5xx and connection failures are
retried with exponential backoff and jitter, honouring ``Retry-After`` (capped at the policy's
``maximum``); every retry is logged as ``attempt n/N``. A conflict (409) or an expired version (410)
is temporary for the step but never retried here: the caller must read again first. Writes are
retried too — a create that reached the server before the connection broke answers ``AlreadyExists``
on the retry, which callers handle like any other conflict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp
from kubernetes_asyncio.client import ApiClient

from shared.contracts.errors import TemporaryError
from shared.kube.errors import ApiError, Unreachable, error_for, is_status
from shared.retrying import RetryPolicy as RetryPolicy  # re-exported: callers of shared.kube pass one
from shared.retrying import retrying

log = logging.getLogger("ferry.kube")

JSON = "application/json"
Query = Sequence[tuple[str, str | int]] | Mapping[str, str | int | None] | None


KUBE_RETRY = RetryPolicy(attempts=5)  # waits 0.1-0.2, 0.2-0.4, 0.4-0.8, 0.8-1.6 s: ~3 s at most


def worth_retrying(error: BaseException) -> bool:
    """Whether a request is sent again: temporary API errors and lost connections, but not a
    conflict or an expired version (409, 410), which only a fresh read can resolve."""
    return (
        isinstance(error, ApiError | Unreachable)
        and isinstance(error, TemporaryError)
        and error.status not in (409, 410)
    )


def _query(query: Query) -> list[tuple[str, str]]:
    if query is None:
        return []
    items = query.items() if isinstance(query, Mapping) else query
    out = []
    for key, value in items:
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append((key, str(value)))
    return out


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        return None


class Transport:
    """Requests against one cluster's API server through its (single, long-lived) ApiClient."""

    def __init__(self, api: ApiClient, cluster: str, *, retry: RetryPolicy | None = None) -> None:
        self.api = api
        self.cluster = cluster
        self.retry = retry or KUBE_RETRY
        self.timeout = 30.0

    @property
    def host(self) -> str:
        return str(self.api.configuration.host)

    async def _send(
        self,
        method: str,
        path: str,
        *,
        query: Query,
        body: Any,
        content_type: str,
        deadline: float | aiohttp.ClientTimeout | None,
        accept: str = JSON,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": accept, "Content-Type": content_type}
        try:
            response: aiohttp.ClientResponse = await self.api.call_api(
                path,
                method,
                query_params=_query(query),
                header_params=headers,
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _request_timeout=deadline or self.timeout,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise Unreachable(
                f"cluster {self.cluster} is unreachable at {self.host}: {e or type(e).__name__}",
                cluster=self.cluster,
            ) from e
        return response

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Query = None,
        body: Any = None,
        content_type: str = JSON,
        request_timeout: float | None = None,
        allow_status: bool = False,
        raw: bool = False,
        what: str = "",
    ) -> Any:
        """Send one request (retried when worth it); return the decoded JSON body (or text if raw)."""
        loop = retrying(
            self.retry, retry_on=worth_retrying, what=f"{method} {path} on {self.cluster}", logger=log
        )
        return await loop(
            self._once, method, path, query, body, content_type, request_timeout, allow_status, raw, what
        )

    async def _once(
        self,
        method: str,
        path: str,
        query: Query,
        body: Any,
        content_type: str,
        request_timeout: float | None,
        allow_status: bool,
        raw: bool,
        what: str,
    ) -> Any:
        response = await self._send(
            method, path, query=query, body=body, content_type=content_type, deadline=request_timeout
        )
        try:
            text = await response.text()
        except (aiohttp.ClientError, OSError, TimeoutError) as e:
            raise Unreachable(
                f"cluster {self.cluster} broke the connection at {self.host}: {e}", cluster=self.cluster
            ) from e
        finally:
            response.release()
        if response.status >= 400:
            try:
                doc: Any = json.loads(text)
            except ValueError:
                doc = text.strip()
            error = error_for(response.status, doc, cluster=self.cluster, what=what)
            error.retry_after = _retry_after(response.headers)
            raise error
        if raw:
            return text
        try:
            doc = json.loads(text) if text else {}
        except ValueError as e:
            raise error_for(502, f"not JSON from {path}: {text[:200]}", cluster=self.cluster) from e
        if is_status(doc):
            if doc.get("status") == "Failure":
                raise error_for(int(doc.get("code") or 500), doc, cluster=self.cluster, what=what)
            if not allow_status:
                return None
        return doc

    async def lines(
        self, path: str, *, query: Query = None, read_timeout: float = 3600.0
    ) -> AsyncIterator[bytes]:
        """Stream a response line by line (watch events, followed logs); errors raise before the first."""
        response = await self._send(
            "GET",
            path,
            query=query,
            body=None,
            content_type=JSON,
            deadline=aiohttp.ClientTimeout(connect=10.0, sock_connect=10.0, sock_read=read_timeout),
        )
        try:
            if response.status >= 400:
                text = await response.text()
                try:
                    doc: Any = json.loads(text)
                except ValueError:
                    doc = text.strip()
                raise error_for(response.status, doc, cluster=self.cluster)
            while True:
                try:
                    line = await response.content.readline()
                except (aiohttp.ClientError, OSError, TimeoutError) as e:
                    raise Unreachable(
                        f"stream from cluster {self.cluster} broke: {e or type(e).__name__}",
                        cluster=self.cluster,
                    ) from e
                if not line:
                    return
                yield line
        finally:
            response.release()
