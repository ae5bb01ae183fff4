"""The console's «Поиск» and «Заявки» in headless Chromium, with subscribers writing through the
Telegram and VK emulators: an operator finds a conversation by phone, name, ticket number and
text, narrows it by channel, group, state and dates, pages through, and opens it; the tickets
list filters, highlights an overdue urgent ticket, opens it with its conversation, and resolving
it with a result tells the subscriber in Telegram and is audited. Everything a person reads is
Russian: no raw codes, payloads or ISO dates."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from playwright.async_api import expect
from sqlalchemy import select, update

from handoff.console import search_page
from storage.models import AuditEntry, Subscriber, Ticket, utcnow
from tests.browser.conftest import Console, log_in, wait_for
from tests.browser.test_console_search import complaint

pytestmark = pytest.mark.browser
MARINA, OLEG, VK_USER, WAITING = 8201, 8202, 8203, 8204
PHONE = "+79161234567"
RAW = (
    "open",
    "resolved",
    "block_number",
    "complaint",
    "complaint_text",
    "with_operator",
    "queued",
    "consult:",
)


async def readable(page: Any) -> str:
    """The page's main text; it must hold no ISO timestamps and no internal codes."""
    text: str = await page.locator("main").inner_text()
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d", text), text
    for raw in RAW:
        assert not re.search(rf"(?<![\w/-]){re.escape(raw)}(?![\w-])", text), (raw, text)
    return text


async def results(page: Any) -> list[int]:
    rows = page.locator("#search-results tbody tr")
    return [int(await rows.nth(i).get_attribute("data-id")) for i in range(await rows.count())]


async def find(page: Any, query: str) -> list[int]:
    await page.fill("#se-q", query)
    await page.click("#se-apply")
    await page.wait_for_load_state()
    await expect(page.locator("#se-count")).to_be_visible()
    return await results(page)


async def marina_with_a_complaint(console: Console) -> tuple[str, int]:
    number = await complaint(console.telegram, MARINA, "Марина")
    async with console.app.db.transaction() as s:
        ticket = await s.scalar(select(Ticket).where(Ticket.number == number))
        assert ticket is not None and ticket.conversation_id is not None
        await s.execute(
            update(Subscriber).where(Subscriber.id == ticket.subscriber_id).values(phone=PHONE)
        )
    return number, ticket.conversation_id


