"""The console's policy pages in a real browser (headless Chromium through Playwright): a policy
created through the API shows on the overview and its page with its RPO against target and an RPO
chart; its Pause button pauses it (the policy service says so) and Resume brings it back; a read
token sees no button, and a forged post from it is refused on the server."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec

from tests.console.stack import ConsoleStack
from tests.console.test_browser import WAIT_MS, shot, signed_in
from tests.gateway.stack import TOKENS

POLICY = {
    "name": "shop-dr",
    "source": {"cluster": "east", "namespaces": ["shop"]},
    "target": {"cluster": "west", "repository": "dr"},
    "schedule": "@every 1h",
    "rpo": "30m",
    "itinerary": ["echo"],
    "target_retention": {"keep_last": 48, "keep_within": "7d"},
}


async def created(console: ConsoleStack) -> None:
    """The policy, created as automation would: ``POST /v1/policies`` with a submit token."""
    headers = {"Authorization": f"Bearer {TOKENS['cli']}", "Content-Type": "application/json"}
    async with console.session.post(
        console.url + "/v1/policies", data=msgspec.json.encode(POLICY), headers=headers
    ) as response:
        assert response.status == 201, await response.text()


async def test_a_policy_shows_its_rpo_and_its_pause_button_pauses_it(
    browser: Any, console: ConsoleStack, screenshots: Path
) -> None:
    await created(console)
    page = await signed_in(browser, console, "cli")
    row = page.locator("#policies tr[data-policy=shop-dr]")
    await row.wait_for(timeout=WAIT_MS)
    assert re.search(r"RPO .* / 30m \(met\)", await row.locator("[data-rpo=ok]").inner_text())
    assert "none yet" in await row.inner_text()  # no drill yet
    await page.get_by_role("link", name="Policies").first.click()
    await page.get_by_role("link", name="shop-dr").click()
    await page.wait_for_url(console.url + "/policies/shop-dr")
    assert "/ 30m (met)" in await page.locator("#rpo").inner_text()
    chart = page.get_by_role("img", name="RPO of shop-dr against its target")
    assert await chart.count() == 1
    assert await page.locator("svg.chart polyline").count() == 1
    assert await page.get_by_role("button", name="Run a drill").count() == 1
    retention = await page.locator("#retention").inner_text()
    assert retention.strip() == "Retention: source everything kept; target the newest 48 and all within 7d."
    await shot(page, screenshots, "policy")

    await page.get_by_role("button", name="Pause").click()
    await page.get_by_role("button", name="Resume").wait_for(timeout=WAIT_MS)
    assert await page.locator("#policy-state").inner_text() == "paused"
    assert (await console.client.policy_get("shop-dr")).status.state.value == "paused"
    await page.get_by_role("button", name="Resume").click()
    await page.get_by_role("button", name="Pause").wait_for(timeout=WAIT_MS)
    assert (await console.client.policy_get("shop-dr")).status.state.value == "active"


async def test_a_read_token_sees_no_policy_button_and_a_forged_pause_is_refused(
    browser: Any, console: ConsoleStack
) -> None:
    await created(console)
    page = await signed_in(browser, console, "read")
    await page.goto("/policies/shop-dr")
    await page.locator("#rpo").wait_for(timeout=WAIT_MS)
    assert await page.get_by_role("button").all_inner_texts() == ["Sign out"]  # no drill, no pause
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    for action in ("pause", "drill"):
        forged = await page.request.post(f"/policies/shop-dr/{action}", form={"csrf": csrf or ""})
        assert forged.status == 403 and "lacks the scope" in await forged.text()
    assert (await console.client.policy_get("shop-dr")).status.state.value == "active"
    assert (await console.client.drills("shop-dr")).items == []  # no drill started
    await page.goto("/drills")
    assert "No drills yet" in await page.locator("main").inner_text()
