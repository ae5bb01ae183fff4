"""The console's "Сбои" page: supervisors see what the bot could not do for good (dead letters,
undeliverable replies), send a failed reply again and mark a dead letter as dealt with.
Over plain HTTP through the real App and the Telegram emulator."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from sqlalchemy import select

from dialogs.pipeline import APOLOGY
from storage import repo
from storage.models import OutboxItem, OutboxStatus
from tests.browser.conftest import Console, wait_for

BROKEN = 7401  # a bug only this subscriber's data triggers
REFUSED = 7402  # Telegram refuses to deliver to this chat for a while (400)


async def form_post(client: Any, path: str) -> int:
    async with client.http.post(
        f"{client.base}{path}", data={"csrf": client.csrf}, allow_redirects=False
    ) as resp:
        return resp.status


async def test_supervisors_see_failures_and_send_a_failed_reply_again(
    console: Console, clients: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = repo.get_or_create_account

    async def buggy(session: Any, **kw: Any) -> Any:
        if kw["user_id"] == str(BROKEN):
            raise ValueError("subscriber record has no region")
        return await real(session, **kw)

    monkeypatch.setattr(repo, "get_or_create_account", buggy)
    tg = console.telegram
    tg.send_text(BROKEN, "сколько стоит роуминг в Турции?")
    await tg.wait_sent(BROKEN, 1)
    assert tg.sent(BROKEN)[0]["text"] == APOLOGY
    tg.fail("sendMessage", error_code=400, description="Bad Request: chat not found",
            chat_id=REFUSED)  # fmt: skip
    tg.send_text(REFUSED, "где оплатить?")

    async def failed_row() -> OutboxItem | None:
        async with console.app.db.session() as s:
            query = select(OutboxItem).where(OutboxItem.status == OutboxStatus.FAILED)
            return (await s.scalars(query)).first()

    row = await wait_for(failed_row, 10, "the refused reply kept as failed")
    await console.operator("olga", role="operator")
    await console.operator("sveta", role="supervisor")

    operator = clients()
    await operator.log_in("olga")
    status, _ = await operator.get("/failures")
    assert status == 403

    supervisor = clients()
    await supervisor.log_in("sveta")
    status, html = await supervisor.get("/failures")
    assert status == 200
    assert "сколько стоит роуминг в Турции?" in html and "no region" in html
    assert "chat not found" in html and "Оплатить связь" in html
    assert re.search(r'id="dead-total">1<', html) and re.search(r'id="failed-total">1<', html)

    tg.clear_faults()  # the chat is reachable again: send it once more
    assert await form_post(supervisor, f"/failures/outbox/{row.id}/retry") == 303
    await tg.wait_sent(REFUSED, 1)
    assert "Оплатить связь" in (tg.sent(REFUSED)[0]["text"] or "")

    letter = re.search(r'<tr data-id="(\d+)">', html.split('id="dead-letters"')[1])
    assert letter is not None
    assert await form_post(supervisor, f"/failures/dead/{letter.group(1)}/resolve") == 303
    await asyncio.sleep(0.2)
    status, html = await supervisor.get("/failures")
    assert 'id="dead-empty"' in html and 'id="failed-empty"' in html
    # Without the session's token a form is refused (CSRF), and nothing changes.
    async with supervisor.http.post(
        f"{supervisor.base}/failures/dead/{letter.group(1)}/resolve", allow_redirects=False
    ) as resp:
        assert resp.status == 403
