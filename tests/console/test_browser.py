"""The console in a real browser (headless Chromium through Playwright) against a running Ferry.

What a person does: sign in, start a dry run from the form and watch it reach Completed live, start
the migration for real and read its verification report, and, with a read token, find nothing to
submit. Each page is saved as a screenshot in docs/console/ (the README shows them).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from shared.contracts.requests import MobilityRequest, RequestKind, Source, Target
from tests.console.stack import ConsoleStack
from tests.gateway.stack import TOKENS

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 30_000


async def signed_in(browser: Any, console: ConsoleStack, who: str, viewport: dict[str, int] = DESKTOP) -> Any:
    """A page of a fresh browser context, signed in through the login form with ``who``'s token."""
    context = await browser.new_context(viewport=viewport, base_url=console.url)
    page = await context.new_page()
    await page.goto("/")
    assert page.url.endswith("/login?next=%2F")
    await page.get_by_label("Token").fill(TOKENS[who])
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(console.url + "/")
    return page


async def shot(page: Any, where: Path, name: str) -> None:
    await page.screenshot(path=str(where / f"{name}.png"), full_page=True)


async def test_a_wrong_token_is_refused_with_a_clear_message(
    browser: Any, console: ConsoleStack, screenshots: Path
) -> None:
    context = await browser.new_context(viewport=DESKTOP, base_url=console.url)
    page = await context.new_page()
    await page.goto("/snapshots")
    await page.get_by_label("Token").fill("not-a-ferry-token")
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await alert.wait_for()
    assert "That token is not valid: unknown or revoked" in await alert.inner_text()
    assert await context.cookies() == []
    await shot(page, screenshots, "login-refused")
    await context.close()


async def test_a_dry_run_from_the_form_reaches_completed_live(
    browser: Any, console: ConsoleStack, screenshots: Path
) -> None:
    page = await signed_in(browser, console, "cli")
    await page.get_by_role("link", name="Start a migration").click()
    await page.get_by_label("From cluster").select_option("east")
    await page.get_by_label("To cluster").select_option("west")
    # Choosing a cluster reloads the namespace list (htmx): check a box only once that has landed,
    # or a late swap unchecks it and the form comes back asking for a namespace.
    await page.wait_for_load_state("networkidle")
    await page.get_by_role("checkbox", name="shop").check()  # listed from the sandbox cluster east
    await page.get_by_label("Namespace mapping").fill("shop:shop-west")
    await page.get_by_label("Storage-class mapping").fill("standard:fast")
    await shot(page, screenshots, "migrate-form")
    assert await page.get_by_role("checkbox", name="shop").is_checked()
    await page.get_by_role("button", name="Dry run").click()
    await page.wait_for_url(re.compile(r"/requests/migrate-"))
    rid = page.url.rsplit("/", 1)[1]
    assert await page.locator("#request-body[sse-connect]").count() == 1  # loaded while running
    assert await page.locator("[data-phase=Completed]").count() == 0
    await page.locator("progress").first.wait_for(timeout=WAIT_MS)  # volume bars, from SSE progress
    await shot(page, screenshots, "request-live")
    await page.locator("#phase [data-phase=Completed]").wait_for(timeout=WAIT_MS)
    await page.get_by_role("button", name="Start this migration for real").wait_for(timeout=WAIT_MS)
    state = await console.client.get(rid)
    assert state.request.dry_run and state.request.target.namespace_map == {"shop": "shop-west"}
    assert state.request.target.storage_class_map == {"standard": "fast"}
    assert state.request.source.namespaces == ["shop"]
    timeline = await page.locator("#steps").inner_text()
    assert timeline.count("Succeeded") == len(state.steps) and "1 try" in timeline


