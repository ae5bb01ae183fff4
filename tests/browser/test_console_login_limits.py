"""Console login limits over real HTTP against the real App (SQLite): the client address behind a
trusted proxy (and an untrusted peer's X-Forwarded-For ignored), per-address and per-login
limits, password spraying, an operator a stranger guesses at still getting in (at once from an
address they used, within the window from a new one), the bounded hashing gate, and request
header/body timeouts."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from handoff import auth
from handoff.config import HandoffSettings
from handoff.console import app as console_app
from storage.models import AuditEntry
from supportbot import app as supportbot_app
from supportbot.app import App
from supportbot.settings import ConfigError, load_settings
from tests.browser.conftest import PASSWORD

WINDOW = 3.0  # seconds: short, so "after the window" is quick to reach


@pytest.fixture(autouse=True)
def fast_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The production gate paces hashes at 2 a second; these tests check limits, not pacing."""
    monkeypatch.setattr(auth, "PASSWORDS", auth.HashGate(workers=1, waiting=8, per_second=100))


def limits(**values: Any) -> HandoffSettings:
    given: dict[str, Any] = {
        "hours": {},
        "login_window": WINDOW,
        "login_failures_per_login_ip": 3,
        "login_failures_per_ip": 100,
        "login_spray_logins": 100,
        "login_failures_per_login": 100,
        **values,
    }
    return HandoffSettings(**given)