async def test_an_operator_searches_filters_pages_and_opens_a_conversation(
    console: Console, page: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_page, "PAGE_SIZE", 1)  # two hits make two pages
    number, marina = await marina_with_a_complaint(console)
    console.telegram.send_text(OLEG, "сколько стоит роуминг в Турции?", first_name="Олег")
    await console.telegram.wait_sent(OLEG, 1)
    console.vk.send_text(VK_USER, "как подключить роуминг в Европе?")
    await console.vk.wait_sent(VK_USER, 1)
    waiting = await console.queue_telegram(WAITING, first="роутер мигает красным")
    await console.operator("olga", name="Ольга")
    await log_in(page, console, "olga")

    await page.get_by_role("link", name="Поиск").click()
    await page.wait_for_url(f"{console.url}/search")
    assert await find(page, "8 (916) 123-45-67") == [marina]  # the phone, another spelling
    row = page.locator(f"#search-results tr[data-id='{marina}']")
    await expect(row.locator("td").nth(0)).to_have_text("Марина")
    await expect(row.locator("td").nth(1)).to_have_text("Telegram")
    await expect(row.locator("td").nth(2)).to_have_text(
        re.compile(r"^\d\d\.\d\d\.\d{4} \d\d:\d\d$")
    )
    await expect(row.locator(".preview")).to_have_text("хочу пожаловаться")  # the first words
    await readable(page)
    assert await find(page, "марина") == [marina]  # the name, in lower case
    assert await find(page, number.lower()) == [marina]  # the ticket's number
    assert await find(page, "ИНТЕРНЕТ ПРОПАДАЕТ") == [marina]  # words of the text, any case
    await expect(row.locator(".preview")).to_contain_text("Интернет пропадает каждый вечер")
    assert await find(page, "тыквенный латте") == []
    await expect(page.locator("#se-empty")).to_have_text("Ничего не найдено.")

    # two conversations about roaming: one per page, newest first
    found = await find(page, "роуминг")
    await expect(page.locator("#se-count")).to_have_text("Найдено: 2, страница 1 из 2")
    await expect(page.locator("#se-newer")).to_have_count(0)
    await page.click("#se-older")
    await expect(page.locator("#se-count")).to_have_text("Найдено: 2, страница 2 из 2")
    assert await page.locator("#se-q").input_value() == "роуминг"  # the query is kept
    found += await results(page)
    await page.click("#se-newer")
    await expect(page.locator("#se-count")).to_have_text("Найдено: 2, страница 1 из 2")
    assert len(set(found)) == 2 and marina not in found
    vk_row = page.locator("#search-results tr td .badge.ch-vk")

    # filters: the channel, then the state and the group, then the dates
    await page.select_option("#se-filter select[name=channel]", label="VK")
    await page.click("#se-apply")
    await expect(page.locator("#se-count")).to_have_text("Найдено: 1")
    await expect(vk_row).to_have_text("VK")
    [vk_chat] = await results(page)
    [oleg] = [i for i in found if i != vk_chat]
    await page.select_option("#se-filter select[name=channel]", label="все")
    await page.fill("#se-q", "")
    await page.select_option("#se-filter select[name=state]", label="в очереди")
    await page.select_option("#se-filter select[name=group]", "consult")
    await page.click("#se-apply")
    await expect(page.locator("#se-count")).to_have_text("Найдено: 1")
    assert await results(page) == [waiting.id]
    await expect(page.locator(f"tr[data-id='{waiting.id}'] .state")).to_have_text("в очереди")
    await readable(page)
    await page.select_option("#se-filter select[name=state]", label="любое")
    await page.select_option("#se-filter select[name=group]", label="все")
    month_ago = (utcnow() - timedelta(days=30)).date().isoformat()
    await page.fill("#se-filter input[name=to]", month_ago)
    assert await find(page, "роуминг") == []
    await page.fill("#se-filter input[name=to]", "")
    await page.fill("#se-filter input[name=from]", utcnow().date().isoformat())
    await find(page, "роуминг")
    await expect(page.locator("#se-count")).to_have_text("Найдено: 2, страница 1 из 2")

    # open a found conversation: its history, read-only
    await page.fill("#se-filter input[name=from]", "")
    await find(page, "Олег")
    await page.locator(f"#search-results tr[data-id='{oleg}'] a").click()
    await page.wait_for_url(f"{console.url}/chats/{oleg}")
    await expect(page.locator("#transcript")).to_contain_text("сколько стоит роуминг в Турции?")
    await expect(page.locator("#reply-form")).to_be_hidden()
    await expect(page.locator("#take")).to_be_hidden()
    await readable(page)


