"""The operator console over plain HTTP (no browser): sessions, CSRF, roles, rate limits, the
chat actions through the desk, canned replies, image uploads, supervisor figures, the WebSocket.
All through the real App with the Telegram and VK emulators, on SQLite."""

from __future__ import annotations

import asyncio
import re
import struct
import zlib
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from handoff.config import HandoffSettings
from storage.models import Conversation, ConversationState, Operator, Upload
from tests.browser.conftest import PASSWORD, Client, Console, wait_text

USER = 5101


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def console_routes(console: Console) -> list[tuple[str, str, str]]:
    """(method, concrete path, route name) of every console route, from the sub-app's router."""
    for resource in console.app.web.router.resources():
        info = resource.get_info()
        if info.get("prefix") == "/console":
            subapp: web.Application = info["app"]
            break
    else:
        raise AssertionError("the console is not mounted at /console")
    routes = []
    for route in subapp.router.routes():
        resource = route.resource
        assert resource is not None and resource.name, f"unnamed console route {route}"
        info = resource.get_info()
        path = info.get("path") or info.get("formatter") or info.get("prefix")
        path = re.sub(r"\{(\w+)(:[^}]*)?\}", lambda m: "1" if m.group(1) == "id" else "x", path)
        if route.method == "HEAD":
            continue
        routes.append((route.method, path, resource.name))
    return routes