class Attempts:
    """Login attempts as a browser behind (or without) a proxy would send them."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.http = aiohttp.ClientSession()

    async def __call__(
        self, login: str, password: str = "wrong-password", *, via: str | None = None
    ) -> tuple[int, int | None]:
        """(status, Retry-After) of one attempt; `via`: the X-Forwarded-For header sent."""
        headers = {"Cookie": "sb_console_login=tok"}  # the double-submit token, echoed below
        if via is not None:
            headers["X-Forwarded-For"] = via
        async with self.http.post(
            f"{self.app.url}/console/login",
            data={"login": login, "password": password, "csrf": "tok"},
            headers=headers,
            allow_redirects=False,
        ) as resp:
            await resp.read()
            retry = resp.headers.get("Retry-After")
            return resp.status, int(retry) if retry is not None else None

    async def failed_from(self, login: str) -> list[str | None]:
        """The addresses the audit log recorded for failed logins of `login`."""
        async with self.app.db.session() as s:
            rows = await s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "login_failed")
                .order_by(AuditEntry.id)
            )
            return [r.ip for r in rows if r.details.get("login") == login]


@pytest.fixture
async def site(
    start_app: Callable[..., Awaitable[App]],
) -> Callable[..., Awaitable[Attempts]]:
    made: list[Attempts] = []

    async def start(handoff: HandoffSettings) -> Attempts:
        app = await start_app(handoff=handoff)
        async with app.db.transaction() as s:
            await auth.add_operator(s, login="anna", name="Anna", password=PASSWORD)
        attempts = Attempts(app)
        made.append(attempts)
        return attempts

    yield start
    for attempts in made:
        await attempts.http.close()


async def test_behind_a_trusted_proxy_each_client_is_limited_on_its_own(site: Any) -> None:
    attempt = await site(limits(trusted_proxies=["127.0.0.1"]))
    for _ in range(3):
        assert (await attempt("anna", via="203.0.113.1"))[0] == 401
    status, retry = await attempt("anna", PASSWORD, via="203.0.113.1")
    assert status == 429 and retry is not None and 1 <= retry <= WINDOW  # even the right password
    # the client can't escape by prepending addresses: our proxy appended the one it saw
    assert (await attempt("anna", PASSWORD, via="192.0.2.99, 203.0.113.1"))[0] == 429
    # another client behind the same proxy is not held back by the first one's failures
    assert (await attempt("anna", via="203.0.113.2"))[0] == 401
    assert (await attempt("anna", PASSWORD, via="203.0.113.2"))[0] == 303
    assert await attempt.failed_from("anna") == ["203.0.113.1"] * 3 + ["203.0.113.2"]


async def test_an_untrusted_peers_forwarded_header_is_ignored(site: Any) -> None:
    attempt = await site(limits())  # no trusted proxies: the peer (127.0.0.1) is the client
    for n in range(3):
        assert (await attempt("anna", via=f"203.0.113.{n}"))[0] == 401
    # a new made-up address each time changes nothing: the peer's address is what counts
    assert (await attempt("anna", PASSWORD, via="203.0.113.77"))[0] == 429
    assert await attempt.failed_from("anna") == ["127.0.0.1"] * 3


async def test_spraying_many_logins_from_one_address_is_throttled(site: Any) -> None:
    attempt = await site(limits(trusted_proxies=["127.0.0.0/8"], login_spray_logins=3))
    sprayer = "198.51.100.9"
    for login in ("anna", "boris", "vera"):
        assert (await attempt(login, "Password1!", via=sprayer))[0] == 401
    status, retry = await attempt("gleb", "Password1!", via=sprayer)  # a fourth login: held back
    assert status == 429 and retry is not None and retry <= WINDOW
    assert (await attempt("anna", PASSWORD, via=sprayer))[0] == 429  # and so is this address
    assert (await attempt("gleb", "Password1!", via="198.51.100.10"))[0] == 401  # not others
    assert (await attempt("anna", PASSWORD, via="198.51.100.11"))[0] == 303


async def test_many_failures_from_one_address_are_limited_across_logins(site: Any) -> None:
    attempt = await site(
        limits(trusted_proxies=["127.0.0.1"], login_failures_per_ip=4, login_spray_logins=100)
    )
    for login in ("anna", "boris", "anna", "boris"):
        assert (await attempt(login, via="198.51.100.20"))[0] == 401
    assert (await attempt("anna", PASSWORD, via="198.51.100.20"))[0] == 429
    assert (await attempt("anna", PASSWORD, via="198.51.100.21"))[0] == 303


async def test_a_stranger_can_not_lock_the_operator_out(site: Any) -> None:
    attempt = await site(limits(trusted_proxies=["127.0.0.1"], login_failures_per_login=5))
    assert (await attempt("anna", PASSWORD, via="192.0.2.10"))[0] == 303  # her usual address
    # one stranger guessing: held back after 3; Anna, from anywhere else, is not
    for _ in range(3):
        assert (await attempt("anna", via="203.0.113.5"))[0] == 401
    assert (await attempt("anna", via="203.0.113.5"))[0] == 429
    assert (await attempt("anna", PASSWORD, via="192.0.2.20"))[0] == 303
    # strangers on many addresses: past 5 failures of "anna" in the window, new addresses wait
    for n in range(6, 9):
        await attempt("anna", via=f"203.0.113.{n}")
    status, retry = await attempt("anna", PASSWORD, via="192.0.2.30")
    assert status == 429 and retry is not None and retry <= WINDOW  # bounded by the window
    # ... but not the addresses she logged in from (the audit log knows them)
    assert (await attempt("anna", PASSWORD, via="192.0.2.10"))[0] == 303
    assert (await attempt("anna", PASSWORD, via="192.0.2.20"))[0] == 303
    await asyncio.sleep(retry)
    assert (await attempt("anna", PASSWORD, via="192.0.2.30"))[0] == 303


async def test_the_hashing_gate_refuses_at_once_when_full() -> None:
    gate = auth.HashGate(workers=1, waiting=1, per_second=1000)
    release = threading.Event()
    running = [asyncio.ensure_future(gate.run(release.wait, 5)) for _ in range(2)]
    await asyncio.sleep(0.05)
    started = time.monotonic()
    with pytest.raises(auth.Busy):
        await gate.run(time.sleep, 0)
    assert time.monotonic() - started < 0.05  # refused at once, not after a wait
    assert gate.full
    release.set()
    assert await asyncio.gather(*running) == [True, True]
    assert not gate.full
    # the rate: hashes start at most `per_second` apart
    paced = auth.HashGate(workers=2, waiting=8, per_second=10)
    started = time.monotonic()
    await asyncio.gather(*(paced.run(time.sleep, 0) for _ in range(4)))
    assert time.monotonic() - started >= 0.29


async def test_a_flood_gets_429_while_the_gate_is_full(
    site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempt = await site(limits(trusted_proxies=["127.0.0.1"]))
    gate = auth.HashGate(workers=1, waiting=0, per_second=1000)
    monkeypatch.setattr(auth, "PASSWORDS", gate)
    release = threading.Event()
    busy = asyncio.ensure_future(gate.run(release.wait, 5))
    await asyncio.sleep(0.05)
    status, retry = await attempt("anna", PASSWORD, via="192.0.2.40")
    release.set()
    await busy
    assert status == 429 and retry is not None
    assert await attempt.failed_from("anna") == []  # unchecked: not a failure, not audited
    assert (await attempt("anna", PASSWORD, via="192.0.2.40"))[0] == 303


async def test_slow_request_bodies_and_headers_are_cut_off(
    start_app: Callable[..., Awaitable[App]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(console_app, "BODY_TIMEOUT", 0.5)
    monkeypatch.setattr(supportbot_app, "HTTP_IDLE_TIMEOUT", 1.0)
    app = await start_app()
    host, port = "127.0.0.1", int(app.url.rsplit(":", 1)[1])
    # a body that never finishes: 408 once BODY_TIMEOUT passes, and the connection closes
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST /console/login HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nlogin=a"
    )
    started = time.monotonic()
    answer = await asyncio.wait_for(reader.read(), 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert 0.4 <= time.monotonic() - started < 3
    writer.close()
    # headers that never finish: the connection is closed after HTTP_IDLE_TIMEOUT
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b"GET /console/login HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    started = time.monotonic()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert 0.9 <= time.monotonic() - started < 3
    writer.close()


def test_trusted_proxies_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "SUPPORTBOT_HANDOFF__TRUSTED_PROXIES"
    monkeypatch.setenv(name, "10.0.0.5, 172.16.0.0/12")
    assert load_settings().handoff.trusted_proxies == ["10.0.0.5", "172.16.0.0/12"]
    monkeypatch.setenv(name, '["10.0.0.5"]')
    assert load_settings().handoff.trusted_proxies == ["10.0.0.5"]
    monkeypatch.setenv(name, "10.0.0.x")
    with pytest.raises(ConfigError, match=f"^{name}: .*'10.0.0.x' is not an IP address or CIDR"):
        load_settings()
    monkeypatch.delenv(name)
    monkeypatch.setenv("SUPPORTBOT_HANDOFF__TRUSTED_PROXY", "10.0.0.5")
    with pytest.raises(ConfigError, match=f"did you mean {name}"):
        load_settings()
