"""Internal notes on SQLite and PostgreSQL: an operator's note and the notes transfers carry are
listed in order with who wrote them; none of them is ever a message or an outbox row."""

from __future__ import annotations

from sqlalchemy import func, select

from handoff.console import notes
from storage.db import Database
from storage.models import Conversation, Message, OutboxItem
from tests.handoff.test_desk import world


async def test_notes_and_transfer_notes_listed_never_sent(db: Database) -> None:
    w = await world(db)
    conv_id = await w.queued("1")
    anna = await w.operator("anna")
    await w.desk.assign_waiting()
    async with db.session() as s:
        counted = (
            await s.scalar(select(func.count()).select_from(Message)),
            await s.scalar(select(func.count()).select_from(OutboxItem)),
        )
    async with db.transaction() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None
        notes.add(s, conv, anna, "перезвонить после 18:00")
    assert w.events[-1] == {"type": "note", "conversation_id": conv_id, "operator_id": anna}
    async with db.session() as s:  # a note writes no message and nothing to send
        assert counted == (
            await s.scalar(select(func.count()).select_from(Message)),
            await s.scalar(select(func.count()).select_from(OutboxItem)),
        )

    await w.desk.transfer(anna, conv_id, group="tech", note="роутер мигает красным")
    techie = await w.operator("techie", groups=("tech",))
    await w.desk.assign_waiting()
    boris = await w.operator("boris", groups=("tech",))
    await w.desk.transfer(techie, conv_id, to_operator=boris, note="посмотри, пожалуйста")
    await w.desk.transfer(boris, conv_id, to_operator=techie)  # no note: not listed

    names = {anna: "Анна", techie: "Техник", boris: "Борис"}
    async with db.session() as s:
        listed = await notes.listing(s, conv_id, names=names, when=lambda at: at.strftime("%H:%M"))
    assert [(n["author"], n["text"], n["label"], n["transfer"]) for n in listed] == [
        ("Анна", "перезвонить после 18:00", None, False),
        ("Анна", "роутер мигает красным", "при передаче в группу tech", True),
        ("Техник", "посмотри, пожалуйста", "при передаче оператору Борис", True),
    ]
    texts = " ".join(await w.sent_texts(conv_id))
    assert "перезвонить" not in texts and "роутер" not in texts and "посмотри" not in texts
