"""Ferry's web console: server-rendered pages at ``/``, served by the gateway in its own process.

People who watch migrations would rather look than read, so the gateway also answers a browser:
an overview, the requests with their live progress, the snapshot catalog, a form that starts a
migration (a dry run first), the replication policies with their RPO and the DR drills. It is Jinja2 through aiohttp-jinja2, plus htmx and its SSE extension
(vendored in ``static/vendor``, no build step) for the parts that change while a person watches.

The console is a client of the gateway's logic, in-process: it uses the gateway's ``BusClient`` and
kubeconfig, and checks the same tokens and scopes (``sessions``). ``setup_console(app)`` adds it to
the API's application (``services.gateway.app.build_app``).
"""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from services.gateway.console import live, pages, policies, sessions, starting, views
from services.gateway.console.keys import ENABLED, TEMPLATES

STATIC = Path(__file__).parent / "static"


def setup_console(app: web.Application) -> None:
    """Add the console's routes, templates and static files to the gateway's ``app`` (once)."""
    if app.get(ENABLED):
        return
    app[ENABLED] = True
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("services.gateway.console", "templates"),
        app_key=TEMPLATES,
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    env.filters["bytes"] = views.human_bytes
    env.globals["csrf_field"] = sessions.CSRF_FIELD
    env.globals["tone"] = views.phase_tone
    env.globals["seconds"] = views.human_seconds
    router = app.router
    router.add_get("/login", sessions.login_form)
    router.add_post("/login", sessions.login)
    router.add_post("/logout", sessions.logout)
    pages.add_routes(router)
    live.add_routes(router)
    starting.add_routes(router)
    policies.add_routes(router)
    static = router.add_static("/static/", STATIC, name="console-static", append_version=True)
    env.globals["asset"] = lambda name: str(static.url_for(filename=name))  # ?v=<hash>: cached safely


__all__ = ["setup_console"]