async def test_a_real_migration_shows_its_verification_report_and_can_be_rolled_back(
    browser: Any, console: ConsoleStack, screenshots: Path
) -> None:
    dry = MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west", namespace_map={"shop": "shop-west"}),
        dry_run=True,
    )
    dry_id = await console.client.submit(dry)
    await console.client.wait(dry_id, within=30)
    page = await signed_in(browser, console, "cli")
    await shot(page, screenshots, "overview")
    await page.goto(f"/requests/{dry_id}")
    await page.get_by_role("button", name="Start this migration for real").click()
    await page.wait_for_url(re.compile(r"/requests/migrate-"))
    rid = page.url.rsplit("/", 1)[1]
    assert rid != dry_id
    report = page.locator("#verification")
    await report.wait_for(timeout=WAIT_MS)  # swapped in when the live stream says Completed
    text = await report.inner_text()
    assert "verified" in text and "volumes: 2/2 equal to the snapshot" in text
    assert "shop/data-db-0" in text and "shop/uploads" in text
    bars = await page.locator("#volumes").inner_text()
    assert "verify data-db-0" in bars and "100%" in bars and "4.2 MB of 4.2 MB" in bars
    await shot(page, screenshots, "request")
    real = await console.client.get(rid)
    assert not real.request.dry_run and real.phase.value == "Completed"
    await page.get_by_role("link", name="verification").click()
    await page.locator("pre.document").wait_for()
    assert '"volumes"' in await page.locator("pre.document").inner_text()
    await page.go_back()
    await page.get_by_role("button", name="Roll back this migration").click()
    await page.wait_for_url(re.compile(r"/requests/rollback-"))
    rolled = await console.client.get(page.url.rsplit("/", 1)[1])
    assert rolled.request.kind is RequestKind.ROLLBACK and rolled.request.rollback_of == rid


async def test_a_read_token_sees_nothing_to_submit_and_a_forged_post_is_refused(
    browser: Any, console: ConsoleStack, screenshots: Path
) -> None:
    blocked = MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west"),
        labels={"behaviour": "block"},
    )
    rid = await console.client.submit(blocked)
    page = await signed_in(browser, console, "read")
    assert await page.get_by_role("link", name="Start a migration").count() == 0
    await page.goto(f"/requests/{rid}")
    await page.locator("#steps").wait_for()
    assert await page.get_by_role("button").all_inner_texts() == ["Sign out"]  # no cancel, no submit
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    forged = await page.request.post(
        "/migrate", form={"csrf": csrf or "", "source": "east", "target": "west", "namespaces": "shop"}
    )
    assert forged.status == 403 and "lacks the scope" in await forged.text()
    cancel = await page.request.post(f"/requests/{rid}/cancel", form={"csrf": csrf or ""})
    assert cancel.status == 403
    assert [s.id for s in (await console.client.list_page()).items] == [rid]  # nothing new started
    assert not (await console.client.get(rid)).cancel_requested
    await page.goto("/migrate")
    assert "Your token lacks the scope this needs" in await page.get_by_role("alert").inner_text()
    await console.client.cancel(rid)
    await console.client.wait(rid, within=30)


async def test_the_requests_and_snapshots_pages_at_desktop_and_phone_width(
    browser: Any, console: ConsoleStack, screenshots: Path
) -> None:
    partial = MobilityRequest(
        kind=RequestKind.MIGRATE,
        source=Source(cluster="east", namespaces=["shop"]),
        target=Target(cluster="west"),
        labels={"behaviour": "partial"},
    )
    rid = await console.client.submit(partial)
    await console.client.wait(rid, within=30)
    page = await signed_in(browser, console, "admin")
    await page.get_by_role("link", name="Requests", exact=True).click()
    await page.get_by_role("link", name=rid).wait_for()
    await shot(page, screenshots, "requests")
    await page.get_by_role("link", name="Snapshots", exact=True).click()
    assert await page.get_by_role("heading", name="shop").count() == 1
    assert "50.0 MB" in await page.locator("table").first.inner_text()
    await page.get_by_label("Keep the last").fill("1")
    await page.get_by_label("Application", exact=True).last.fill("shop")
    await page.get_by_role("button", name="Show what would go").click()
    status = page.get_by_role("status")
    assert "Would keep 1, remove 2" in await status.inner_text()
    await shot(page, screenshots, "snapshots")
    await page.goto(f"/requests/{rid}")
    problems = await page.locator("#verification").inner_text()
    assert problems.index("configmaps/shop/x") < problems.index("shop/data-db-0")  # problems first
    phone = await signed_in(browser, console, "cli", viewport=PHONE)
    await shot(phone, screenshots, "overview-phone")
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "the overview scrolls sideways on a phone"
    await phone.goto(f"/requests/{rid}")
    await shot(phone, screenshots, "request-phone")
