"""The console's personal-data duties over HTTP, on SQLite and PostgreSQL: audit entries for
logins, chat openings and actions; a disabled operator's session dies at once (API, pages and
open WebSockets); the admin pages for operators and the audit log (filters, pages, CSV)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from sqlalchemy import update

from handoff import auth
from handoff.console import live
from handoff.console.audit_page import _cell
from handoff.console.state import CONSOLE, Console
from storage.db import Database
from storage.models import AuditEntry, Message, Operator, utcnow
from tests.browser.audit_support import Site, dump, site
from tests.browser.conftest import PASSWORD, Client

__all__ = ["site"]

MSK = ZoneInfo("Europe/Moscow")  # the console's default handoff.timezone
OLD = (utcnow() - timedelta(days=40)).astimezone(MSK).date()  # the bot entries' day


async def test_logins_failed_logins_and_logouts_are_audited(site: Site) -> None:
    anna = await site.operator("anna")
    client = site.client()
    token = await client.login_token()
    async with client.http.post(
        f"{site.url}/login", data={"login": "anna", "password": "wrong-guess-1", "csrf": token}
    ) as resp:
        assert resp.status == 401
    token = await client.login_token()
    async with client.http.post(
        f"{site.url}/login", data={"login": "nobody", "password": "wrong-guess-2", "csrf": token}
    ) as resp:
        assert resp.status == 401
    assert (await client.log_in("anna")).status == 303
    async with client.http.post(
        f"{site.url}/logout", data={"csrf": client.csrf}, allow_redirects=False
    ) as resp:
        assert resp.status == 303

    entries = await site.entries()
    assert [(e.action, e.operator_id) for e in entries if e.action != "operator_added"] == [
        ("login_failed", anna),
        ("login_failed", None),  # an unknown login names nobody
        ("login", anna),
        ("logout", anna),
    ]
    failed, unknown, ok, out = [e for e in entries if e.action != "operator_added"]
    assert failed.details == {"login": "anna", "reason": "wrong_password"}
    assert unknown.details == {"login": "nobody", "reason": "wrong_password"}
    assert ok.details == {"login": "anna"} and out.details == {"login": "anna"}
    assert {e.ip for e in (failed, unknown, ok, out)} == {"127.0.0.1"}
    assert {e.actor for e in (failed, unknown, ok, out)} == {"operator"}
    assert "wrong-guess" not in dump(entries) and PASSWORD not in dump(entries)

    # the failure that reaches the rate limit says so; refused attempts after it add nothing
    for _ in range(5):  # (the login above reset the count)
        token = await client.login_token()
        async with client.http.post(
            f"{site.url}/login", data={"login": "anna", "password": "x" * 9, "csrf": token}
        ) as resp:
            assert resp.status == 401
    token = await client.login_token()
    async with client.http.post(
        f"{site.url}/login", data={"login": "anna", "password": "x" * 9, "csrf": token}
    ) as resp:
        assert resp.status == 429
    failures = await site.entries("login_failed")
    assert len(failures) == 7
    assert failures[-1].details.get("rate_limited") is True
    assert not any(f.details.get("rate_limited") for f in failures[:-1])


async def test_a_disabled_operator_is_told_so_at_login(site: Site) -> None:
    await site.operator("root", role="admin")
    await site.operator("boris")
    async with site.db.transaction() as s:
        await auth.disable_operator(s, "boris", by=auth.Actor(kind="cli"))
    client = site.client()
    token = await client.login_token()
    async with client.http.post(
        f"{site.url}/login", data={"login": "boris", "password": PASSWORD, "csrf": token}
    ) as resp:
        assert resp.status == 403
        assert "Учётная запись отключена" in await resp.text()
    token = await client.login_token()
    async with client.http.post(  # a wrong password learns nothing about the account
        f"{site.url}/login", data={"login": "boris", "password": "wrong-pass", "csrf": token}
    ) as resp:
        assert resp.status == 401 and "отключена" not in await resp.text()
    reasons = [e.details["reason"] for e in await site.entries("login_failed")]
    assert reasons == ["disabled", "wrong_password"]


async def test_chat_opened_is_written_once_per_operator_and_chat_per_window(
    site: Site,
) -> None:
    olga = await site.operator("olga")
    sup = await site.operator("sup", role="supervisor", groups=())
    chat = await site.chat()
    olga_c, sup_c = await site.logged_in("olga"), await site.logged_in("sup")

    assert (await olga_c.get(f"/chats/{chat.id}"))[0] == 200
    for _ in range(3):  # the page script re-reads the chat on every live event
        assert (await olga_c.get(f"/api/chats/{chat.id}"))[0] == 200
    assert (await sup_c.get(f"/api/chats/{chat.id}"))[0] == 200
    opened = await site.entries("chat_opened")
    assert [(e.operator_id, e.details["via"]) for e in opened] == [(olga, "page"), (sup, "api")]
    first = opened[0]
    assert (first.actor, first.subscriber_id, first.conversation_id, first.ip) == (
        "operator",
        chat.subscriber_id,
        chat.id,
        "127.0.0.1",
    )
    assert first.details["role"] == "operator" and first.details["unmasked"] == []
    assert opened[1].details["unmasked"] == ["account", "address"]

    # a refused view is no view
    timur = await site.operator("timur", groups=("tech",))
    timur_c = await site.logged_in("timur")
    assert (await timur_c.get(f"/api/chats/{chat.id}"))[0] == 403
    assert timur not in {e.operator_id for e in await site.entries("chat_opened")}

    # another process (or this one after the window) writes again only once the window passed
    state = _console(site)
    state.opened.clear()  # as if another process served the next request
    assert (await olga_c.get(f"/api/chats/{chat.id}"))[0] == 200
    assert len(await site.entries("chat_opened")) == 2  # the log said: already written
    async with site.db.transaction() as s:  # ten minutes later
        await s.execute(
            update(AuditEntry)
            .where(AuditEntry.action == "chat_opened")
            .values(at=utcnow() - timedelta(minutes=11))
        )
    state.opened.clear()
    assert (await olga_c.get(f"/api/chats/{chat.id}"))[0] == 200
    assert len(await site.entries("chat_opened")) == 3


def _console(site: Site) -> Console:

    for resource in site.app.web.router.resources():
        info = resource.get_info()
        if info.get("prefix") == "/console":
            return info["app"][CONSOLE]
    raise AssertionError("no console")


async def test_actions_in_the_console_are_audited(site: Site) -> None:
    olga = await site.operator("olga")
    sup = await site.operator("sup", role="supervisor", groups=())
    chat = await site.chat()
    olga_c, sup_c = await site.logged_in("olga"), await site.logged_in("sup")
    assert (await olga_c.post(f"/api/chats/{chat.id}/take"))[0] == 200
    assert (await olga_c.post(f"/api/chats/{chat.id}/reply", {"text": "Проверяю счёт"}))[0] == 200
    assert (await olga_c.post(f"/api/chats/{chat.id}/close", {"resolution": "solved"}))[0] == 200
    new = {"shortcut": "tariff", "title": "Тарифы", "text": "Тарифы тут", "groups": []}
    status, added = await sup_c.post("/api/canned", new)
    assert status == 201
    entries = await site.entries()
    acted = [(e.action, e.operator_id) for e in entries if e.conversation_id == chat.id]
    assert acted == [("chat_taken", olga), ("reply_sent", olga), ("chat_closed", olga)]
    [canned] = await site.entries("canned_added")
    assert canned.operator_id == sup and canned.ip == "127.0.0.1"
    assert canned.details == {"canned_id": added["id"], "shortcut": "tariff"}
    assert "Проверяю" not in dump(entries) and "Тарифы тут" not in dump(entries)


async def _hello(ws: aiohttp.ClientWebSocketResponse) -> None:
    assert (await ws.receive_json(timeout=5))["type"] == "hello"


async def _closed_with(ws: aiohttp.ClientWebSocketResponse, timeout: float) -> int | None:  # noqa: ASYNC109
    while True:
        msg = await ws.receive(timeout=timeout)
        if msg.type == aiohttp.WSMsgType.CLOSE:
            return int(msg.data)
        if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code
        # other events may arrive first (the operator's status, the queue)


async def test_disabling_kills_open_sessions_at_once(site: Site) -> None:
    await site.operator("root", role="admin")
    anna = await site.operator("anna")
    chat = await site.chat()
    anna_c, root_c = await site.logged_in("anna"), await site.logged_in("root")
    assert (await anna_c.post(f"/api/chats/{chat.id}/take"))[0] == 200
    assert (await anna_c.get(f"/chats/{chat.id}"))[0] == 200
    async with anna_c.http.ws_connect(f"{site.url}/ws") as ws:
        await _hello(ws)
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with root_c.http.post(
            f"{site.url}/operators/{anna}/disable",
            data={"csrf": root_c.csrf},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
            assert resp.headers["Location"] == f"/console/operators?done=disabled&id={anna}"
        assert await _closed_with(ws, 4) == live.SESSION_GONE
        # by the event, well before the periodic re-check
        assert loop.time() - started < live.RECHECK_SECONDS
    # the next request of any kind is refused
    assert (await anna_c.get("/api/queue"))[0] == 401
    assert (await anna_c.post(f"/api/chats/{chat.id}/reply", {"text": "ещё"}))[0] == 401
    status, _ = await anna_c.get(f"/chats/{chat.id}")
    assert status == 302
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await anna_c.http.ws_connect(f"{site.url}/ws")
    assert refused.value.status == 401
    # the chat she had is back in the queue, for someone else
    status, queue = await root_c.get("/api/queue")
    assert chat.id in [c["id"] for c in queue["queue"]]
    # she is no longer on the supervisor's list, nor someone to transfer a chat to
    status, figures = await root_c.get("/api/supervisor")
    assert anna not in [op["id"] for op in figures["operators"]]
    assert (await root_c.post(f"/api/chats/{chat.id}/take"))[0] == 200
    refused_to = await root_c.post(f"/api/chats/{chat.id}/transfer", {"operator_id": anna})
    assert refused_to[0] == 404


async def test_a_change_made_elsewhere_closes_sockets_by_the_periodic_check(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI changes the database without reaching this process's event bus."""
    monkeypatch.setattr(live, "RECHECK_SECONDS", 0.3)
    await site.operator("root", role="admin")
    await site.operator("vera")
    vera_c = await site.logged_in("vera")
    async with vera_c.http.ws_connect(f"{site.url}/ws") as ws:
        await _hello(ws)
        elsewhere = Database(site.db.url)  # no publish hook, like `supportbot operators`
        try:
            async with elsewhere.transaction() as s:
                await auth.disable_operator(s, "vera", by=auth.Actor(kind="cli"))
        finally:
            await elsewhere.dispose()
        assert await _closed_with(ws, live.RECHECK_SECONDS * 20 + 6) == live.SESSION_GONE
    assert (await vera_c.get("/api/queue"))[0] == 401


