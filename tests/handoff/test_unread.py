"""An operator's unread chats, kept on the server (SQLite and PostgreSQL): a chat assigned and not
opened counts one, each subscriber message since the operator last had it open one more;
reading clears it (once: nothing unread, nothing written); a chat taken by the operator is not
news to them; a transferred chat is unread for its new operator only."""

from __future__ import annotations

from handoff.console import unread
from storage.db import Database
from storage.models import utcnow
from tests.handoff.test_desk import world


async def _counts(db: Database, operator_id: int) -> dict[str, object]:
    """The `/api/unread` answer without `mine` (checked on its own)."""
    async with db.session() as s:
        data = unread.as_json(await unread.for_operator(s, operator_id))
    async with db.session() as s:
        mine = (await unread.for_operator(s, operator_id)).chats
    assert data.pop("mine") == mine
    return data


async def test_unread_counts_follow_assignment_messages_and_reading(db: Database) -> None:
    w = await world(db)
    anna = await w.operator("anna", max_chats=3)
    conv = await w.queued("1")
    await w.say("1", "я тут подожду")  # written while waiting: before the chat was hers
    w.clock.now = utcnow()  # messages are stamped by the real clock: the desk's follows it here
    [assigned] = await w.desk.assign_waiting()
    at = (await w.conv(conv)).assigned_at
    assert assigned.operator_id == anna and at is not None
    assert await _counts(db, anna) == {
        "chats": {str(conv): 1},
        "total": 1,
        "new": [{"id": conv, "at": at.isoformat()}],
    }
    await w.say("1", "алло")
    await w.say("1", "есть кто?")
    counts = await _counts(db, anna)
    assert counts["chats"] == {str(conv): 3} and counts["total"] == 3

    boris = await w.operator("boris", max_chats=3, online=False)
    assert not await unread.mark_read(db, boris, conv)  # not his chat: his reading counts not
    w.events.clear()
    assert await unread.mark_read(db, anna, conv)
    assert await _counts(db, anna) == {"chats": {}, "total": 0, "new": []}
    assert {"type": "read", "conversation_id": conv, "operator_id": anna} in w.events
    w.events.clear()
    assert not await unread.mark_read(db, anna, conv)  # nothing unread: nothing written
    assert not any(e.get("type") == "read" for e in w.events)

    await w.say("1", "спасибо")
    assert await _counts(db, anna) == {"chats": {str(conv): 1}, "total": 1, "new": []}
    async with db.session() as s:
        assert (await unread.for_operator(s, anna)).chats == [conv]

    # transferred to Борис: new for him, gone for her
    w.clock.now = utcnow()
    await w.desk.transfer(anna, conv, to_operator=boris, note="")
    assert (await _counts(db, anna))["total"] == 0
    counts = await _counts(db, boris)
    assert counts["chats"] == {str(conv): 1} and [c["id"] for c in counts["new"]] == [conv]  # type: ignore[union-attr]

    # a chat she takes from the queue herself is not news to her
    await w.desk.set_status(anna, "away")
    other = await w.queued("2")
    w.clock.now = utcnow()
    await w.desk.take(anna, other)
    assert (await _counts(db, anna))["total"] == 0
    await w.say("2", "добрый день")
    assert (await _counts(db, anna))["chats"] == {str(other): 1}
