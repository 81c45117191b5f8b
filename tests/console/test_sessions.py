"""The console's server-side guarantees, over plain HTTP: sign-in, scopes, CSRF, the cookie's flags.

No browser here: these are what the server refuses whatever a page shows, so they are asked as a
forger would ask them (a posted form without its CSRF field, from another origin, with a read token).
"""

from __future__ import annotations

import re

import aiohttp
import pytest

from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from tests.console.stack import ConsoleStack
from tests.gateway.stack import TOKENS

FORM = {"source": "east", "target": "west", "namespaces": "shop", "namespace_map": "shop:shop-west"}


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "every signed-in page carries the CSRF field (the sign-out form)"
    return found.group(1)


async def test_signing_in_sets_an_httponly_strict_cookie_and_a_wrong_token_is_refused(
    console: ConsoleStack,
) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        async with session.get(console.url + "/requests", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == "/login?next=%2Frequests"
        async with session.post(console.url + "/login", data={"token": "not-a-token"}) as response:
            assert response.status == 401
            assert "That token is not valid" in await response.text()
        assert not session.cookie_jar.filter_cookies(console.url)
        data = {"token": TOKENS["read"], "next": "/requests"}
        async with session.post(console.url + "/login", data=data, allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (303, "/requests")
            cookie = response.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie


@pytest.mark.parametrize(
    ("who", "with_csrf", "origin", "status", "words"),
    [
        pytest.param("read", True, None, 403, "lacks the scope", id="a read token cannot start a migration"),
        pytest.param("cli", False, None, 403, "expired or came from another site", id="no CSRF field"),
        pytest.param(
            "cli", True, "http://evil.example", 403, "another site", id="a post from another origin"
        ),
    ],
)
async def test_a_forged_post_is_refused_and_starts_nothing(
    console: ConsoleStack, who: str, with_csrf: bool, origin: str | None, status: int, words: str
) -> None:
    session = await console.login(who)
    async with session:
        async with session.get(console.url + "/requests") as response:
            csrf = csrf_of(await response.text())
        data = {**FORM, **({"csrf": csrf} if with_csrf else {})}
        headers = {"Origin": origin} if origin else {}
        async with session.post(
            console.url + "/migrate", data=data, headers=headers, allow_redirects=False
        ) as response:
            assert response.status == status
            assert words in await response.text()
    assert (await console.client.list_page()).items == []


async def test_a_read_token_cannot_cancel_a_running_request(console: ConsoleStack) -> None:
    request = MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west"),
        labels={"behaviour": "block"},
    )
    rid = await console.client.submit(request)
    session = await console.login("read")
    async with session:
        async with session.get(f"{console.url}/requests/{rid}") as response:
            page = await response.text()
        assert "Cancel request" not in page
        data = {"csrf": csrf_of(page)}
        async with session.post(f"{console.url}/requests/{rid}/cancel", data=data) as response:
            assert response.status == 403
            assert "lacks the scope this needs: admin or submit" in await response.text()
    state = await console.client.get(rid)
    assert not state.cancel_requested
    await console.client.cancel(rid)
    await console.client.wait(rid, within=30)


async def test_pages_send_a_strict_csp_and_an_unknown_request_is_a_404_page(console: ConsoleStack) -> None:
    session = await console.login("cli")
    async with session:
        async with session.get(console.url + "/") as response:
            assert response.status == 200
            csp = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        async with session.get(console.url + "/requests/nope-123") as response:
            assert response.status == 404
            assert "Not found" in await response.text()