async def test_tickets_filter_highlight_open_and_resolve(console: Console, page: Any) -> None:
    number, marina = await marina_with_a_complaint(console)
    urgent = "B-000777"
    async with console.app.db.transaction() as s:
        subscriber = await s.scalar(select(Ticket.subscriber_id).where(Ticket.number == number))
        s.add(
            Ticket(
                number=urgent,
                kind="block_number",
                subscriber_id=subscriber,
                conversation_id=marina,
                details={"phone": PHONE, "reason": "телефон потерян"},
                due_at=utcnow() - timedelta(hours=2),  # promised within the hour: overdue
            )
        )
    await console.operator("olga", name="Ольга")
    await log_in(page, console, "olga")
    await page.get_by_role("link", name="Заявки").click()
    await page.wait_for_url(f"{console.url}/tickets")
    await expect(page.locator("#tk-count")).to_have_text("Заявок: 2")
    late = page.locator(f"#tickets tr[data-number='{urgent}']")
    await expect(late).to_have_class("overdue")
    await expect(late).to_contain_text("просрочена")
    await expect(late.locator("td").nth(1)).to_have_text("блокировка номера")
    await expect(late.locator("td").nth(2)).to_have_text("Марина")
    assert await page.locator("#tickets tbody tr").first.get_attribute("data-number") == urgent
    calm = page.locator(f"#tickets tr[data-number='{number}']")
    await expect(calm).not_to_have_class("overdue")
    await expect(calm.locator("td").nth(1)).to_have_text("жалоба")
    await expect(page.locator("#tk-late")).to_have_text("1")
    # the overdue one is red: the highlight is really drawn
    color = await late.locator("td").first.evaluate("c => getComputedStyle(c).backgroundColor")
    assert color not in ("rgba(0, 0, 0, 0)", "rgb(255, 255, 255)"), color
    await readable(page)
    await expect(page.locator("header .who small")).to_have_text("оператор")  # not «operator»

    # filters
    await page.check("#tk-filter input[name=overdue]")
    await page.click("#tk-apply")
    await expect(page.locator("#tickets tbody tr")).to_have_count(1)
    await expect(page.locator("#tickets tbody tr")).to_have_attribute("data-number", urgent)
    await page.uncheck("#tk-filter input[name=overdue]")
    await page.select_option("#tk-filter select[name=kind]", label="жалоба")
    await page.click("#tk-apply")
    await expect(page.locator("#tickets tbody tr")).to_have_count(1)
    await expect(page.locator("#tickets tbody tr")).to_have_attribute("data-number", number)
    await page.select_option("#tk-filter select[name=kind]", label="все")
    await page.select_option("#tk-filter select[name=status]", label="решена")
    await page.click("#tk-apply")
    await expect(page.locator("#tk-empty")).to_be_visible()
    await page.select_option("#tk-filter select[name=status]", label="открыта")
    await page.click("#tk-apply")

    # the complaint's page labels what the bot collected
    await page.get_by_role("link", name=number).click()
    await page.wait_for_url(f"{console.url}/tickets/{number}")
    assert "текст жалобы" in await readable(page)
    await page.go_back()

    # open the urgent one: its details and its conversation
    await page.get_by_role("link", name=urgent).click()
    await page.wait_for_url(f"{console.url}/tickets/{urgent}")
    await expect(page.locator("#tk-status")).to_have_text("открыта просрочена")
    text = await readable(page)
    assert "телефон" in text and "причина: " not in text and "телефон потерян" in text
    await page.click("#tk-chat")
    await page.wait_for_url(f"{console.url}/chats/{marina}")
    await expect(page.locator("#transcript")).to_contain_text("Интернет пропадает каждый вечер")
    # the chat's context names things in Russian too
    await expect(page.locator("#tickets")).to_contain_text(f"{urgent} блокировка номера")
    await expect(page.locator("#tickets")).to_contain_text(f"{number} жалоба")
    slots = await page.locator("#slot-rows").inner_text()
    for raw in ("count", "details", "complaint_text", "items"):
        assert raw not in slots, (raw, slots)
    form_answer = page.locator("#transcript .nlu", has_text="ответ в форме")
    await expect(form_answer.locator(".intent-title")).to_have_text("Текст жалобы")
    await page.go_back()

    # resolve it with a result: the subscriber is told, the ticket shows it, it is audited
    before = len(console.telegram.sent(MARINA))
    result = "Номер заблокирован, SIM можно восстановить в любом салоне."
    await page.fill("#tk-resolve textarea[name=result]", result)
    await page.get_by_role("button", name="Решить и сообщить абоненту").click()
    await page.wait_for_url(f"{console.url}/tickets/{urgent}")
    await expect(page.locator("#tk-status")).to_have_text("решена")
    await expect(page.locator("#tk-result")).to_have_text(result)
    await expect(page.locator("#tk-resolve")).to_have_count(0)
    await readable(page)
    sent = await console.telegram.wait_sent(MARINA, before + 1)
    assert urgent in sent[-1]["text"] and "SIM можно восстановить" in sent[-1]["text"]

    async def entry() -> AuditEntry | None:
        async with console.app.db.session() as s:
            query = select(AuditEntry).where(AuditEntry.action == "ticket_resolved")
            return (await s.scalars(query)).first()

    audited = await wait_for(entry, 5, "the audit entry")
    assert audited.details["number"] == urgent and audited.conversation_id == marina
    await page.goto(f"{console.url}/tickets")
    await expect(page.locator("#tk-late")).to_have_text("0")
    await expect(page.locator(f"#tickets tr[data-number='{urgent}']")).to_have_count(0)
