"""``POST .../serviceaccounts/{name}/token``: the TokenRequest subresource (``kubectl create token``).

As ``pkg/registry/core/serviceaccount/storage/token.go`` of Kubernetes 1.32 answers it: the account
must exist (404 otherwise), a name or namespace in the body must match the URL (422), a bound object
(``boundObjectRef``: a Pod running as that account, or a Secret) must exist; unset
``spec.expirationSeconds`` defaults to 3600 (``SetDefaults_TokenRequestSpec``), less than ten
minutes or more than 2^32 seconds is refused (422), unset audiences are the API server's. The answer
(201) is the request with name, namespace and ``creationTimestamp`` filled in and
``status.token`` (a JWT-shaped bound token naming the account; its signature is random, nothing
verifies it) and ``status.expirationTimestamp``. Nothing is stored.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import uuid
from typing import Any

from sandbox.server import errors
from sandbox.server.objects import Objects
from sandbox.types import ResourceType

API_VERSION, KIND = "authentication.k8s.io/v1", "TokenRequest"
ISSUER = "https://kubernetes.default.svc.cluster.local"
AUDIENCES = [ISSUER]
DEFAULT_EXPIRATION_SECONDS = 3600
MIN_EXPIRATION_SECONDS = 600
MAX_EXPIRATION_SECONDS = 2**32


def _invalid(name: str, field: str, why: str) -> errors.ApiError:
    details = {
        "name": name,
        "group": "authentication.k8s.io",
        "kind": KIND,
        "causes": [{"reason": "FieldValueInvalid", "message": why, "field": field}],
    }
    return errors.ApiError(
        422, "Invalid", f'{KIND}.authentication.k8s.io "{name}" is invalid: {field}: {why}', details
    )


def _b64(doc: dict[str, Any] | bytes) -> str:
    raw = doc if isinstance(doc, bytes) else json.dumps(doc, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _stamp(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def create_token(objects: Objects, namespace: str, name: str, body: Any) -> dict[str, Any]:
    """The TokenRequest the server answers for ``body`` posted to the account ``name``."""
    if not isinstance(body, dict):
        raise errors.bad_request("the body of the request was not a JSON object")
    if body.get("kind") not in (None, KIND) or body.get("apiVersion") not in (None, API_VERSION):
        raise errors.bad_request(f"the API version in the data ({body.get('apiVersion')}) does not match")
    meta = dict(body.get("metadata") or {})
    spec = dict(body.get("spec") or {})
    if meta.get("name") and meta["name"] != name:
        raise _invalid(
            name,
            "metadata.name",
            f'Invalid value: "{meta["name"]}": must match the service account name if specified',
        )
    if meta.get("namespace") and meta["namespace"] != namespace:
        why = f'Invalid value: "{meta["namespace"]}": must match the service account namespace if specified'
        raise _invalid(name, "metadata.namespace", why)
    seconds = int(spec.get("expirationSeconds") or DEFAULT_EXPIRATION_SECONDS)
    if seconds < MIN_EXPIRATION_SECONDS:
        raise _invalid(
            name,
            "spec.expirationSeconds",
            f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
        )
    if seconds > MAX_EXPIRATION_SECONDS:
        why = f"Invalid value: {seconds}: may not specify a duration larger than 2^32 seconds"
        raise _invalid(name, "spec.expirationSeconds", why)
    account_rt = objects.rt("serviceaccounts")
    account = objects.store.get("serviceaccounts", namespace, name)
    if account is None:
        raise errors.not_found(account_rt, name)
    private = {
        "namespace": namespace,
        "serviceaccount": {"name": name, "uid": account["metadata"]["uid"]},
    }
    ref = spec.get("boundObjectRef")
    if ref:
        private.update(_bound(objects, namespace, name, ref))
    spec["expirationSeconds"] = seconds
    spec["audiences"] = list(spec.get("audiences") or AUDIENCES)
    spec.setdefault("boundObjectRef", None)
    issued = dt.datetime.now(dt.UTC).replace(microsecond=0)
    expiry = issued + dt.timedelta(seconds=seconds)
    claims = {
        "aud": spec["audiences"],
        "exp": int(expiry.timestamp()),
        "iat": int(issued.timestamp()),
        "iss": ISSUER,
        "jti": str(uuid.uuid4()),
        "kubernetes.io": private,
        "nbf": int(issued.timestamp()),
        "sub": f"system:serviceaccount:{namespace}:{name}",
    }
    token = ".".join((_b64({"alg": "RS256", "kid": "sandbox"}), _b64(claims), _b64(secrets.token_bytes(256))))
    meta.update(name=name, namespace=namespace, creationTimestamp=_stamp(issued))
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": meta,
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": _stamp(expiry)},
    }


def _bound(objects: Objects, namespace: str, account: str, ref: dict[str, Any]) -> dict[str, Any]:
    """The claims of the object a token is bound to (it must exist: 404 otherwise)."""
    kind, ref_name = ref.get("kind", ""), ref.get("name", "")
    api_version = ref.get("apiVersion", "")
    resources: dict[str, tuple[str, ResourceType]] = {
        "Pod": ("pod", objects.rt("pods")),
        "Secret": ("secret", objects.rt("secrets")),
    }
    if api_version != "v1" or kind not in resources:
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        version = api_version.rpartition("/")[2]
        raise errors.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
    claim, rt = resources[kind]
    found = objects.store.get(rt.resource, namespace, ref_name)
    if found is None:
        raise errors.not_found(rt, ref_name)
    if kind == "Pod" and (found.get("spec") or {}).get("serviceAccountName") != account:
        running_as = (found.get("spec") or {}).get("serviceAccountName", "")
        raise errors.bad_request(
            f'cannot bind token for serviceaccount "{account}" to pod running with serviceaccount "{running_as}"'
        )
    uid = found["metadata"]["uid"]
    if ref.get("uid") and ref["uid"] != uid:
        message = (
            f"the UID in the bound object reference ({ref['uid']}) does not match the UID in record ({uid}). "
            "The object might have been deleted and then recreated"
        )
        raise errors.ApiError(
            409, "Conflict", f'Operation cannot be fulfilled on {kind} "{ref_name}": {message}'
        )
    return {claim: {"name": ref_name, "uid": uid}}
