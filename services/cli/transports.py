"""How ``ferry`` reaches Ferry: the gateway over HTTP, or the bus straight over NATS.

Both transports offer the same calls and return the same contract types (``RequestState``,
``Event``...), so every command is written once. The gateway transport follows events over SSE and
reconnects with ``Last-Event-ID`` when the connection drops, so a long watch survives a gateway
restart or a load balancer's idle timeout. The bus transport is ``shared.bus.client.BusClient``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol

import aiohttp
import msgspec

from shared.bus.client import BusClient, RequestRejected
from shared.bus.connecting import connect
from shared.bus.micro import NoRespondersError
from shared.bus.micro import ReplyTimeout as NatsTimeout
from shared.contracts import subjects
from shared.contracts.drills import DrillList, DrillReport, list_decoder, report_decoder
from shared.contracts.errors import CodedError, FerryError, Forbidden, Unauthorized, error_for, from_status
from shared.contracts.events import Event, PhaseChanged, event_decoder
from shared.contracts.migrations import MigrationPlan
from shared.contracts.policies import PolicyDeleted, PolicyList, PolicyState
from shared.contracts.states import Accepted, ListQuery, Rejected, RequestList, RequestState, reply_decoder
from shared.retrying import RetryPolicy, delay, retrying
from shared.runtime import load_settings

_state = msgspec.json.Decoder(RequestState)
_list = msgspec.json.Decoder(RequestList)
Plans = list[MigrationPlan]  # an alias: the classes below have a method named `list`
_plans = msgspec.json.Decoder(Plans)
_accepted = msgspec.json.Decoder(Accepted)
_policy = msgspec.json.Decoder(PolicyState)
_policies = msgspec.json.Decoder(PolicyList)
_deleted = msgspec.json.Decoder(PolicyDeleted)
POLICY_ACTIONS = ("pause", "resume", "failover", "failback")  # each answers the PolicyState after it


# While the gateway is unreachable (a replica restarting), a read is tried 6 times, waiting 0.5 s
# growing to 3 s (about 7.5 s in all); a lost event stream is reconnected up to 6 times in a row
# (about 10.5 s). No jitter: one client, whose waits are what a person expects.
READ_RETRY = RetryPolicy(attempts=6, initial=0.5, multiplier=1.6, maximum=3.0, jitter=0.0)
STREAM_RETRY = dataclasses.replace(READ_RETRY, attempts=7)


class CliError(Exception):
    """Anything that stops a command which is not a usage error; exit code 1."""


class Unreachable(CliError):
    """The gateway did not answer at all (connection refused, reset, timeout): worth retrying."""


class Transport(Protocol):
    async def submit(self, payload: bytes) -> Accepted: ...
    async def get(self, request_id: str) -> RequestState: ...
    async def list(self, query: ListQuery) -> list[RequestState]: ...
    async def cancel(self, request_id: str) -> RequestState: ...
    async def rollback(self, request_id: str) -> Accepted: ...
    async def migrations(self) -> Plans: ...
    def events(self, request_id: str, after: int = 0) -> AsyncIterator[tuple[int, Event]]: ...
    async def snapshots(
        self, snapshot_id: str | None, query: dict[str, str], delete: bool = False
    ) -> Any: ...
    async def clusters(self) -> Any: ...
    async def document(self, request_id: str, name: str) -> bytes: ...
    async def retain(self, query: dict[str, Any]) -> Any: ...
    async def policy_create(self, body: bytes) -> PolicyState: ...
    async def policy_get(self, name: str) -> PolicyState: ...
    async def policy_list(self) -> PolicyList: ...
    async def policy_act(self, name: str, action: str) -> PolicyState: ...
    async def policy_delete(self, name: str) -> PolicyDeleted: ...
    async def policy_drill(self, name: str, snapshot: str, keep: bool) -> Accepted: ...
    async def drills(self, policy: str, limit: int) -> DrillList: ...
    async def drill_report(self, drill_id: str) -> DrillReport: ...
    async def close(self) -> None: ...


def said(error: CodedError, *, over_http: bool = False) -> str:
    """A rejection as one line for people: the message, the field when it does not name it already;
    from the gateway also what to do about a refused token, or the HTTP status."""
    text = str(error)
    if error.field and error.field not in text:
        text = f"{text} (field {error.field})"
    if not over_http:
        return text
    if isinstance(error, Unauthorized):
        return f"the gateway refused the token ({text}): set FERRY_TOKEN"
    if isinstance(error, Forbidden):
        return f"not allowed: {text}"
    return f"{text} (HTTP {error.status})"


def gateway_error(status: int, body: bytes) -> CodedError:
    """The taxonomy's error for a gateway's answer: its status says the kind (a proxy's page in front
    of the gateway has a status, not a code), its ``ErrorBody`` what and where."""
    try:
        doc = json.loads(body)
        return from_status(status, str(doc.get("error", "")), field=str(doc.get("field", "")))
    except (ValueError, AttributeError):
        return from_status(status, body.decode(errors="replace")[:200])


# --- the gateway ------------------------------------------------------------------------------------
class GatewayTransport:
    def __init__(self, url: str, token: str, timeout: float) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.session = aiohttp.ClientSession(headers=headers)

    async def _call(
        self, method: str, path: str, *, data: bytes | None = None, params: dict[str, str] | None = None
    ) -> bytes:
        """One call; reads (GET) are retried while the gateway is unreachable (a replica restarting)."""
        if method != "GET":
            return await self._call_once(method, path, data=data, params=params)
        again = retrying(READ_RETRY, retry_on=Unreachable, what=f"GET {path}")
        return await again(self._call_once, method, path, data=data, params=params)

    async def _call_once(
        self, method: str, path: str, *, data: bytes | None, params: dict[str, str] | None
    ) -> bytes:
        try:
            async with self.session.request(
                method,
                self.url + path,
                data=data,
                params=params,
                headers={"Content-Type": "application/json"} if data is not None else None,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                body = await response.read()
                if response.status >= 400:
                    raise CliError(said(gateway_error(response.status, body), over_http=True))
                return body
        except aiohttp.ClientError as e:
            raise Unreachable(f"cannot reach the gateway at {self.url}: {e}") from None
        except TimeoutError:
            raise Unreachable(f"the gateway at {self.url} did not answer within {self.timeout}s") from None

    async def submit(self, payload: bytes) -> Accepted:
        reply: Accepted | Rejected = reply_decoder.decode(
            await self._call("POST", "/v1/requests", data=payload)
        )
        if isinstance(reply, Rejected):
            raise CliError(said(reply.as_error()))
        return reply

    async def get(self, request_id: str) -> RequestState:
        return _state.decode(await self._call("GET", f"/v1/requests/{request_id}"))

    async def list(self, query: ListQuery) -> list[RequestState]:
        """Every page up to ``query.limit`` requests (the gateway pages by size too: ``next``)."""
        items: list[RequestState] = []
        wanted = query.limit
        while len(items) < wanted:
            params = {k: str(v) for k, v in msgspec.structs.asdict(query).items() if v}
            page = _list.decode(await self._call("GET", "/v1/requests", params=params))
            items += page.items
            if not page.next or not page.items:
                break
            query = msgspec.structs.replace(query, cursor=page.next, limit=wanted - len(items))
        return items[:wanted]

    async def cancel(self, request_id: str) -> RequestState:
        return _state.decode(await self._call("POST", f"/v1/requests/{request_id}/cancel"))

    async def rollback(self, request_id: str) -> Accepted:
        return _accepted.decode(await self._call("POST", f"/v1/requests/{request_id}/rollback"))

    async def migrations(self) -> Plans:
        return _plans.decode(await self._call("GET", "/v1/migrations"))

    async def events(self, request_id: str, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """SSE frames as (sequence, event) until the final phase.

        A dropped stream (a gateway replica restarting, a proxy's idle timeout) is resumed from the
        last id seen with ``Last-Event-ID``; a stream that ends without a final phase is checked
        against the request's state, so a finished request does not reconnect forever.
        """
        last, failures = after, 0
        while True:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(last)}
            try:
                async with self.session.get(
                    f"{self.url}/v1/requests/{request_id}/events",
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout),
                ) as response:
                    if response.status >= 400:
                        error = gateway_error(response.status, await response.read())
                        raise CliError(said(error, over_http=True))
                    seq, data = 0, ""
                    async for raw in response.content:
                        line = raw.decode().rstrip("\r\n")
                        if line.startswith("id: "):
                            seq = int(line[4:])
                        elif line.startswith("data: "):
                            data = line[6:]
                        elif not line and data:
                            event = event_decoder.decode(data)
                            last, data, failures = seq, "", 0
                            yield seq, event
                            if isinstance(event, PhaseChanged) and event.phase.final:
                                return
                if (await self.get(request_id)).phase.final:
                    return  # the history ended and the request is over
                raise Unreachable("the event stream ended before the request did")
            except (
                aiohttp.ClientPayloadError,
                aiohttp.ClientConnectionError,
                TimeoutError,
                Unreachable,
            ) as e:
                failures += 1
                if failures >= STREAM_RETRY.attempts:
                    raise CliError(f"lost the event stream from {self.url}: {e}") from None
                await asyncio.sleep(delay(STREAM_RETRY, failures))

    async def snapshots(self, snapshot_id: str | None, query: dict[str, str], delete: bool = False) -> Any:
        if snapshot_id is None:
            return json.loads(await self._call("GET", "/v1/snapshots", params=query))
        method = "DELETE" if delete else "GET"
        params = {"repository": query["repository"]} if query.get("repository") else None
        return json.loads(await self._call(method, f"/v1/snapshots/{snapshot_id}", params=params))

    async def clusters(self) -> Any:
        return json.loads(await self._call("GET", "/v1/clusters"))

    async def document(self, request_id: str, name: str) -> bytes:
        return await self._call("GET", f"/v1/requests/{request_id}/documents/{name}")

    async def retain(self, query: dict[str, Any]) -> Any:
        return json.loads(
            await self._call("POST", "/v1/snapshots/retention", data=json.dumps(query).encode())
        )

    async def policy_create(self, body: bytes) -> PolicyState:
        return _policy.decode(await self._call("POST", "/v1/policies", data=body))

    async def policy_get(self, name: str) -> PolicyState:
        return _policy.decode(await self._call("GET", f"/v1/policies/{_quoted(name)}"))

    async def policy_list(self) -> PolicyList:
        return _policies.decode(await self._call("GET", "/v1/policies"))

    async def policy_act(self, name: str, action: str) -> PolicyState:
        assert action in POLICY_ACTIONS
        return _policy.decode(await self._call("POST", f"/v1/policies/{_quoted(name)}/{action}"))

    async def policy_delete(self, name: str) -> PolicyDeleted:
        return _deleted.decode(await self._call("DELETE", f"/v1/policies/{_quoted(name)}"))

    async def policy_drill(self, name: str, snapshot: str, keep: bool) -> Accepted:
        body = msgspec.json.encode({"snapshot": snapshot, "keep": keep})
        return _accepted.decode(await self._call("POST", f"/v1/policies/{_quoted(name)}/drill", data=body))

    async def drills(self, policy: str, limit: int) -> DrillList:
        params = {"limit": str(limit), **({"policy": policy} if policy else {})}
        return list_decoder.decode(await self._call("GET", "/v1/drills", params=params))

    async def drill_report(self, drill_id: str) -> DrillReport:
        return report_decoder.decode(await self._call("GET", f"/v1/drills/{_quoted(drill_id)}"))

    async def close(self) -> None:
        await self.session.close()


# --- the bus --------------------------------------------------------------------------------------
class BusTransport:
    """Straight to NATS; credentials and TLS come from FERRY_NATS_* like the services' own."""

    def __init__(self, client: BusClient, kubeconfig: str = "") -> None:
        self.client = client
        self.kubeconfig = kubeconfig

    @classmethod
    async def open(cls, url: str, call_timeout: float, kubeconfig: str = "") -> BusTransport:
        nats_settings = msgspec.structs.replace(load_settings().nats, url=url, name="ferry-cli")
        try:
            nc = await connect(nats_settings, max_reconnects=3)
        except FerryError as e:
            raise CliError(str(e)) from None
        return cls(BusClient(nc, timeout=call_timeout), kubeconfig)

    async def _guard(self, call: Any) -> Any:
        try:
            return await call
        except RequestRejected as e:
            raise CliError(said(e.rejected.as_error())) from None
        except FerryError as e:
            raise CliError(str(e)) from None

    async def submit(self, payload: bytes) -> Accepted:
        reply = await self._guard(self.client.submit_raw(payload))
        if isinstance(reply, Rejected):
            raise CliError(said(reply.as_error()))
        return reply  # type: ignore[no-any-return]

    async def get(self, request_id: str) -> RequestState:
        return await self._guard(self.client.get(request_id))  # type: ignore[no-any-return]

    async def list(self, query: ListQuery) -> list[RequestState]:
        return await self._guard(self.client.list(query))  # type: ignore[no-any-return]

    async def cancel(self, request_id: str) -> RequestState:
        return await self._guard(self.client.cancel(request_id))  # type: ignore[no-any-return]

    async def rollback(self, request_id: str) -> Accepted:
        return await self._guard(self.client.rollback(request_id))  # type: ignore[no-any-return]

    async def migrations(self) -> Plans:
        return await self._guard(self.client.migrations())  # type: ignore[no-any-return]

    async def events(self, request_id: str, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        state = await self.get(request_id)
        async for item in self.client.events(request_id, after=after, follow=not state.phase.final):
            yield item

    async def snapshots(self, snapshot_id: str | None, query: dict[str, str], delete: bool = False) -> Any:
        if snapshot_id is None:
            subject, payload = subjects.SNAPSHOTS_LIST, msgspec.json.encode(query)
        else:
            subject = subjects.SNAPSHOTS_DELETE if delete else subjects.SNAPSHOTS_DESCRIBE
            payload = snapshot_id.encode()
            if query.get("repository"):
                payload = msgspec.json.encode({"id": snapshot_id, "repository": query["repository"]})
        return await self._ask(subject, payload)

    async def _ask(self, subject: str, payload: bytes) -> Any:
        """A request to the snapshot service's catalog; a rejection becomes the CLI's error."""
        try:
            reply = await self.client.nc.request(subject, payload, timeout=self.client.timeout)
        except NoRespondersError:
            raise CliError(f"no snapshot service answers on {subject}: is it running?") from None
        except (NatsTimeout, TimeoutError):
            raise CliError(f"no reply on {subject} within {self.client.timeout}s") from None
        doc = json.loads(reply.data)
        if isinstance(doc, dict) and doc.get("type") == "rejected":
            error = error_for(
                str(doc.get("code", "")), str(doc.get("error")), field=str(doc.get("field", ""))
            )
            raise CliError(said(error))
        return doc

    async def document(self, request_id: str, name: str) -> bytes:
        return await self._guard(self.client.document(request_id, name))  # type: ignore[no-any-return]

    async def retain(self, query: dict[str, Any]) -> Any:
        return await self._ask(subjects.SNAPSHOTS_RETAIN, msgspec.json.encode(query))

    async def clusters(self) -> Any:
        """No gateway to ask: the local kubeconfig's contexts, probed from here (as the gateway does)."""
        from shared.kube.probing import (
            KubeconfigUnreadable,
            probe_clusters,
        )  # the Kubernetes client: only here

        try:
            return msgspec.to_builtins(await probe_clusters(self.kubeconfig))
        except KubeconfigUnreadable as e:
            raise CliError(str(e)) from None

    async def policy_create(self, body: bytes) -> PolicyState:
        return await self._guard(self.client.policy_create(body))  # type: ignore[no-any-return]

    async def policy_get(self, name: str) -> PolicyState:
        return await self._guard(self.client.policy_get(name))  # type: ignore[no-any-return]

    async def policy_list(self) -> PolicyList:
        return await self._guard(self.client.policy_list())  # type: ignore[no-any-return]

    async def policy_act(self, name: str, action: str) -> PolicyState:
        calls = {
            "pause": self.client.policy_pause,
            "resume": self.client.policy_resume,
            "failover": self.client.policy_failover,
            "failback": self.client.policy_failback,
        }
        return await self._guard(calls[action](name))  # type: ignore[no-any-return]

    async def policy_delete(self, name: str) -> PolicyDeleted:
        return await self._guard(self.client.policy_delete(name))  # type: ignore[no-any-return]

    async def policy_drill(self, name: str, snapshot: str, keep: bool) -> Accepted:
        call = self.client.policy_drill(name, snapshot=snapshot, keep=keep)
        return await self._guard(call)  # type: ignore[no-any-return]

    async def drills(self, policy: str, limit: int) -> DrillList:
        return await self._guard(self.client.drills(policy, limit=limit))  # type: ignore[no-any-return]

    async def drill_report(self, drill_id: str) -> DrillReport:
        return await self._guard(self.client.drill_report(drill_id))  # type: ignore[no-any-return]

    async def close(self) -> None:
        await self.client.nc.close()


def _quoted(name: str) -> str:
    """A name in a URL path, escaped (the gateway answers 404 for one that is not a policy name)."""
    return urllib.parse.quote(name, safe="")


def gateway_token(args: Any) -> str:
    if not args.token_file:
        return os.environ.get("FERRY_TOKEN", "")
    try:
        return Path(args.token_file).read_text().strip()
    except OSError as e:
        raise CliError(f"cannot read --token-file {args.token_file}: {e.strerror}") from None


async def open_transport(args: Any) -> Transport:
    """--bus wins over --url; the gateway token comes from --token-file or $FERRY_TOKEN."""
    if args.bus:
        return await BusTransport.open(args.bus, args.timeout, getattr(args, "kubeconfig", "") or "")
    if not args.url:
        raise CliError("say where Ferry runs: --url / $FERRY_URL (the gateway) or --bus / $FERRY_BUS (NATS)")
    return GatewayTransport(args.url, await asyncio.to_thread(gateway_token, args), args.timeout)