async def test_a_changed_role_reconnects_the_socket_with_the_new_one(site: Site) -> None:
    await site.operator("root", role="admin")
    lena = await site.operator("lena")
    lena_c, root_c = await site.logged_in("lena"), await site.logged_in("root")
    async with lena_c.http.ws_connect(f"{site.url}/ws") as ws:
        await _hello(ws)
        async with root_c.http.post(
            f"{site.url}/operators/{lena}/edit",
            data={"csrf": root_c.csrf, "name": "Лена", "role": "supervisor", "max_chats": "4"},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303
        assert await _closed_with(ws, 4) == live.RECONNECT
    status, _ = await lena_c.get("/supervisor")  # the session lives on, with the new role
    assert status == 200


async def test_only_ids_travel_over_the_socket(site: Site) -> None:
    await site.operator("sup", role="supervisor", groups=())
    sup_c = await site.logged_in("sup")
    async with sup_c.http.ws_connect(f"{site.url}/ws") as ws:
        await _hello(ws)
        site.app.bus.publish(
            {
                "type": "message",
                "conversation_id": 5,
                "text": "мой лс 100200300",
                "phone": "+79161234567",
                "subscriber": {"address": "Садовая 12"},
            }
        )
        event = await ws.receive_json(timeout=5)
        assert event == {"type": "message", "conversation_id": 5}
        site.app.bus.publish({"type": "session_changed", "operator_id": 999})
        site.app.bus.publish({"type": "closed", "conversation_id": 5})
        assert await ws.receive_json(timeout=5) == {"type": "closed", "conversation_id": 5}


async def test_admin_pages_are_for_admins_only(site: Site) -> None:
    await site.operator("root", role="admin", groups=())
    target = await site.operator("olga")
    await site.operator("sup", role="supervisor", groups=())
    await site.operator("egor", role="editor", groups=())
    root_c = await site.logged_in("root")
    for login in ("olga", "sup", "egor"):
        client = await site.logged_in(login)
        for path in ("/audit", "/audit.csv", "/operators"):
            status, html = await client.get(path)
            assert status == 403, (login, path)
            assert 'href="/console/audit"' not in html and 'href="/console/operators"' not in html
        async with client.http.post(
            f"{site.url}/operators/{target}/disable",
            data={"csrf": client.csrf},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 403
    # a forged form without the session's token
    async with root_c.http.post(
        f"{site.url}/operators/{target}/disable", data={"csrf": "forged"}, allow_redirects=False
    ) as resp:
        assert resp.status == 403
    async with site.db.session() as s:
        op = await s.get(Operator, target)
        assert op is not None and op.disabled_at is None
    status, html = await root_c.get("/")
    assert 'href="/console/audit"' in html and 'href="/console/operators"' in html


async def _form(client: Client, path: str, **fields: str | list[str]) -> tuple[int, str, str]:
    data = aiohttp.FormData()
    data.add_field("csrf", client.csrf)
    for key, value in fields.items():
        for v in value if isinstance(value, list) else [value]:
            data.add_field(key, v)
    async with client.http.post(f"{client.base}{path}", data=data, allow_redirects=False) as resp:
        return resp.status, resp.headers.get("Location", ""), await resp.text()


async def test_the_operators_page_manages_accounts(site: Site) -> None:
    root = await site.operator("root", role="admin", groups=())
    root_c = await site.logged_in("root")
    status, where, _ = await _form(
        root_c,
        "/operators",
        login="nina",
        name="Нина",
        password="nina-password-1",
        role="operator",
        groups=["consult", "tech"],
        max_chats="4",
        telegram_user_id="",
    )
    assert status == 303 and where.startswith("/console/operators?done=added&id=")
    nina = int(where.rsplit("=", 1)[1])
    status, html = await root_c.get(where.removeprefix("/console"))
    assert status == 200 and "Учётная запись nina создана." in html
    assert "style=" not in html and "<script>" not in html
    # refused: a taken login, a short password (the password is never echoed back)
    status, _, html = await _form(
        root_c, "/operators", login="nina", name="X", password="whatever-long", max_chats="3"
    )
    assert status == 409 and "Такой логин уже есть" in html and "whatever-long" not in html
    status, _, html = await _form(
        root_c, "/operators", login="zoe", name="Зоя", password="short", max_chats="3"
    )
    assert status == 400 and "не короче 8 символов" in html

    nina_c = site.client()
    assert (await nina_c.log_in("nina", "nina-password-1")).status == 303
    # change role, groups, seats
    status, _, _ = await _form(
        root_c, f"/operators/{nina}/edit", name="Нина П.", role="supervisor", groups="tech",
        max_chats="5",
    )  # fmt: skip
    assert status == 303
    async with site.db.session() as s:
        op = await s.get(Operator, nina)
        assert op is not None
        assert (op.name, op.role, op.groups, op.max_chats) == ("Нина П.", "supervisor", ["tech"], 5)
    # reset the password: her session ends, the new password works
    status, _, _ = await _form(root_c, f"/operators/{nina}/password", password="fresh-pass-22")
    assert status == 303
    assert (await nina_c.get("/api/queue"))[0] == 401
    assert (await site.client().log_in("nina", "fresh-pass-22")).status == 303
    # disable / enable
    assert (await _form(root_c, f"/operators/{nina}/disable"))[0] == 303
    status, html = await root_c.get("/operators")
    assert re.search(r'data-login="nina" class="ad-disabled"', html)
    assert (await _form(root_c, f"/operators/{nina}/disable"))[0] == 409
    assert (await _form(root_c, f"/operators/{nina}/enable"))[0] == 303
    # not yourself
    status, _, html = await _form(root_c, f"/operators/{root}/disable")
    assert status == 409 and "Свою учётную запись нельзя" in html
    status, _, html = await _form(root_c, f"/operators/{root}/remove", confirm="yes")
    assert status == 409
    # remove: needs the box ticked; her name stays on her messages
    chat = await site.chat(state="closed")
    async with site.db.transaction() as s:
        s.add(
            Message(
                conversation_id=chat.id,
                direction="out",
                author="operator",
                operator_id=nina,
                text="Готово",
            )
        )
    assert (await _form(root_c, f"/operators/{nina}/remove"))[0] == 400
    assert (await _form(root_c, f"/operators/{nina}/remove", confirm="yes"))[0] == 303
    status, data = await root_c.get(f"/api/chats/{chat.id}")
    assert [m["author_label"] for m in data["messages"] if m["author"] == "operator"] == ["Нина П."]
    assert nina not in [o["id"] for o in data["choices"]["operators"]]  # no transfers to her
    status, html = await root_c.get("/operators")
    assert re.search(r'data-login="nina" class="ad-removed"', html)
    assert (await _form(root_c, f"/operators/{nina}/enable"))[0] == 409
    assert (await _form(root_c, "/operators/99999/disable"))[0] == 404

    actions = [
        (e.action, e.operator_id, e.details.get("target_id"))
        for e in await site.entries()
        if e.action.startswith(("operator_", "password_"))
    ]
    assert actions[1:] == [  # after root's own creation by the test
        ("operator_added", root, nina),
        ("operator_changed", root, nina),
        ("password_reset", root, nina),
        ("operator_disabled", root, nina),
        ("operator_enabled", root, nina),
        ("operator_removed", root, nina),
    ]
    assert all(e.ip == "127.0.0.1" for e in await site.entries() if e.operator_id == root)
    assert "nina-password-1" not in dump(await site.entries())


async def _audit_rows(client: Client, query: str = "") -> tuple[int, list[str], str]:
    status, html = await client.get(f"/audit{query}")
    return status, re.findall(r'<tr data-id="\d+" data-action="([a-z_]+)"', html), html


async def test_the_audit_page_filters_and_pages(site: Site) -> None:
    root = await site.operator("root", role="admin", groups=())
    anna = await site.operator("anna")
    chat, other = await site.chat(), await site.chat()
    root_c, anna_c = await site.logged_in("root"), await site.logged_in("anna")
    assert (await anna_c.get(f"/api/chats/{chat.id}"))[0] == 200
    assert (await root_c.get(f"/api/chats/{other.id}"))[0] == 200
    async with site.db.transaction() as s:
        from services import audit

        # A busy log: an old page of bot entries, at noon Moscow time 40 days ago and the two
        # hours before (one calendar day in UTC and in Moscow, whatever the time of the run).
        noon = datetime.combine(OLD, time(12, 0), MSK).astimezone(UTC)
        for n in range(120):
            entry = audit.record(s, "verified", actor="bot", subscriber_id=other.subscriber_id)
            entry.at = noon - timedelta(minutes=n)

    status, actions, html = await _audit_rows(root_c)
    assert status == 200 and len(actions) == 50
    assert actions[:3] == ["chat_opened", "chat_opened", "login"]  # newest first
    assert "Записей: 126, страница 1 из 3" in html  # 2 added, 2 logins, 2 opened, 120 bot
    assert 'id="au-older" href="/console/audit?page=2"' in html and "au-newer" not in html
    status, actions, html = await _audit_rows(root_c, "?page=3")
    assert len(actions) == 26 and set(actions) == {"verified"}
    assert 'href="/console/audit?page=2"' in html
    # by operator: what they did and what was done to their account
    status, actions, _ = await _audit_rows(root_c, f"?operator={anna}")
    assert actions == ["chat_opened", "login", "operator_added"]
    # by action, by subscriber, by dates
    status, actions, _ = await _audit_rows(root_c, "?action=chat_opened")
    assert actions == ["chat_opened", "chat_opened"]
    status, actions, _ = await _audit_rows(root_c, f"?subscriber={chat.subscriber_id}")
    assert actions == ["chat_opened"]
    # Dates are the console's (handoff.timezone, Moscow): after 21:00 UTC "today" is tomorrow's.
    today = utcnow().astimezone(MSK).date()
    status, actions, _ = await _audit_rows(root_c, f"?from={OLD}&to={OLD}")
    assert actions and set(actions) == {"verified"}
    status, actions, _ = await _audit_rows(
        root_c, f"?from={today - timedelta(days=1)}&operator={root}&action=chat_opened"
    )
    assert actions == ["chat_opened"]
    for bad in ("?from=yesterday", "?subscriber=abc", "?from=2026-02-02&to=2026-01-01"):
        status, html = await root_c.get(f"/audit{bad}")
        assert status == 400 and 'id="au-error"' in html
    status, html = await root_c.get(f"/audit?operator={anna}")
    assert "открыл чат" in html and "Anna (anna)" in html


async def test_the_audit_csv_is_for_excel_and_is_itself_audited(site: Site) -> None:
    root = await site.operator("root", role="admin", groups=())
    anna = await site.operator("anna")
    chat = await site.chat()
    client = site.client()
    token = await client.login_token()
    async with client.http.post(  # a login crafted to be a formula in Excel
        f"{site.url}/login",
        data={"login": '=HYPERLINK("http://evil")', "password": "whatever1", "csrf": token},
    ) as resp:
        assert resp.status == 401
    anna_c, root_c = await site.logged_in("anna"), await site.logged_in("root")
    assert (await anna_c.get(f"/api/chats/{chat.id}"))[0] == 200

    async with root_c.http.get(f"{site.url}/audit.csv") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv" and resp.charset == "utf-8"
        assert re.fullmatch(
            r'attachment; filename="audit_\d{4}-\d\d-\d\d_\d{4}\.csv"',
            resp.headers["Content-Disposition"],
        )
        raw = await resp.read()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM
    text = raw[3:].decode("utf-8")
    assert "\r\n" in text
    rows = list(csv.reader(io.StringIO(text), delimiter=";"))
    assert rows[0] == [
        "Время", "Кто", "ID оператора", "Оператор", "Действие", "Описание", "ID абонента",
        "ID чата", "IP", "Подробности",
    ]  # fmt: skip
    assert all(len(r) == 10 for r in rows)
    opened = next(r for r in rows if r[4] == "chat_opened")
    assert opened[1:6] == ["operator", str(anna), "anna", "chat_opened", "открыл чат"]
    assert opened[6:9] == [str(chat.subscriber_id), str(chat.id), "127.0.0.1"]
    assert json.loads(opened[9])["via"] == "api"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+03:00", opened[0])  # Europe/Moscow
    failed = next(r for r in rows if r[4] == "login_failed")
    assert failed[9].startswith("{")  # JSON: no formula
    assert not any(cell.startswith("=") for r in rows for cell in r)

    async with root_c.http.get(f"{site.url}/audit.csv?action=chat_opened") as resp:
        only = list(csv.reader(io.StringIO((await resp.read())[3:].decode()), delimiter=";"))
    assert [r[4] for r in only[1:]] == ["chat_opened"]
    exports = await site.entries("audit_exported")
    assert [(e.operator_id, e.details) for e in exports] == [
        (root, {"filters": {}, "rows": len(rows) - 1}),
        (root, {"filters": {"action": "chat_opened"}, "rows": 1}),
    ]
    assert (await root_c.get("/audit.csv?to=nope"))[0] == 400


def test_a_formula_in_a_cell_is_neutralised() -> None:
    assert _cell("=1+1") == "'=1+1" and _cell("+7") == "'+7" and _cell("@x") == "'@x"
    assert _cell("-2") == "'-2" and _cell("anna") == "anna" and _cell(None) == ""
