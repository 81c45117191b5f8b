"""The token controller: a ServiceAccount token Secret gets its ``token``, ``ca.crt`` and ``namespace``.

As kube-controller-manager's TokensController does for a Secret of type
``kubernetes.io/service-account-token`` annotated ``kubernetes.io/service-account.name``: once the
ServiceAccount exists, the Secret is filled (a JWT-shaped token naming the account, the cluster's
CA bundle, the namespace) and annotated with the account's uid. A Secret naming an account that
does not exist waits for it (the real controller would eventually delete it).
"""

from __future__ import annotations

import base64
import json
import secrets as random_bytes
from typing import Any

from sandbox.controllers import Controller, Key
from sandbox.controllers.namespaces import ROOT_CA
from sandbox.server.storage import Event, clone

SECRETS, ACCOUNTS = "secrets", "serviceaccounts"
TOKEN_TYPE = "kubernetes.io/service-account-token"
NAME, UID = "kubernetes.io/service-account.name", "kubernetes.io/service-account.uid"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _jwt(namespace: str, secret: str, account: str, uid: str) -> str:
    """A token shaped like the legacy service-account JWT (its signature is not a real one)."""

    def part(doc: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")

    claims = {
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": secret,
        "kubernetes.io/serviceaccount/service-account.name": account,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
        "sub": f"system:serviceaccount:{namespace}:{account}",
    }
    signature = base64.urlsafe_b64encode(random_bytes.token_bytes(64)).decode().rstrip("=")
    return f"{part({'alg': 'RS256', 'kid': 'sandbox'})}.{part(claims)}.{signature}"


class TokenController(Controller):
    name = "tokens"
    resources = (SECRETS, ACCOUNTS)

    def keys_for(self, event: Event) -> list[Key]:
        meta = event.obj["metadata"]
        ns = meta.get("namespace", "")
        if event.resource == SECRETS:
            return [(SECRETS, ns, meta["name"])] if event.obj.get("type") == TOKEN_TYPE else []
        return [
            (SECRETS, ns, s["metadata"]["name"])
            for s in self.store.items(SECRETS, ns)
            if s.get("type") == TOKEN_TYPE
            and (s["metadata"].get("annotations") or {}).get(NAME) == meta["name"]
        ]

    async def reconcile(self, resource: str, namespace: str, name: str) -> float | None:
        secret = self.store.get(SECRETS, namespace, name)
        if secret is None or secret["metadata"].get("deletionTimestamp") or secret.get("type") != TOKEN_TYPE:
            return None
        annotations = secret["metadata"].get("annotations") or {}
        account = self.store.get(ACCOUNTS, namespace, annotations.get(NAME, ""))
        data = secret.get("data") or {}
        if account is None or (data.get("token") and annotations.get(UID) == account["metadata"]["uid"]):
            return None
        uid = account["metadata"]["uid"]
        new = clone(secret)
        new["metadata"].pop("resourceVersion", None)
        new["metadata"].setdefault("annotations", {})[UID] = uid
        new["data"] = {
            **data,
            "ca.crt": _b64(ROOT_CA.encode()),
            "namespace": _b64(namespace.encode()),
            "token": _b64(_jwt(namespace, name, account["metadata"]["name"], uid).encode()),
        }
        self.objects.write(self.objects.rt(SECRETS), secret, new)
        return None
