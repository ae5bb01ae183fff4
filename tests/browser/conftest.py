"""Fixtures for the operator console tests: the real App with the Telegram and VK emulators,
operators, a logged-in HTTP client, and headless Debian Chromium driven by Playwright.

Without /usr/bin/chromium the browser tests skip with the reason locally and fail in CI (env CI
set): `make test` installs it (apt-get install chromium)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from handoff.auth import add_operator
from storage.models import Conversation
from supportbot.app import App
from tests.e2e.conftest import start_app, telegram, telegram_settings, vk, vk_settings

__all__ = ["start_app", "telegram", "vk"]  # the e2e fixtures, re-exported for these tests

CHROMIUM = os.environ.get("SUPPORTBOT_CHROMIUM", "/usr/bin/chromium")
CLOSE_WITHIN = 30  # seconds for a browser page or the browser to close (see `browser`)


def chromium_path() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


PASSWORD = "correct-horse-battery"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the console in headless Chromium")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)  # the page fixture screenshots failures
    return report


@dataclass
class Console:
    app: App
    telegram: TelegramEmulator
    vk: VKEmulator

    @property
    def url(self) -> str:
        return f"{self.app.url}/console"

    async def operator(
        self,
        login: str,
        *,
        role: str = "operator",
        groups: tuple[str, ...] = ("consult",),
        name: str | None = None,
    ) -> int:
        async with self.app.db.session() as s, s.begin():
            op = await add_operator(
                s,
                login=login,
                name=name or login.capitalize(),
                password=PASSWORD,
                role=role,
                groups=list(groups),
            )
            return op.id

    async def conversation(self, state: str | None = None, timeout: float = 10.0) -> Conversation:  # noqa: ASYNC109
        """The newest conversation (in `state`, if given), waiting for it to get there."""

        async def find() -> Conversation | None:
            async with self.app.db.session() as s:
                query = select(Conversation).order_by(Conversation.id.desc())
                if state is not None:
                    query = query.where(Conversation.state == state)
                return (await s.scalars(query.limit(1))).first()

        return await wait_for(find, timeout, f"a conversation in state {state}")

    async def route(self, operator_id: int, conv_id: int) -> None:
        """The routing loop gives the waiting chat to the operator: they go on the line until it
        is theirs, then take a break (they keep it; nothing new comes to them)."""
        await self.app.desk.set_status(operator_id, "online")

        async def theirs() -> bool:
            async with self.app.db.session() as s:
                conv = await s.get(Conversation, conv_id)
                return conv is not None and conv.operator_id == operator_id

        await wait_for(theirs, 10, f"chat {conv_id} assigned to operator {operator_id}")
        await self.app.desk.set_status(operator_id, "away")

    async def queue_telegram(self, user: int, *, first: str = "где оплатить?") -> Conversation:
        """A Telegram subscriber asks the bot something, then asks for a human."""
        self.telegram.send_text(user, first)
        await self.telegram.wait_sent(user, 1)
        self.telegram.send_text(user, "позовите оператора")
        return await self.conversation("queued")

    async def queue_vk(self, user: int, *, first: str = "где оплатить?") -> Conversation:
        self.vk.send_text(user, first)
        await self.vk.wait_sent(user, 1)
        self.vk.send_text(user, "позовите оператора")
        return await self.conversation("queued")


async def wait_for(
    probe: Callable[[], Awaitable[Any]],
    timeout: float = 10.0,  # noqa: ASYNC109
    what: str = "a condition",
) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = await probe()
        if found:
            return found
        if loop.time() > deadline:
            raise TimeoutError(f"waited {timeout}s for {what}")
        await asyncio.sleep(0.05)


async def wait_text(sent: Callable[[], list[dict[str, Any]]], text: str) -> dict[str, Any]:
    """The message the bot sent whose text (or caption) contains `text`."""

    async def probe() -> dict[str, Any] | None:
        for message in sent():
            if text in (message.get("text") or message.get("caption") or ""):
                return message
        return None

    found: dict[str, Any] = await wait_for(probe, 10.0, f"a message with {text!r}")
    return found


@pytest.fixture
async def console(
    telegram: TelegramEmulator, vk: VKEmulator, start_app: Callable[..., Awaitable[App]]
) -> Console:
    """The app with both channels; it stops before the emulators do (fixture order)."""
    app = await start_app(
        telegram=telegram_settings(telegram, "polling"), vk=vk_settings(vk, "longpoll")
    )
    await vk.wait_listening()
    return Console(app, telegram, vk)


class Client:
    """An aiohttp client logged in to the console (the cookie jar holds the session)."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.csrf = ""

    async def log_in(self, login: str, password: str = PASSWORD) -> aiohttp.ClientResponse:
        token = await self.login_token()
        resp = await self.http.post(
            f"{self.base}/login",
            data={"login": login, "password": password, "csrf": token},
            allow_redirects=False,
        )
        resp.release()
        if resp.status == 303:
            async with self.http.get(f"{self.base}/") as page:
                found = re.search(r'<meta name="csrf-token" content="([^"]*)"', await page.text())
                assert found is not None
                self.csrf = found.group(1)
        return resp

    async def login_token(self) -> str:
        async with self.http.get(f"{self.base}/login") as resp:
            found = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
        assert found is not None
        return found.group(1)

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(f"{self.base}{path}", allow_redirects=False) as resp:
            return resp.status, await _body(resp)

    async def post(self, path: str, json: Any = None, *, csrf: str | None = "") -> tuple[int, Any]:
        """POST JSON with the session's CSRF token (csrf=None: no token; a string: that one)."""
        token = self.csrf if csrf == "" else csrf
        headers = {"X-CSRF-Token": token} if token is not None else {}
        async with self.http.post(
            f"{self.base}{path}", json=json or {}, headers=headers, allow_redirects=False
        ) as resp:
            return resp.status, await _body(resp)


