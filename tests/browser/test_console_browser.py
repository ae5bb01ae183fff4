"""The operator console in headless Chromium (Playwright), against the real App and the Telegram
and VK emulators: log in, see the queue and the chat's full context (bot turns, intents with
confidence), take or get assigned, answer (a canned reply via /shortcut + Tab), the answer reaches
the subscriber's messenger; subscriber HTML stays text; new messages appear without a reload."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.async_api import expect

from tests.browser.conftest import Console, log_in, wait_text

pytestmark = pytest.mark.browser
TG_USER = 6101
VK_USER = 6202


async def test_telegram_chat_taken_from_the_queue_and_answered(console: Console, page: Any) -> None:
    await console.operator("anna", name="Анна")
    conv = await console.queue_telegram(TG_USER)
    await log_in(page, console, "anna")

    # the queue: channel, name, group, waiting time, reason, last message
    row = page.locator(f"#queue tbody tr[data-id='{conv.id}']")
    await expect(row).to_contain_text("Telegram")
    await expect(row).to_contain_text("Иван")
    await expect(row).to_contain_text("consult")
    await expect(row).to_contain_text("позовите оператора")
    await expect(row.locator(".waiting")).to_contain_text("с")
    await row.locator("a.open-chat").click()
    await page.wait_for_url(f"{console.url}/chats/{conv.id}")

    # the whole transcript, bot turns included, with what the bot understood
    transcript = page.locator("#transcript")
    asked = transcript.locator(".msg-subscriber", has_text="где оплатить?")
    await expect(asked.locator(".intent")).to_have_text("payment_methods")
    await expect(asked.locator(".confidence")).to_have_text(re.compile(r"^\d{1,3}%$"))
    await expect(transcript.locator(".msg-bot").first).to_contain_text("Оплатить связь")
    human = transcript.locator(".msg-subscriber", has_text="позовите оператора")
    await expect(human.locator(".intent")).to_have_text("operator")
    await expect(page.locator("#chat-state")).to_have_text("в очереди")
    await expect(page.locator("#channels")).to_contain_text("Telegram")
    await expect(page.locator("#reply-form")).to_be_hidden()

    await page.click("#take")
    await expect(page.locator("#chat-state")).to_have_text("у оператора")
    await expect(page.locator("#reply-form")).to_be_visible()
    await wait_text(lambda: console.telegram.sent(TG_USER), "подключился специалист Анна")

    # a canned reply by shortcut: "/wait" + Tab becomes its text
    await page.fill("#reply-text", "Иван, /wait")
    await page.focus("#reply-text")
    await page.keyboard.press("End")
    await page.keyboard.press("Tab")
    await expect(page.locator("#reply-text")).to_have_value("Иван, Минутку, уточняю 🙏")
    await page.click("#reply-send")
    await expect(page.locator("#reply-text")).to_have_value("")
    sent = await wait_text(lambda: console.telegram.sent(TG_USER), "Иван, Минутку, уточняю")
    assert sent["method"] == "sendMessage"
    await expect(transcript.locator(".msg-operator").last).to_contain_text("Минутку, уточняю")
    await expect(transcript.locator(".msg-operator .author").last).to_have_text("Анна")

    # clicking a reply from the searchable list inserts it too
    await page.fill("#canned-q", "роутер")
    await page.locator("#canned-list button.canned", has_text="/reboot").click()
    await expect(page.locator("#reply-text")).to_have_value(
        re.compile("^Давайте перезагрузим роутер")
    )
    await page.click("#reply-send")
    await wait_text(lambda: console.telegram.sent(TG_USER), "Давайте перезагрузим роутер")

    await page.select_option("#close-resolution", "solved")
    await page.click("#close")
    await expect(page.locator("#chat-state")).to_have_text("закрыт, ждём оценку")
    await wait_text(lambda: console.telegram.sent(TG_USER), "Оцени, пожалуйста")


async def test_vk_chat_assigned_when_the_operator_goes_online(console: Console, page: Any) -> None:
    await console.operator("boris", name="Борис")
    await log_in(page, console, "boris")
    await expect(page.locator("#live")).to_have_class("live on")
    console.vk.set_user(VK_USER, "Пётр", "Иванов")  # the VK frontend looks names up (users.get)
    conv = await console.queue_vk(VK_USER)

    # the waiting chat shows up live, without a reload
    await expect(page.locator(f"#queue tbody tr[data-id='{conv.id}']")).to_contain_text("VK")
    await page.click("#status-switch button[data-status='online']")
    await expect(page.locator("#status-switch button.active")).to_have_text("на линии")
    # the background loop assigns it to the operator who just went online
    mine = page.locator(f"#mine li[data-id='{conv.id}']")
    await expect(mine).to_contain_text("Пётр Иванов")
    await expect(page.locator("#queue-empty")).to_be_visible()
    await mine.locator("a").click()

    asked = page.locator("#transcript .msg-subscriber", has_text="где оплатить?")
    await expect(page.locator("#transcript .msg-bot").first).to_contain_text("Оплатить связь")
    await expect(asked.locator(".intent")).to_have_text("payment_methods")
    await expect(asked.locator(".confidence")).to_have_text(re.compile(r"^\d{1,3}%$"))
    await expect(page.locator("#chat-operator")).to_have_text("оператор: Борис")
    await page.fill("#reply-text", "Здравствуйте! Сейчас всё подскажу.")
    await page.keyboard.press("Control+Enter")
    answer = await wait_text(lambda: console.vk.sent(VK_USER), "Здравствуйте! Сейчас всё")
    assert answer["peer_id"] == VK_USER


async def test_subscriber_html_is_shown_as_text(console: Console, page: Any) -> None:
    await console.operator("vera")
    script = "<script>window.__xss=1</script>"
    image = '<img src=x onerror="window.__xss=2">'
    conv = await console.queue_telegram(TG_USER, first=script)
    await log_in(page, console, "vera")
    # in the queue preview (rendered by the server, then by the page script)
    row = page.locator(f"#queue tbody tr[data-id='{conv.id}']")
    await expect(row).to_be_visible()

    await page.goto(f"{console.url}/chats/{conv.id}")
    await page.click("#take")
    await expect(page.locator("#chat-state")).to_have_text("у оператора")
    # arrives while the page is open: rendered by the page script
    console.telegram.send_text(TG_USER, image)
    transcript = page.locator("#transcript")
    await expect(transcript.locator(".msg-subscriber .text", has_text=image)).to_have_text(image)
    await expect(transcript.locator(".msg-subscriber .text", has_text=script)).to_have_text(script)
    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await transcript.locator("img").count() == 0
    assert await transcript.locator("script").count() == 0

    # after a reload: rendered by the server (jinja2 autoescape)
    await page.reload()
    await expect(transcript.locator(".msg-subscriber .text", has_text=image)).to_have_text(image)
    await expect(transcript.locator(".msg-subscriber .text", has_text=script)).to_have_text(script)
    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await transcript.locator("img").count() == 0

    await page.goto(f"{console.url}/")
    await expect(page.locator(f"#mine li[data-id='{conv.id}'] .preview")).to_have_text(image)
    assert await page.evaluate("typeof window.__xss") == "undefined"


async def test_new_subscriber_messages_appear_without_a_reload(console: Console, page: Any) -> None:
    await console.operator("gleb")
    conv = await console.queue_telegram(TG_USER)
    await log_in(page, console, "gleb")
    await page.goto(f"{console.url}/chats/{conv.id}")
    await expect(page.locator("#live")).to_have_class("live on")
    await page.evaluate("window.__same_page = true")  # gone if the page reloads

    console.telegram.send_text(TG_USER, "а можно побыстрее?")
    last = page.locator("#transcript .msg-subscriber").last
    await expect(last.locator(".text")).to_have_text("а можно побыстрее?")
    assert await page.evaluate("window.__same_page") is True

    # a change made elsewhere shows up too: a supervisor takes the chat over, so it is no
    # longer this operator's and the page goes back to the queue
    assert await page.locator("#take").is_visible()
    await console.app.desk.take(await console.operator("sup", role="supervisor"), conv.id)
    await expect(page.locator("#flash")).to_contain_text("Чат больше не у вас")
    await page.wait_for_url(f"{console.url}/")
