"""Who is using the console: the token in a cookie, the scopes it carries, and forms safe from CSRF.

A browser cannot send ``Authorization: Bearer`` on a plain link or an ``EventSource``, so the
console keeps the token a person typed in a cookie (``HttpOnly``: no script reads it;
``SameSite=Strict``: no other site's page sends it; ``Secure`` whenever the page came over HTTPS)
and checks it exactly as the API does: ``GatewayConfig.tokens.identify`` and ``Identity.allows``.
The cookie holds the token itself and nothing else, so any gateway replica can read it (the gateway
keeps no state), and revoking the token in ``FERRY_GATEWAY_TOKENS`` ends every console session.

Every form posts a CSRF field derived from the token (an HMAC of a fixed label keyed by the token): a
page of another site cannot compute it, and it needs no server state either. A post whose
``Origin`` (or ``Referer``) names another host is refused before the field is even looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from services.gateway.config import ANONYMOUS_ADMIN, Identity, Scope
from services.gateway.console.keys import TEMPLATES
from services.gateway.web import CONFIG, IDENTITY, without_values
from shared.bus.client import RequestRejected
from shared.contracts.errors import CodedError, FerryError, TemporaryError

COOKIE = "ferry_console"
CSRF_FIELD = "csrf"
_CSRF_LABEL = b"ferry-console-csrf-v1"
MAX_TOKEN = 512

PageHandler = Callable[[web.Request, "Session"], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Session:
    """The signed-in person: the token's identity and the CSRF value its forms carry."""

    identity: Identity
    csrf: str

    @property
    def can_submit(self) -> bool:
        return self.identity.allows(frozenset({Scope.SUBMIT}))

    @property
    def is_admin(self) -> bool:
        return Scope.ADMIN in self.identity.scopes


def csrf_for(token: str) -> str:
    return hmac.new(token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def current(request: web.Request) -> tuple[Session | None, str]:
    """The session of the cookie, or None and why (shown on the login page)."""
    config = request.app[CONFIG]
    if config.insecure:
        return Session(ANONYMOUS_ADMIN, csrf_for("insecure-dev")), ""
    token = request.cookies.get(COOKIE, "")
    if not token:
        return None, ""
    identity = config.tokens.identify(token) if len(token) <= MAX_TOKEN else None
    if identity is None:
        return None, "Your token is no longer accepted (unknown or revoked). Sign in again."
    return Session(identity, csrf_for(token)), ""


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """A page of the console with what every page shows (who is signed in, the CSRF field)."""
    session, _ = current(request)
    response = aiohttp_jinja2.render_template(
        template, request, {"session": session, **context}, status=status, app_key=TEMPLATES
    )
    response.headers.update(SECURITY_HEADERS)
    return response


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def refused(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def same_origin(request: web.Request) -> bool:
    """A post from a page of this console: Origin (or, without it, Referer) names this host."""
    claimed = request.headers.get("Origin") or request.headers.get("Referer") or ""
    if not claimed or claimed == "null":
        return claimed != "null"  # no header at all: an old client, the CSRF field still decides
    return urllib.parse.urlsplit(claimed).netloc == request.host


def page(scope: Scope) -> Callable[[PageHandler], Handler]:
    """A console page or action that needs ``scope``: sign in first, and, for a post, a same-origin
    request carrying the session's CSRF field. A token without the scope gets 403 (so a forged post
    from a read token is refused on the server, not only by a hidden button)."""

    def wrap(handler: PageHandler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            session, why = current(request)
            if session is None:
                if request.method == "GET" and not request.path.endswith("/live"):
                    target = urllib.parse.quote(request.path_qs, safe="")
                    return see_other(f"/login?next={target}")
                return refused(request, 401, why or "Sign in with a token first.")
            if request.method == "POST":
                form = await request.post()
                if not same_origin(request) or not hmac.compare_digest(
                    str(form.get(CSRF_FIELD, "")), session.csrf
                ):
                    return refused(request, 403, "This form expired or came from another site. Reload it.")
            if not session.identity.allows(frozenset({scope})):
                needed = " or ".join(sorted({scope.value, Scope.ADMIN.value}))
                return refused(request, 403, f"Your token lacks the scope this needs: {needed}.")
            request[IDENTITY] = session.identity
            try:
                return await handler(request, session)
            except (FerryError, RequestRejected) as e:
                status, message = problem(e)
                return refused(request, status, message)

        guarded.__name__ = handler.__name__
        guarded.__doc__ = handler.__doc__
        return guarded

    return wrap


def problem(error: FerryError | RequestRejected) -> tuple[int, str]:
    """A failed call in a person's words, with the HTTP status the API would answer."""
    if isinstance(error, RequestRejected):
        coded: CodedError = error.rejected.as_error()
        return coded.status, without_values(str(coded))
    if isinstance(error, CodedError):
        return error.status, str(error)
    if isinstance(error, TemporaryError):
        return 503, f"Ferry is not answering right now: {error}. Retry in a moment."
    return 502, str(error)


def local_path(value: str) -> str:
    """Where to go after signing in: a path of this site only (never ``//other.host``)."""
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


async def login_form(request: web.Request) -> web.Response:
    session, why = current(request)
    if session is not None:
        return see_other(local_path(request.query.get("next", "/")))
    return render(request, "login.html", {"next": local_path(request.query.get("next", "/")), "error": why})


async def login(request: web.Request) -> web.Response:
    """Check the token as the API would; keep it in the cookie only if it is a valid one."""
    form = await request.post()
    token, target = str(form.get("token", "")).strip(), local_path(str(form.get("next", "/")))
    if not same_origin(request):
        return refused(request, 403, "This sign-in form came from another site.")
    config = request.app[CONFIG]
    identity = config.tokens.identify(token) if token and len(token) <= MAX_TOKEN else None
    if identity is None:
        context = {
            "next": target,
            "error": "That token is not valid: unknown or revoked. Check it and retry.",
        }
        return render(request, "login.html", context, status=401)
    response = see_other(target)
    response.set_cookie(
        COOKIE, token, httponly=True, samesite="Strict", secure=request.secure, path="/", max_age=12 * 3600
    )
    return response


async def logout(request: web.Request) -> web.Response:
    form = await request.post()
    session, _ = current(request)
    if session is not None and (
        not same_origin(request) or not hmac.compare_digest(str(form.get(CSRF_FIELD, "")), session.csrf)
    ):
        return refused(request, 403, "This form expired or came from another site. Reload it.")
    response = see_other("/login")
    response.del_cookie(COOKIE, path="/")
    return response


def see_other(location: str) -> web.Response:
    """The answer to a form that worked: go to ``location`` (a GET), so a reload never posts again."""
    return web.Response(status=303, headers={"Location": location, **SECURITY_HEADERS})