async def _body(resp: aiohttp.ClientResponse) -> Any:
    if resp.content_type == "application/json":
        return await resp.json()
    return await resp.text()


@pytest.fixture
async def clients(console: Console) -> AsyncIterator[Callable[[], Client]]:
    """Factory of separate HTTP clients (separate cookie jars = separate operators)."""
    sessions: list[aiohttp.ClientSession] = []

    def make() -> Client:
        # unsafe=True: aiohttp keeps no cookies for IP-address hosts (127.0.0.1) otherwise.
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        return Client(http, console.url)

    yield make
    for http in sessions:
        await http.close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    executable = await asyncio.to_thread(chromium_path)
    if executable is None:
        reason = f"Debian chromium not installed ({CHROMIUM}); `make test` installs it"
        if os.environ.get("CI"):
            pytest.fail(reason + " (CI must run the browser tests)")
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox"],
        )
        try:
            yield chromium
        finally:  # bounded: a close that never returns must not hang the whole run
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(chromium.close(), CLOSE_WITHIN)


@pytest.fixture
async def page(browser: Any, request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """A fresh browser page; on failure its screenshot lands in tmp_path, and its console
    errors are printed (pytest shows them with the failure)."""
    context = await browser.new_context(locale="ru-RU")
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        shot = tmp_path / "failure.png"
        try:
            await tab.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        except Exception as exc:
            print(f"no screenshot: {exc}")
        print("browser console errors:", *errors, sep="\n  ")
    with contextlib.suppress(TimeoutError):  # bounded, as the browser's close
        await asyncio.wait_for(context.close(), CLOSE_WITHIN)


async def log_in(page: Any, console: Console, login: str, password: str = PASSWORD) -> None:
    await page.goto(f"{console.url}/login")
    await page.fill("#login", login)
    await page.fill("#password", password)
    await page.click("#login-submit")
    await page.wait_for_url(f"{console.url}/")
