"""What each role sees of a subscriber's personal data (handoff/console/privacy.py) and whether
the subscriber is verified: through the JSON API on SQLite and PostgreSQL, and on the chat page
in headless Chromium."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from handoff.console import privacy
from storage.models import Conversation, Message, OutboxItem
from tests.browser.audit_support import ACCOUNT, ADDRESS, PHONE, Site, site, sqlite_site

__all__ = ["site", "sqlite_site"]

MASKED_PHONE = "+7 ••• •••-45-67"
MASKED_ACCOUNT = "•••••0300"
STREET = "Садовая, •••"


def fields(rows: list[dict[str, str]]) -> dict[str, str]:
    return {row["key"]: row["value"] for row in rows}


def texts(data: dict[str, Any]) -> dict[str, str]:
    return {m["author"]: m["text"] for m in data["messages"]}


async def test_an_operator_sees_identifiers_masked(site: Site) -> None:
    await site.operator("olga")
    chat = await site.chat()
    olga = await site.logged_in("olga")
    status, data = await olga.get(f"/api/chats/{chat.id}")
    assert status == 200
    s = data["subscriber"]
    assert (s["phone"], s["account_number"]) == (MASKED_PHONE, MASKED_ACCOUNT)
    assert fields(s["customer"]) == {
        "id": "•••••1234",
        "name": "Иван Петров",
        "phone": MASKED_PHONE,
        "account": MASKED_ACCOUNT,
        "address": STREET,
        "tariff": "Мой онлайн",
    }
    assert fields(data["slots"]) == {
        "address": STREET,
        "contract.account": MASKED_ACCOUNT,
        "phone": MASKED_PHONE,
        "window": "завтра с 10 до 14",
    }
    [said] = [m for m in data["messages"] if m["author"] == "subscriber"]
    assert {e["entity"]: e["value"] for e in said["nlu"]["entities"]} == {
        "phone": MASKED_PHONE,
        "account": MASKED_ACCOUNT,
    }
    assert texts(data) == {
        "subscriber": f"мой лс {MASKED_ACCOUNT}, телефон {MASKED_PHONE}",
        "bot": f"Нашёл: счёт {MASKED_ACCOUNT}, номер {MASKED_PHONE}, заявка V-000123",
    }
    assert data["masked"] == {"role": "operator", "unmasked": []}
    raw = repr(data)
    for secret in (ACCOUNT, "9161234567", "Садовая 12", "кв. 5", "5551234"):
        assert secret not in raw, secret
    # the queue's preview of the last message too
    status, queue = await olga.get("/api/queue")
    [item] = queue["queue"]
    assert ACCOUNT not in item["preview"] and "9161234567" not in item["preview"]


@pytest.mark.parametrize("role", ["supervisor", "admin"])
async def test_supervisors_and_admins_see_accounts_and_addresses(site: Site, role: str) -> None:
    await site.operator("lead", role=role, groups=())
    chat = await site.chat()
    lead = await site.logged_in("lead")
    status, data = await lead.get(f"/api/chats/{chat.id}")
    assert status == 200
    s = data["subscriber"]
    assert (s["phone"], s["account_number"]) == (MASKED_PHONE, ACCOUNT)  # phones: never in full
    customer = fields(s["customer"])
    assert customer["account"] == ACCOUNT and customer["address"] == ADDRESS
    assert customer["id"] == "C-5551234" and customer["phone"] == MASKED_PHONE
    assert fields(data["slots"])["address"] == ADDRESS
    assert texts(data)["subscriber"] == f"мой лс {ACCOUNT}, телефон {MASKED_PHONE}"
    assert data["masked"] == {"role": role, "unmasked": ["account", "address"]}
    assert "9161234567" not in repr(data)


async def test_the_verification_shown_is_the_latest_valid_one_of_this_account(
    site: Site,
) -> None:
    await site.operator("olga")
    chat = await site.chat()
    other = await site.chat()
    olga = await site.logged_in("olga")

    async def verification(chat_id: int) -> dict[str, Any]:
        status, data = await olga.get(f"/api/chats/{chat_id}")
        assert status == 200
        result: dict[str, Any] = data["verification"]
        return result

    assert await verification(chat.id) == {"verified": False, "label": "не подтверждён"}
    await site.verify(chat, hours=-0.5)  # expired half an hour ago
    await site.verify(chat, revoked=True)  # «это не мой номер»
    await site.verify(other)  # someone else's account
    assert (await verification(chat.id))["verified"] is False
    await site.verify(chat, method="contact", hours=48)
    found = await verification(chat.id)
    assert found["verified"] is True
    assert (found["method"], found["method_label"]) == ("contact", "поделился контактом в Telegram")
    assert found["label"] == "подтверждён: поделился контактом в Telegram"
    assert found["at"] < found["until"] and found["time"] and found["until_time"]
    assert (found["phone"], found["account_number"]) == (MASKED_PHONE, MASKED_ACCOUNT)


def test_masking_rules() -> None:
    strict = privacy.policy_for("operator")
    assert privacy.policy_for("nobody-knows") == strict
    assert privacy.mask_account("12") == "••" and privacy.mask_account(None) is None
    assert privacy.mask_address("г. Пушкин, Октябрьский бульвар, д. 20, кв. 14") == (
        "Октябрьский бульвар, •••"
    )
    assert privacy.mask_address("12") == "•••"  # no street to keep
    assert privacy.kind_of("customer.id") == "account" and privacy.kind_of("ticket.id") is None
    # operators' and system texts are theirs: left alone; a ticket number is not an account
    assert privacy.message_text("звоните 8 800 555-35-35", "operator", strict) == (
        "звоните 8 800 555-35-35"
    )
    assert privacy.message_text("заявка V-000123, код 482913", "bot", strict) == (
        "заявка V-000123, код ••2913"
    )


@pytest.mark.browser
async def test_the_chat_page_shows_verification_and_masks_by_role(
    sqlite_site: Site, page: Any
) -> None:
    site = sqlite_site  # the page is the same on PostgreSQL: the API tests cover the data there
    await site.operator("olga")
    await site.operator("sup", role="supervisor", groups=())
    chat = await site.chat()

    async def open_as(login: str) -> None:
        await page.goto(f"{site.url}/login")
        await page.fill("#login", login)
        await page.fill("#password", "correct-horse-battery")
        await page.click("#login-submit")
        await page.wait_for_url(f"{site.url}/")
        await page.goto(f"{site.url}/chats/{chat.id}")

    await open_as("olga")
    assert await page.text_content("#verification-method") == "не подтверждён"
    profile = await page.inner_text("#profile")
    assert MASKED_PHONE in profile and MASKED_ACCOUNT in profile and STREET in profile
    assert ACCOUNT not in profile and "кв. 5" not in profile
    assert await page.is_visible("#masked-note")
    slots = await page.inner_text("#slots")
    assert STREET in slots and ADDRESS not in slots
    transcript = await page.inner_text("#transcript")
    assert ACCOUNT not in transcript and "916 123-45-67" not in transcript

    # verified while the page is open: the next live re-read shows it (the page's script)
    await page.wait_for_selector("#live.on")
    await site.verify(chat, method="sms")
    await page.click("#take")  # any event of this chat makes the page re-read it
    await expect(page.locator("#verification-method")).to_have_text("код из SMS")
    await expect(page.locator("#verification")).to_have_class("verification verified")
    profile = await page.inner_text("#profile")
    assert MASKED_ACCOUNT in profile and ACCOUNT not in profile  # the script masks alike
    assert "действует до" in await page.inner_text("#verification")

    await page.context.clear_cookies()
    await open_as("sup")
    profile = await page.inner_text("#profile")
    assert ACCOUNT in profile and ADDRESS in profile and MASKED_PHONE in profile
    assert not await page.is_visible("#masked-note")
    assert "код из SMS" in await page.inner_text("#verification")
    assert PHONE not in await page.content()


async def test_the_operator_asks_the_subscriber_to_verify_from_the_chat_page(
    sqlite_site: Site, page: Any
) -> None:
    """«🔐 Запросить подтверждение»: there only for the operator who has the chat; one click
    and the bot's request is in the transcript (and on its way to the subscriber), the chat
    still the operator's."""
    site = sqlite_site
    await site.operator("olga")
    chat = await site.chat()
    await page.goto(f"{site.url}/login")
    await page.fill("#login", "olga")
    await page.fill("#password", "correct-horse-battery")
    await page.click("#login-submit")
    await page.wait_for_url(f"{site.url}/")
    await page.goto(f"{site.url}/chats/{chat.id}")
    await page.wait_for_selector("#live.on")
    assert not await page.is_visible("#verify-request")  # not hers yet

    await page.click("#take")
    await expect(page.locator("#verify-request")).to_be_visible()
    await page.click("#verify-request")
    await expect(page.locator("#transcript")).to_contain_text("подтвердить, что это ты")
    async with site.db.session() as s:
        conv = await s.get(Conversation, chat.id)
        queued = await s.scalars(
            select(Message.text)
            .join(OutboxItem, OutboxItem.message_id == Message.id)
            .where(Message.conversation_id == chat.id)
        )
        outgoing = list(queued)
    assert conv is not None and conv.state == "with_operator" and "_verify" in conv.slots
    assert any("подтвердить, что это ты" in (t or "") for t in outgoing)
    assert [e.action for e in await site.entries("verification_requested")]