async def test_every_route_refuses_without_a_session(console: Console, clients: Any) -> None:
    routes = console_routes(console)
    names = {name for _, _, name in routes}
    assert {"index", "chat", "supervisor", "ws", "api:queue", "api:reply", "api:status"} <= names
    anonymous: Client = clients()
    checked = 0
    for method, path, name in routes:
        if name.startswith("public:"):
            continue
        url = f"{console.app.url}{path}"
        async with anonymous.http.request(method, url, allow_redirects=False) as resp:
            if name.startswith("api:") or name == "ws":
                assert resp.status == 401, (method, path, resp.status)
                assert (await resp.json())["error"]
            else:
                assert resp.status == 302, (method, path, resp.status)
                assert resp.headers["Location"] == "/console/login"
        checked += 1
    assert checked == len([r for r in routes if not r[2].startswith("public:")]) >= 17
    # a made-up cookie is no better than none
    forged = aiohttp.ClientSession(
        cookie_jar=aiohttp.CookieJar(unsafe=True), cookies={"sb_console": "forged"}
    )
    async with forged, forged.get(f"{console.url}/api/queue") as resp:
        assert resp.status == 401
    # the public routes answer
    async with anonymous.http.get(f"{console.url}/static/console.js") as resp:
        assert resp.status == 200
    async with anonymous.http.get(console.url, allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"] == "/console/"


async def test_login_cookie_headers_and_logout(console: Console, clients: Any) -> None:
    await console.operator("anna")
    client: Client = clients()
    resp = await client.log_in("anna")
    assert resp.status == 303 and resp.headers["Location"] == "/console/"
    cookie = next(
        h for h in resp.headers.getall("Set-Cookie") if h.startswith("sb_console=")
    ).lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie
    assert "secure" not in cookie.split(";")[1:]  # plain http in tests (secure_cookies=False)

    async with client.http.get(f"{console.url}/") as page:
        html = await page.text()
        assert page.headers["Content-Security-Policy"].startswith(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'"
        )
        assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "<script>" not in html and 'src="/console/static/console.js"' in html
    assert "style=" not in html  # the CSP forbids inline styles: none are used

    status, body = await client.get("/api/queue")
    assert status == 200 and body["me"]["name"] == "Anna"
    assert (await client.post("/api/status", {"status": "online"}))[0] == 200
    async with client.http.post(
        f"{console.url}/logout", data={"csrf": client.csrf}, allow_redirects=False
    ) as resp:
        assert resp.status == 303 and resp.headers["Location"] == "/console/login"
    assert (await client.get("/api/queue"))[0] == 401
    async with console.app.db.session() as s:  # who logs out takes no more chats
        op = await s.scalar(select(Operator).where(Operator.login == "anna"))
        assert op is not None and op.status == "offline"


async def test_login_is_protected_and_rate_limited(console: Console, clients: Any) -> None:
    await console.operator("boris")
    client: Client = clients()
    url = f"{console.url}/login"
    form = {"login": "boris", "password": PASSWORD}
    # no pre-session token (a cross-site form post carries none)
    async with client.http.post(url, data=form, allow_redirects=False) as resp:
        assert resp.status == 403
    token = await client.login_token()
    async with client.http.post(
        url,
        data={**form, "csrf": token},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 403
    for _ in range(5):
        token = await client.login_token()
        async with client.http.post(
            url, data={"login": "boris", "password": "wrong-password", "csrf": token}
        ) as resp:
            assert resp.status == 401
            assert "Неверный логин или пароль" in await resp.text()
    token = await client.login_token()
    async with client.http.post(url, data={**form, "csrf": token}) as resp:
        assert resp.status == 429  # even the right password, until the minute passes
        assert int(resp.headers["Retry-After"]) > 0
    other: Client = clients()  # limits are per login + IP: another login is not blocked
    await console.operator("vera")
    assert (await other.log_in("vera")).status == 303


async def test_secure_cookie_behind_https(start_app: Any, tmp_path: Any) -> None:
    app = await start_app(handoff=HandoffSettings(hours={}, secure_cookies=True))
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{app.url}/console/login") as resp,
    ):
        cookie = resp.headers["Set-Cookie"].lower()
    assert "; secure" in cookie and "samesite=strict" in cookie and "httponly" in cookie


async def test_state_changes_need_the_csrf_token(console: Console, clients: Any) -> None:
    await console.operator("gleb")
    client: Client = clients()
    await client.log_in("gleb")
    assert (await client.post("/api/status", {"status": "away"}, csrf=None)) == (
        403,
        {"error": "Сессия устарела (нет CSRF-токена): обновите страницу."},
    )
    assert (await client.post("/api/status", {"status": "away"}, csrf="x" * 43))[0] == 403
    # the session cookie alone is what a forged cross-site form would carry: refused
    async with client.http.post(
        f"{console.url}/logout", data={"login": "gleb"}, allow_redirects=False
    ) as resp:
        assert resp.status == 403
    assert (await client.post("/api/status", {"status": "away"})) == (
        200,
        {"status": "away", "released": []},
    )
    async with console.app.db.session() as s:
        op = await s.scalar(select(Operator).where(Operator.login == "gleb"))
        assert op is not None and op.status == "away"


async def test_roles_are_enforced_on_the_server(console: Console, clients: Any) -> None:
    await console.operator("olga", groups=("consult",))
    await console.operator("timur", groups=("tech",))
    await console.operator("sveta", role="supervisor", groups=())
    await console.operator("egor", role="editor", groups=())
    conv = await console.queue_telegram(USER)
    assert conv.skill_group == "consult"

    olga, timur, sveta, egor = clients(), clients(), clients(), clients()
    for client, login in ((olga, "olga"), (timur, "timur"), (sveta, "sveta"), (egor, "egor")):
        assert (await client.log_in(login)).status == 303

    # editor: a page about content/, no chats, no APIs
    status, html = await egor.get("/")
    assert status == 200 and "content/" in html and 'id="queue"' not in html
    for path in ("/api/queue", f"/api/chats/{conv.id}", "/api/canned", "/api/supervisor"):
        assert (await egor.get(path))[0] == 403, path
    assert (await egor.post(f"/api/chats/{conv.id}/take"))[0] == 403
    assert (await egor.get(f"/chats/{conv.id}"))[0] == 403

    # an operator of another group does not see the chat and can't take it
    assert (await timur.get("/api/queue"))[1]["queue"] == []
    assert (await timur.get(f"/api/chats/{conv.id}"))[0] == 403
    assert (await timur.post(f"/api/chats/{conv.id}/take"))[0] == 403
    assert (await timur.get("/supervisor"))[0] == 403
    assert (await timur.get("/api/supervisor"))[0] == 403

    # the group's operator sees it, may take it, but not reply before taking
    assert [c["id"] for c in (await olga.get("/api/queue"))[1]["queue"]] == [conv.id]
    assert (await olga.post(f"/api/chats/{conv.id}/reply", {"text": "hi"}))[0] == 409
    assert (await olga.post(f"/api/chats/{conv.id}/take")) == (200, {"ok": True})
    assert (await olga.post(f"/api/chats/{conv.id}/take"))[0] == 409
    # now it is olga's: timur still can't act on it
    assert (await timur.post(f"/api/chats/{conv.id}/reply", {"text": "hi"}))[0] == 403

    # a supervisor sees everything and the figures
    status, data = await sveta.get(f"/api/chats/{conv.id}")
    assert status == 200 and data["conversation"]["operator"]["name"] == "Olga"
    status, figures = await sveta.get("/api/supervisor")
    assert status == 200
    assert {op["name"]: op["load"] for op in figures["operators"]}["Olga"] == 1
    assert "egor" not in {op["login"] for op in figures["operators"]}
    # taken but not answered yet: counted as waiting, not hidden
    today = figures["today"]
    assert (today["answered"], today["waiting"], today["abandoned"]) == (0, 1, 0)
    status, html = await sveta.get("/supervisor")
    assert status == 200 and "Своевременный первый ответ" in html
    assert 'id="sv-entries">0 / 1 / 0<' in html and "ушли без ответа" in html


async def test_a_chat_through_the_api_with_full_context(console: Console, clients: Any) -> None:
    await console.operator("irina", groups=("consult", "tech"))
    await console.operator("kolya", groups=("consult",))
    conv = await console.queue_telegram(USER)
    async with console.app.db.session() as s, s.begin():
        from storage.models import Subscriber, Ticket
        from storage.models import utcnow as now

        sub = await s.get(Subscriber, conv.subscriber_id)
        assert sub is not None
        sub.phone = "+79161234567"
        sub.account_number = "100200300"
        sub.data = {"customer": {"name": "Иван", "phone": "+79161234567", "account": "100200300"}}
        s.add(
            Ticket(
                number="T-77",
                kind="technician_visit",
                subscriber_id=sub.id,
                conversation_id=conv.id,
                due_at=now(),
            )
        )
        c = await s.get(Conversation, conv.id)
        assert c is not None
        c.slots = {**c.slots, "address": "Ленина 1", "_flow": "secret"}

    irina: Client = clients()
    await irina.log_in("irina")
    status, data = await irina.get(f"/api/chats/{conv.id}")
    assert status == 200
    texts = [(m["author"], m["text"]) for m in data["messages"]]
    assert ("subscriber", "где оплатить?") in texts
    assert any(a == "bot" and "Оплатить связь" in t for a, t in texts)
    intents = {m["text"]: m["nlu"] for m in data["messages"] if m["author"] == "subscriber"}
    assert intents["где оплатить?"]["intent"] == "payment_methods"
    assert intents["позовите оператора"]["intent"] == "operator"
    assert intents["позовите оператора"]["percent"].endswith("%")
    assert data["subscriber"]["phone"] == "+7 ••• •••-45-67"
    # an operator sees account numbers and addresses masked (handoff/console/privacy.py)
    assert data["subscriber"]["account_number"] == "•••••0300"
    customer = {row["key"]: row["value"] for row in data["subscriber"]["customer"]}
    assert customer["phone"] == "+7 ••• •••-45-67" and customer["account"] == "•••••0300"
    assert {row["key"] for row in data["slots"]} == {"address"}
    assert [t["number"] for t in data["tickets"]] == ["T-77"]
    assert [ch["channel"] for ch in data["channels"]] == ["telegram"]
    assert data["actions"] == {
        "take": True,
        "reply": False,
        "transfer": False,
        "return": False,
        "close": False,
        "verify": False,  # asking the subscriber to verify is for the operator who has the chat
    }

    assert (await irina.post(f"/api/chats/{conv.id}/take"))[0] == 200
    joined = await wait_text(lambda: console.telegram.sent(USER), "подключился специалист Irina")
    assert joined
    status, body = await irina.post(f"/api/chats/{conv.id}/reply", {"text": "Сейчас проверю"})
    assert status == 200 and body["message_id"] > 0
    await wait_text(lambda: console.telegram.sent(USER), "Сейчас проверю")

    # transfer to a colleague (with a note), who closes it: the subscriber is asked for CSAT
    status, data = await irina.get(f"/api/chats/{conv.id}")
    assert data["actions"]["verify"] is True and data["actions"]["reply"] is True
    kolya_id = next(op["id"] for op in data["choices"]["operators"] if op["name"] == "Kolya")
    assert (
        await irina.post(f"/api/chats/{conv.id}/transfer", {"operator_id": kolya_id, "note": "VIP"})
    )[0] == 200
    assert (await irina.post(f"/api/chats/{conv.id}/reply", {"text": "ещё"}))[0] == 403
    kolya: Client = clients()
    await kolya.log_in("kolya")
    assert [c["id"] for c in (await kolya.get("/api/queue"))[1]["mine"]] == [conv.id]
    assert (await kolya.post(f"/api/chats/{conv.id}/close", {"resolution": "nope"}))[0] == 400
    assert (await kolya.post(f"/api/chats/{conv.id}/close", {"resolution": "solved"}))[0] == 200
    async with console.app.db.session() as s:
        closed = await s.get(Conversation, conv.id)
        assert closed is not None and closed.state == ConversationState.RATING
        assert closed.resolution == "solved"

    # figures for the supervisor: one timely first response, one assignment... today
    await console.operator("sup", role="admin", groups=())
    sup: Client = clients()
    await sup.log_in("sup")
    today = (await sup.get("/api/supervisor"))[1]["today"]
    assert today["first_responses"] == 1 and today["timely_first_response_pct"] == 100.0
    assert (today["answered"], today["waiting"], today["abandoned"]) == (1, 0, 0)
    assert today["assigned"] == 1 and today["missed_pct"] == 0.0
    assert today["avg_first_response_s"] is not None


async def test_return_to_bot_and_status(console: Console, clients: Any) -> None:
    await console.operator("lena")
    conv = await console.queue_telegram(USER)
    lena: Client = clients()
    await lena.log_in("lena")
    assert (await lena.post("/api/status", {"status": "busy"}))[0] == 400
    assert (await lena.post(f"/api/chats/{conv.id}/take"))[0] == 200
    assert (await lena.post(f"/api/chats/{conv.id}/transfer", {}))[0] == 400
    assert (await lena.post(f"/api/chats/{conv.id}/transfer", {"group": "nope"}))[0] == 400
    assert (await lena.post(f"/api/chats/{conv.id}/return"))[0] == 200
    async with console.app.db.session() as s:
        back = await s.get(Conversation, conv.id)
        assert back is not None and back.state == ConversationState.BOT
    status, data = await lena.get(f"/api/chats/{conv.id}")  # no longer hers: read-only history
    assert status == 200 and not any(data["actions"].values()), data["actions"]
    console.telegram.send_text(USER, "где оплатить?")  # the bot answers again
    await wait_text(lambda: console.telegram.sent(USER)[-1:], "Оплатить связь")

    # back in the queue, taken again, then handed to another skill group
    console.telegram.send_text(USER, "позовите оператора")
    again = await console.conversation("queued")
    assert again.id == conv.id
    assert (await lena.post(f"/api/chats/{conv.id}/take"))[0] == 200
    status, _ = await lena.post(
        f"/api/chats/{conv.id}/transfer", {"group": "tech", "note": "роутер"}
    )
    assert status == 200
    async with console.app.db.session() as s:
        moved = await s.get(Conversation, conv.id)
        assert moved is not None and moved.state == ConversationState.QUEUED
        assert moved.skill_group == "tech"
    assert (await lena.get(f"/api/chats/{conv.id}"))[0] == 403  # not her group's queue


async def test_canned_replies_search_and_add(console: Console, clients: Any) -> None:
    await console.operator("masha", groups=("tech",))
    await console.operator("sup", role="supervisor", groups=())
    masha, sup = clients(), clients()
    await masha.log_in("masha")
    await sup.log_in("sup")

    everything = (await masha.get("/api/canned"))[1]["canned"]
    assert {"hello", "wait", "pay", "reboot", "bye"} <= {r["shortcut"] for r in everything}
    by_shortcut = (await masha.get("/api/canned?q=/pay"))[1]["canned"]
    assert by_shortcut[0]["shortcut"] == "pay"
    found = (await masha.get("/api/canned?q=МИНУТКУ"))[1]["canned"]  # Cyrillic, any case
    assert [r["shortcut"] for r in found] == ["wait"]
    assert (await masha.get("/api/canned?q=роутер"))[1]["canned"][0]["shortcut"] == "reboot"

    new = {"shortcut": "/tariff", "title": "Тарифы", "text": "Тарифы тут", "groups": ["consult"]}
    assert (await masha.post("/api/canned", new))[0] == 403
    status, added = await sup.post("/api/canned", new)
    assert status == 201 and added["shortcut"] == "tariff"
    assert (await sup.post("/api/canned", new))[0] == 409
    assert (await sup.post("/api/canned", {**new, "shortcut": "a b"}))[0] == 400
    assert (await sup.post("/api/canned", {**new, "shortcut": "x", "groups": ["zzz"]}))[0] == 400
    # for the consult group only: a tech operator doesn't see it, the supervisor does
    assert (await masha.get("/api/canned?q=tariff"))[1]["canned"] == []
    assert (await sup.get("/api/canned?q=tariff"))[1]["canned"][0]["text"] == "Тарифы тут"


async def test_reply_with_an_image(console: Console, clients: Any) -> None:
    await console.operator("nina")
    conv = await console.queue_telegram(USER)
    nina: Client = clients()
    await nina.log_in("nina")
    assert (await nina.post(f"/api/chats/{conv.id}/take"))[0] == 200
    url = f"{console.url}/api/chats/{conv.id}/reply"
    headers = {"X-CSRF-Token": nina.csrf}

    def form(data: bytes, text: str = "") -> aiohttp.FormData:
        f = aiohttp.FormData()
        f.add_field("text", text)
        f.add_field("image", data, filename="x.png", content_type="image/png")
        return f

    async with nina.http.post(url, data=form(b"<html>not an image</html>"), headers=headers) as r:
        assert r.status == 400 and "PNG, JPEG или GIF" in (await r.json())["error"]
    big = tiny_png() + b"\0" * (5 * 1024 * 1024)
    async with nina.http.post(url, data=form(big), headers=headers) as r:
        assert r.status == 413
    async with nina.http.post(url, data=form(tiny_png(), "вот схема"), headers=headers) as r:
        assert r.status == 200, await r.text()
    photo = await wait_text(lambda: console.telegram.sent(USER), "вот схема")
    assert photo["method"] == "sendPhoto"
    async with console.app.db.session() as s:  # in the database, for every app process
        uploads = (await s.scalars(select(Upload))).all()
    assert len(uploads) == 1 and uploads[0].data == tiny_png()  # the refused ones: not stored
    assert re.fullmatch(r"[0-9a-f]{32}\.png", uploads[0].name)
    on_disk = console.app.settings.data_dir / "uploads"  # only a send's temporary copy, gone
    assert not on_disk.exists() or list(on_disk.iterdir()) == []

    data = (await nina.get(f"/api/chats/{conv.id}"))[1]
    [image] = [a for m in data["messages"] for a in m["attachments"] if a["url"]]
    async with nina.http.get(f"{console.app.url}{image['url']}") as r:
        assert r.status == 200 and r.content_type == "image/png"
    anonymous: Client = clients()
    async with anonymous.http.get(f"{console.app.url}{image['url']}") as r:
        assert r.status == 401


async def test_websocket_needs_a_session_and_pushes_events(console: Console, clients: Any) -> None:
    await console.operator("pavel")
    await console.operator("roma", groups=("tech",))
    anonymous: Client = clients()
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await anonymous.http.ws_connect(f"{console.url}/ws")
    assert refused.value.status == 401

    pavel, roma = clients(), clients()
    await pavel.log_in("pavel")
    await roma.log_in("roma")
    with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
        await pavel.http.ws_connect(f"{console.url}/ws", origin="https://evil.example")
    assert foreign.value.status == 403

    async with (
        pavel.http.ws_connect(f"{console.url}/ws") as ws,
        roma.http.ws_connect(f"{console.url}/ws") as other,
    ):
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
        assert (await other.receive_json(timeout=5))["type"] == "hello"
        conv = await console.queue_telegram(USER)
        event = await ws.receive_json(timeout=5)
        while event["type"] != "queued":
            event = await ws.receive_json(timeout=5)
        assert event == {"type": "queued", "conversation_id": conv.id}
        console.telegram.send_text(USER, "ау")
        while (event := await ws.receive_json(timeout=5))["type"] != "message":
            pass
        assert event["conversation_id"] == conv.id
        # the tech operator heard nothing about a consult chat
        with pytest.raises(asyncio.TimeoutError):
            await other.receive_json(timeout=0.5)
