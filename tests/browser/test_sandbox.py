"""The sandbox page of `supportbot demo`, end to end and from the outside: the demo runs as a real
subprocess (what `make demo` runs, on free ports, its database in tmp_path), headless Chromium
chats on the sandbox page as a Telegram and a VK subscriber, an operator answers from the console
in a second tab, and Ctrl-C (SIGINT) stops the demo with exit code 0.

What it proves: the page talks to the live bots through the emulators (a question answered with
buttons, a button pressed as a user would, the bot's picture served and decoded, a link button
that opens the link), each answer shows the intent and confidence (or the button) it came from,
an operator's console reply reaches the VK pane labelled as the operator's, "new subscriber"
starts over with a fresh id and an empty pane, subscriber text is inert (no HTML, no script), the
page updates without reloading, and the demo stops cleanly with the browser still connected."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 120.0  # imports, migrations and NLU training on a slow machine
DEMO_LOGIN, DEMO_PASSWORD = "operator", "operator-demo"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_trio() -> int:
    """A port P with P+1 and P+2 free as well (the demo's app and its two emulators)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = int(s.getsockname()[1])
        if base + 2 <= 65535 and all(_port_free(base + i) for i in range(3)):
            return base
    raise RuntimeError("no three consecutive free ports found")


def demo_command() -> list[str]:
    script = shutil.which("supportbot", path=str(Path(sys.executable).parent))
    if script is not None:
        return [script, "demo"]
    return [sys.executable, "-c", "from supportbot.cli import main; main()", "demo"]


@dataclass
class Demo:
    process: asyncio.subprocess.Process
    url: str
    output: list[str] = field(default_factory=list)

    def printed(self) -> str:
        return "".join(self.output)


async def _drain(demo: Demo, ready: asyncio.Event) -> None:
    assert demo.process.stdout is not None
    async for raw in demo.process.stdout:
        line = raw.decode(errors="replace")
        demo.output.append(line)
        if "supportbot demo ready" in line:
            ready.set()


@pytest.fixture
async def demo(tmp_path: Path) -> AsyncIterator[Demo]:
    port = free_port_trio()
    # Hermetic: no SUPPORTBOT_* of the machine (a PostgreSQL URL, Redis, a config file) leaks in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env["PYTHONUNBUFFERED"] = "1"
    process = await asyncio.create_subprocess_exec(
        *demo_command(),
        "--port",
        str(port),
        "--data-dir",
        str(tmp_path / "demo"),
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    found = Demo(process, f"http://127.0.0.1:{port}")
    ready = asyncio.Event()
    drain = asyncio.create_task(_drain(found, ready))
    try:
        waiting = asyncio.create_task(ready.wait())
        await asyncio.wait({waiting, drain}, timeout=START_TIMEOUT, return_when="FIRST_COMPLETED")
        if not ready.is_set():
            waiting.cancel()
            pytest.fail(f"the demo did not print 'ready':\n{found.printed()[-4000:]}")
        yield found
    finally:
        if process.returncode is None:  # the test failed before its own Ctrl-C
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        await asyncio.wait_for(drain, 10)
        print("demo output:\n" + found.printed()[-6000:])


async def say(pane: Any, text: str) -> None:
    await pane.locator(".composer .text").fill(text)
    await pane.locator(".composer .send").click()


async def test_sandbox_tour_and_clean_ctrl_c(page: Any, demo: Demo) -> None:
    assert f"{demo.url}/sandbox/" in demo.printed()  # the banner leads with the sandbox
    assert f"{demo.url}/console/" in demo.printed()
    await page.goto(f"{demo.url}/")  # the demo's root leads to the sandbox
    await page.wait_for_url(f"{demo.url}/sandbox/")
    await page.evaluate("window.__same_page = true")  # gone if the page ever reloads
    await expect(page.locator("#live")).to_have_class("live on")
    await expect(page.locator("#noauth")).to_contain_text("без входа")
    await expect(page.locator("#console-login")).to_have_text(DEMO_LOGIN)
    await expect(page.locator("#console-password")).to_have_text(DEMO_PASSWORD)
    tg = page.locator("#pane-telegram")
    vk = page.locator("#pane-vk")
    await expect(tg.locator(".user-id")).to_have_text(re.compile(r"^\d+$"))
    await expect(tg.locator(".name")).to_have_text("Иван")

    # Telegram: a question, the answer with its buttons, and what the bot understood beside it
    await say(tg, "где оплатить?")
    await expect(tg.locator(".msg.subscriber .text").last).to_have_text("где оплатить?")
    ways = tg.locator(".msg.bot", has_text="Оплатить связь").first
    await expect(ways.locator(".cause .intent")).to_have_text("payment_methods")
    await expect(ways.locator(".cause .confidence")).to_have_text(re.compile(r"^\d{1,3}%$"))
    await expect(ways.locator(".keyboard button.kb")).to_have_count(5)

    # a button pressed through the emulator as the user's tap; the bot answers that press
    await ways.locator("button.kb", has_text="СБП").click()
    sbp = tg.locator(".msg.bot", has_text="По СБП")
    await expect(sbp.locator(".cause")).to_have_text("button: step:payment_methods:sbp")
    await expect(tg.locator(".msg.pressed").last).to_contain_text("⚡ СБП")
    # the picture the bot uploaded to the emulator is served by the sandbox and decodes
    await expect(sbp.locator("img.photo")).to_be_visible()
    await page.wait_for_function(
        "() => { const i = document.querySelector('#pane-telegram img.photo');"
        " return i !== null && i.complete && i.naturalWidth > 0; }"
    )
    # back to the list, then a way to pay whose answer carries a link button
    await sbp.locator("button.kb", has_text="Другие способы").click()
    await expect(tg.locator(".msg.bot", has_text="Оплатить связь")).to_have_count(2)
    await (
        tg.locator(".msg.bot", has_text="Оплатить связь")
        .last.locator("button.kb", has_text="Картой")
        .click()
    )
    card = tg.locator(".msg.bot", has_text="Деньги приходят за минуту")
    link = card.locator("a.kb.url", has_text="личный кабинет")
    await expect(link).to_have_attribute("href", "https://lk.example-telecom.ru/pay")
    await expect(link).to_have_attribute("target", "_blank")

    # VK: the subscriber asks for a human; the bot hands off (intent `operator`)
    await expect(vk.locator(".name")).to_have_text("Мария Смирнова")
    await say(vk, "позовите оператора")
    await expect(vk.locator(".msg.subscriber .text").last).to_have_text("позовите оператора")
    await expect(vk.locator(".msg.bot .cause .intent", has_text="operator").first).to_be_visible()

    # the operator logs in to the console in another tab, takes the VK chat and answers
    console = await page.context.new_page()
    await console.goto(f"{demo.url}/console/login")
    await console.fill("#login", DEMO_LOGIN)
    await console.fill("#password", DEMO_PASSWORD)
    await console.click("#login-submit")
    await console.wait_for_url(f"{demo.url}/console/")
    row = console.locator("#queue tbody tr", has_text="Мария Смирнова")
    await expect(row).to_contain_text("VK")
    await expect(row).to_contain_text("позовите оператора")
    await row.locator("a.open-chat").click()
    await console.click("#take")
    await expect(console.locator("#chat-state")).to_have_text("у оператора")
    await console.fill("#reply-text", "Мария, здравствуйте! Я Анна, сейчас помогу.")
    await console.click("#reply-send")
    await expect(console.locator("#reply-text")).to_have_value("")

    # ... and the reply shows in the sandbox's VK pane, as the operator's
    await page.bring_to_front()
    joined = vk.locator(".msg.system", has_text="подключился специалист Анна")
    await expect(joined.locator(".author")).to_have_text("⚙️ система")
    reply = vk.locator(".msg.operator", has_text="Я Анна, сейчас помогу")
    await expect(reply.locator(".author")).to_have_text("👩‍💻 оператор Анна")
    await expect(reply.locator(".cause")).to_have_class(re.compile(r"\bnone\b"))

    # "new subscriber": a fresh id, an empty pane; the next message gets a fresh welcome
    old_id = int(await tg.locator(".user-id").inner_text())
    await tg.locator(".new-subscriber").click()
    await expect(tg.locator(".user-id")).not_to_have_text(str(old_id))
    await expect(tg.locator(".msg")).to_have_count(0)
    await expect(tg.locator(".empty")).to_be_visible()
    assert int(await tg.locator(".user-id").inner_text()) > old_id
    await tg.locator(".empty .start").click()  # Telegram's START of a new chat: /start
    welcome = tg.locator(".msg.bot", has_text="Привет, Иван!")
    await expect(welcome).to_be_visible()
    await expect(welcome.locator(".keyboard button.kb").first).to_be_visible()
    await expect(tg.locator(".msg.bot", has_text="По СБП")).to_have_count(0)
    await expect(vk.locator(".msg.operator")).to_have_count(1)  # the other pane is untouched

    # subscriber text is text: markup is shown, never run
    script = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
    await say(tg, script)
    await expect(tg.locator(".msg.subscriber .text").last).to_have_text(script)
    await expect(tg.locator(".msg.bot").last.locator(".cause .intent")).to_be_visible()
    assert await page.evaluate("typeof window.__xss") == "undefined"
    assert await page.locator(".messages script").count() == 0
    assert await page.locator(".msg.subscriber img").count() == 0
    assert await page.evaluate("window.__same_page") is True  # all of it without a reload

    # Ctrl-C, with both tabs still connected: the demo stops cleanly
    demo.process.send_signal(signal.SIGINT)
    code = await asyncio.wait_for(demo.process.wait(), 10)
    assert code == 0, demo.printed()[-3000:]


def telegram_emulator_url(demo: Demo) -> str:
    found = re.search(r"emulators:\s+Telegram (http://\S+)", demo.printed())
    assert found is not None, demo.printed()[-2000:]
    return found.group(1)


async def bot_sends(tg_url: str, chat_id: int, text: str, markup: dict[str, Any]) -> None:
    """What the bot would send, straight to the emulator's Bot API (no content needed)."""
    import aiohttp

    from supportbot.demo import DEMO_TG_TOKEN

    body = {"chat_id": chat_id, "text": text, "reply_markup": markup}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{tg_url}/bot{DEMO_TG_TOKEN}/sendMessage", json=body) as resp:
            assert resp.status == 200, await resp.text()


async def add_demo_sms(data_dir: Path, *rows: tuple[str, str]) -> None:
    """SMS as the demo backend's gateway writes them, into the running demo's database."""
    from storage.db import Database
    from storage.models import DemoSms

    db = Database(f"sqlite:///{data_dir / 'demo.db'}")
    try:
        async with db.transaction() as session:
            session.add_all(DemoSms(phone=phone, text=text) for phone, text in rows)
    finally:
        await db.dispose()


async def test_sandbox_shares_a_contact_shows_reply_keyboards_and_sms(
    page: Any, demo: Demo, tmp_path: Path
) -> None:
    """The Telegram pane's «📱 Поделиться номером» (own number) and «👤 Чужой контакт» reach the
    bot as contacts; a reply keyboard the bot sends shows above the input field, apart from
    inline buttons, and its buttons work (a text button, the contact button); the SMS panel
    lists the demo's SMS as they are written. All under the strict CSP, without a reload."""
    csp: list[str] = []
    page.on(
        "console", lambda m: csp.append(m.text) if "Content Security Policy" in m.text else None
    )
    tg_url = telegram_emulator_url(demo)
    await page.goto(f"{demo.url}/sandbox/")
    await page.evaluate("window.__same_page = true")
    tg = page.locator("#pane-telegram")
    await expect(tg.locator(".user-id")).to_have_text(re.compile(r"^\d+$"))
    user = int(await tg.locator(".user-id").inner_text())
    await expect(tg.locator(".contact-bar .phone")).to_have_value("+79110000001")
    await expect(page.locator("#pane-vk .contact-bar")).to_have_count(0)  # VK can't
    await expect(tg.locator(".reply-keyboard")).to_be_hidden()

    # own number: Telegram's contact with the sender's own user id; the bot answers the contact
    await tg.locator(".share-contact").click()
    mine = tg.locator(".msg.subscriber .attachment").last
    await expect(mine).to_have_text("📱 мой номер +79110000001")
    answer = tg.locator(".msg.bot .cause", has_text="attachment: contact").first
    await expect(answer).to_be_visible()
    # somebody else's number from the phone book
    await tg.locator(".contact-bar .phone").fill("8 911 000-00-02")
    await tg.locator(".forward-contact").click()
    await expect(tg.locator(".msg.subscriber .attachment").last).to_have_text(
        "👤 контакт Пётр: +79110000002"
    )
    # a number that is none: the pane says so, nothing is sent
    await tg.locator(".contact-bar .phone").fill("12")
    await tg.locator(".share-contact").click()
    await expect(tg.locator(".error")).to_contain_text("phone number")
    await expect(tg.locator(".msg.subscriber")).to_have_count(2)
    await tg.locator(".contact-bar .phone").fill("+79110000001")

    # a reply keyboard: above the input, not under the message; one-time, so a press hides it
    keyboard = {
        "keyboard": [
            [{"text": "📱 Поделиться номером", "request_contact": True}],
            [{"text": "Ввести вручную"}],
        ],
        "one_time_keyboard": True,
        "resize_keyboard": True,
        "input_field_placeholder": "Номер телефона",
    }
    await bot_sends(tg_url, user, "Поделитесь номером или введите его.", keyboard)
    asked = tg.locator(".msg.bot", has_text="Поделитесь номером или введите его.")
    await expect(asked).to_be_visible()
    await expect(asked.locator(".keyboard")).to_have_count(0)
    rk = tg.locator(".reply-keyboard")
    await expect(rk).to_be_visible()
    await expect(rk.locator("button.rk")).to_have_text(["📱 Поделиться номером", "Ввести вручную"])
    await expect(rk.locator("button.rk.contact")).to_have_count(1)
    await expect(tg.locator(".composer .text")).to_have_attribute("placeholder", "Номер телефона")
    await rk.locator("button.rk", has_text="Ввести вручную").click()
    await expect(tg.locator(".msg.subscriber .text").last).to_have_text("Ввести вручную")
    await expect(rk).to_be_hidden()
    await expect(tg.locator(".composer .text")).to_have_attribute("placeholder", "Сообщение")
    # again, and this time its contact button: the number in the field, as the own contact
    await bot_sends(tg_url, user, "Номер, пожалуйста.", keyboard)
    await expect(rk).to_be_visible()
    await rk.locator("button.rk.contact").click()
    await expect(tg.locator(".msg.subscriber").last).to_contain_text("📱 мой номер +79110000001")
    await expect(rk).to_be_hidden()

    # the SMS panel: empty, then the demo's SMS as they are written, newest first
    await expect(page.locator("#sms-empty")).to_be_visible()
    await add_demo_sms(tmp_path / "demo", ("+79110000001", "Код подтверждения: 4821"))
    await add_demo_sms(tmp_path / "demo", ("+79110000002", "Код подтверждения: 1177"))
    sms = page.locator("#sms-list li.sms")
    await expect(sms).to_have_count(2)
    await expect(sms.first.locator(".sms-phone")).to_have_text("+79110000002")
    await expect(sms.last.locator(".sms-text")).to_have_text("Код подтверждения: 4821")
    await expect(page.locator("#sms-empty")).to_be_hidden()
    got = await page.request.get(f"{demo.url}/sandbox/sms?phone=8%20911%20000-00-01")
    assert [s["text"] for s in await got.json()] == ["Код подтверждения: 4821"]

    assert await page.evaluate("window.__same_page") is True
    assert csp == []
