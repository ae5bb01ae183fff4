"""The desk's operator actions leave audit entries (ids only, never the reply's text or a
transfer's note), on SQLite and PostgreSQL, whoever calls the desk (console or Telegram group);
and a disabled operator can't act through the desk at all."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from handoff import auth
from handoff.desk import DeskError
from storage.db import Database
from storage.models import AuditEntry, Conversation
from tests.handoff.test_desk import world


async def test_desk_actions_are_audited_without_texts(db: Database) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna", online=False)
    boris = await w.operator("boris", online=False)
    async with db.session() as s:
        found = await s.get(Conversation, conv)
        assert found is not None
        subscriber = found.subscriber_id

    await w.desk.take(anna, conv)
    await w.desk.reply(anna, conv, "Секретный текст ответа")
    await w.desk.transfer(anna, conv, to_operator=boris, note="личная заметка")
    await w.desk.transfer(boris, conv, group="tech", note="ещё заметка")
    await w.desk.take(boris, conv)
    await w.desk.return_to_bot(boris, conv)
    await w.queued("1")
    await w.desk.take(anna, conv)
    await w.desk.close(anna, conv, "solved")

    async with db.session() as s:
        entries = (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
    desk = [e for e in entries if e.conversation_id == conv]
    assert [(e.action, e.operator_id) for e in desk] == [
        ("chat_taken", anna),
        ("reply_sent", anna),
        ("chat_transferred", anna),
        ("chat_transferred", boris),
        ("chat_taken", boris),
        ("returned_to_bot", boris),
        ("chat_taken", anna),
        ("chat_closed", anna),
    ]
    assert all(e.actor == "operator" and e.subscriber_id == subscriber for e in desk)
    assert desk[1].details["message_id"] > 0 and desk[1].details["image"] is False
    assert desk[2].details == {"to_operator": boris}
    assert desk[3].details == {"to_group": "tech"}
    assert desk[7].details == {"resolution": "solved"}
    dumped = repr([e.details for e in entries])
    assert "Секретный" not in dumped and "заметка" not in dumped


async def test_a_disabled_operator_cant_act_through_the_desk(db: Database) -> None:
    w = await world(db)
    conv = await w.queued("1")
    anna = await w.operator("anna")
    async with db.transaction() as s:
        await auth.disable_operator(s, anna, by=auth.Actor(kind="cli"))
    assert (await w.conv(conv)).state == "queued"
    for act in (
        w.desk.take(anna, conv),
        w.desk.reply(anna, conv, "привет"),
        w.desk.set_status(anna, "online"),
    ):
        with pytest.raises(DeskError) as refused:
            await act
        assert refused.value.status == 403
    assert await w.desk.assign_waiting() == []  # offline and disabled: assigned nothing
