"""The admin pages in headless Chromium: an operator's open chat page is sent to the login form
the moment an admin disables the account; the operators page and the audit log work without a
script of their own and within the strict CSP (no console errors)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.audit_support import Site, sqlite_site

__all__ = ["sqlite_site"]
pytestmark = pytest.mark.browser
PASSWORD = "correct-horse-battery"


async def log_in(page: Any, site: Site, login: str) -> None:
    await page.goto(f"{site.url}/login")
    await page.fill("#login", login)
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_url(f"{site.url}/")


async def test_a_disabled_operators_open_page_goes_to_the_login_form(
    sqlite_site: Site, page: Any
) -> None:
    site = sqlite_site
    await site.operator("root", role="admin", groups=())
    anna = await site.operator("anna")
    chat = await site.chat()
    await log_in(page, site, "anna")
    await page.goto(f"{site.url}/chats/{chat.id}")
    await expect(page.locator("#live")).to_have_class("live on")

    admin = await site.logged_in("root")
    async with admin.http.post(
        f"{site.url}/operators/{anna}/disable", data={"csrf": admin.csrf}, allow_redirects=False
    ) as resp:
        assert resp.status == 303
    await page.wait_for_url(f"{site.url}/login", timeout=4000)  # the socket closed with 4401
    await page.fill("#login", "anna")
    await page.fill("#password", PASSWORD)
    await page.click("#login-submit")
    await expect(page.locator("#login-error")).to_contain_text("Учётная запись отключена")


async def test_admin_pages_in_the_browser(sqlite_site: Site, page: Any) -> None:
    site = sqlite_site
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await site.operator("root", role="admin", groups=())
    await site.operator("olga")
    await log_in(page, site, "root")

    await page.click("text=Операторы")
    await page.wait_for_url(f"{site.url}/operators")
    form = page.locator("#ad-add")
    await form.locator("input[name=login]").fill("kira")
    await form.locator("input[name=name]").fill("Кира")
    await form.locator("input[name=password]").fill("kira-password-9")
    await form.locator("input[name=groups][value=tech]").check()
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#ad-done")).to_have_text("Учётная запись kira создана.")
    row = page.locator("#operators tr[data-login=olga]")
    await row.locator("summary").click()
    await row.locator(".ad-disable button").click()
    await expect(page.locator("#ad-done")).to_contain_text("olga отключён")
    await expect(page.locator("#operators tr[data-login=olga] .ad-state")).to_contain_text(
        "отключён"
    )

    await page.click("text=Журнал аудита")
    await page.wait_for_url(f"{site.url}/audit")
    rows = page.locator("#audit tbody tr")
    await expect(rows.first).to_have_attribute("data-action", "operator_disabled")
    await expect(rows.first).to_contain_text("учётная запись: Olga (olga)")
    await page.select_option("#au-filter select[name=action]", "operator_added")
    await page.click("#au-apply")
    await page.wait_for_url(f"{site.url}/audit?*action=operator_added*")
    actions = await rows.evaluate_all("rows => rows.map(r => r.dataset.action)")
    assert set(actions) == {"operator_added"} and len(actions) == 3
    href = await page.get_attribute("#au-csv", "href")
    assert href is not None and href.endswith("/audit.csv?action=operator_added")
    assert errors == []
