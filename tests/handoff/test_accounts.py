"""Operator account management (handoff/auth.py) on SQLite and PostgreSQL: disable, enable,
remove, reset a password, change role/groups/seats; the rules (not yourself, not the last
admin); sessions ending with the account; chats going back to the queue; every change an audit
entry naming who did it and to whom; and the desk refusing a disabled operator."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from handoff import auth
from handoff.auth import Actor, AuthError, DisabledError
from storage.db import Database
from storage.models import (
    AuditEntry,
    ChannelAccount,
    ConsoleSession,
    Conversation,
    ConversationEvent,
    ConversationState,
    Operator,
    Subscriber,
    utcnow,
)

PASSWORD = "correct-horse-battery"
CLI = Actor(kind="cli", details={"os_user": "root"})


async def add(db: Database, login: str, role: str = "operator", **kw: Any) -> int:
    async with db.transaction() as s:
        op = await auth.add_operator(
            s, login=login, name=login.capitalize(), password=PASSWORD, role=role, **kw
        )
        return op.id


async def log_in(db: Database, login: str, password: str = PASSWORD) -> auth.Login:
    async with db.transaction() as s:
        return await auth.log_in(s, login, password)


async def entries(db: Database, action: str | None = None) -> list[AuditEntry]:
    async with db.session() as s:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return list((await s.scalars(query)).all())


def events_of(db: Database) -> list[dict[str, Any]]:
    published: list[dict[str, Any]] = []
    db.on_commit(publish=published.append)
    return published


async def test_disable_ends_sessions_requeues_chats_and_refuses_login(db: Database) -> None:
    admin = await add(db, "root", role="admin")
    anna = await add(db, "anna", groups=["consult"])
    first = await log_in(db, "anna")
    second = await log_in(db, "anna")
    async with db.transaction() as s:
        sub = Subscriber()
        s.add(sub)
        await s.flush()
        acc = ChannelAccount(subscriber_id=sub.id, channel="vk", external_user_id="1", chat_id="1")
        s.add(acc)
        await s.flush()
        queued_at = utcnow()
        conv = Conversation(
            subscriber_id=sub.id,
            channel_account_id=acc.id,
            channel="vk",
            state=ConversationState.WITH_OPERATOR,
            skill_group="consult",
            operator_id=anna,
            queued_at=queued_at,
            assigned_at=queued_at,
        )
        s.add(conv)
        await s.flush()
        conv_id = conv.id
        op = await s.get(Operator, anna)
        assert op is not None
        op.status = "online"
    published = events_of(db)

    by = Actor(kind="operator", operator_id=admin, ip="10.0.0.7")
    async with db.transaction() as s:
        await auth.disable_operator(s, anna, by=by)

    async with db.session() as s:
        assert await auth.session_for(s, first.token) is None
        assert await auth.session_for(s, second.token) is None
        assert (
            await s.scalar(select(ConsoleSession.id).where(ConsoleSession.operator_id == anna))
            is None
        )
        op = await s.get(Operator, anna)
        assert op is not None and op.disabled_at is not None and op.status == "offline"
        conv = await s.get(Conversation, conv_id)
        assert conv is not None and conv.state == ConversationState.QUEUED
        assert conv.operator_id is None and conv.queued_at == queued_at  # keeps its place
        kinds = (await s.scalars(select(ConversationEvent.kind))).all()
        assert "released" in kinds and "missed" not in kinds  # not counted as a miss
    assert {"type": "session_ended", "operator_id": anna} in published
    assert {"type": "queued", "conversation_id": conv_id} in published

    [entry] = await entries(db, "operator_disabled")
    assert (entry.actor, entry.operator_id, entry.ip) == ("operator", admin, "10.0.0.7")
    assert entry.details["target_id"] == anna and entry.details["login"] == "anna"
    assert entry.details["sessions_ended"] == 2 and entry.details["chats_released"] == [conv_id]

    # the right password says "disabled", a wrong one says nothing more than usual
    with pytest.raises(DisabledError):
        await log_in(db, "anna")
    with pytest.raises(AuthError) as wrong:
        await log_in(db, "anna", "not-the-password")
    assert not isinstance(wrong.value, DisabledError)
    with pytest.raises(AuthError, match="already disabled"):
        async with db.transaction() as s:
            await auth.disable_operator(s, "anna", by=by)

    async with db.transaction() as s:
        await auth.enable_operator(s, "anna", by=CLI)
    assert (await log_in(db, "anna")).operator.id == anna
    [enabled] = await entries(db, "operator_enabled")
    assert enabled.actor == "cli" and enabled.operator_id is None
    assert enabled.details == {"target_id": anna, "login": "anna", "os_user": "root"}


async def test_nobody_disables_themselves_and_the_last_admin_stays(db: Database) -> None:
    root = await add(db, "root", role="admin")
    me = Actor(kind="operator", operator_id=root)
    for change in (auth.disable_operator, auth.remove_operator):
        with pytest.raises(AuthError) as refused:
            async with db.transaction() as s:
                await change(s, root, by=me)
        assert refused.value.code == "self"
    with pytest.raises(AuthError) as demote_self:
        async with db.transaction() as s:
            await auth.update_operator(s, root, by=me, role="operator")
    assert demote_self.value.code == "self"
    # the CLI is not an operator, but the last active admin stays all the same
    for change in (auth.disable_operator, auth.remove_operator):
        with pytest.raises(AuthError) as last:
            async with db.transaction() as s:
                await change(s, "root", by=CLI)
        assert last.value.code == "last_admin"
    with pytest.raises(AuthError) as last_demoted:
        async with db.transaction() as s:
            await auth.update_operator(s, "root", by=CLI, role="supervisor")
    assert last_demoted.value.code == "last_admin"
    # with a second admin, one may go
    await add(db, "deputy", role="admin")
    async with db.transaction() as s:
        await auth.remove_operator(s, "root", by=CLI)
    async with db.session() as s:
        op = await s.get(Operator, root)
        assert op is not None and auth.state_of(op) == "removed"


async def test_remove_is_a_soft_delete(db: Database) -> None:
    await add(db, "root", role="admin")
    boris = await add(db, "boris", telegram_user_id="424242")
    await log_in(db, "boris")
    async with db.transaction() as s:
        await auth.remove_operator(s, "boris", by=CLI)
    async with db.session() as s:
        op = await s.get(Operator, boris)
        assert op is not None
        assert op.name == "Boris" and op.login == "boris"  # names stay in history and the log
        assert op.password_hash == auth.REMOVED_HASH and op.telegram_user_id is None
        assert op.disabled_at is not None
    with pytest.raises(AuthError) as refused:  # not even "disabled": the account is gone
        await log_in(db, "boris")
    assert refused.value.code == "wrong_password"
    for change in (auth.enable_operator, auth.remove_operator):
        with pytest.raises(AuthError) as gone:
            async with db.transaction() as s:
                await change(s, "boris", by=CLI)
        assert gone.value.code == "removed"
    with pytest.raises(AuthError) as reset:
        async with db.transaction() as s:
            await auth.reset_password(s, "boris", "another-password", by=CLI)
    assert reset.value.code == "removed"
    with pytest.raises(AuthError) as taken:  # the login stays taken
        await add(db, "boris")
    assert taken.value.code == "exists"
    await add(db, "boris2", telegram_user_id="424242")  # the Telegram id is free again
    [entry] = await entries(db, "operator_removed")
    assert entry.details["target_id"] == boris and entry.details["sessions_ended"] == 1


async def test_reset_password_and_changes_are_audited(db: Database) -> None:
    root = await add(db, "root", role="admin")
    vera = await add(db, "vera", groups=["consult"])
    old = await log_in(db, "vera")
    by = Actor(kind="operator", operator_id=root, ip="127.0.0.1")
    async with db.transaction() as s:
        await auth.reset_password(s, vera, "brand-new-password", by=by)
    async with db.session() as s:
        assert await auth.session_for(s, old.token) is None
    with pytest.raises(AuthError):
        await log_in(db, "vera")
    assert (await log_in(db, "vera", "brand-new-password")).operator.id == vera
    with pytest.raises(AuthError) as short:
        async with db.transaction() as s:
            await auth.reset_password(s, vera, "short", by=by)
    assert short.value.code == "password_short"

    published = events_of(db)
    async with db.transaction() as s:
        changes = await auth.update_operator(
            s, vera, by=by, role="supervisor", groups=["consult", "tech"], max_chats=5, name="Вера"
        )
    assert changes == {
        "name": ["Vera", "Вера"],
        "role": ["operator", "supervisor"],
        "groups": [["consult"], ["consult", "tech"]],
        "max_chats": [3, 5],
    }
    assert {"type": "session_changed", "operator_id": vera} in published
    async with db.transaction() as s:
        assert await auth.update_operator(s, vera, by=by, role="supervisor") == {}
    [reset] = await entries(db, "password_reset")
    assert reset.details == {"target_id": vera, "login": "vera", "sessions_ended": 1}
    assert reset.operator_id == root and reset.ip == "127.0.0.1"
    [changed] = await entries(db, "operator_changed")
    assert changed.details["changes"]["role"] == ["operator", "supervisor"]
    added = await entries(db, "operator_added")
    assert [e.details["login"] for e in added] == ["root", "vera"]
    assert added[1].actor == "system" and added[1].details["groups"] == ["consult"]
    dumped = str([e.details for e in await entries(db)])
    assert PASSWORD not in dumped and "brand-new-password" not in dumped
    assert all("hash" not in key for e in await entries(db) for key in e.details)


async def test_live_tokens_answer_for_many_sockets_in_one_query(db: Database) -> None:
    await add(db, "root", role="admin")
    await add(db, "gleb")
    await add(db, "dina")
    gleb, dina = await log_in(db, "gleb"), await log_in(db, "dina")
    async with db.session() as s:
        assert await auth.live_tokens(s, [gleb.token, dina.token, "forged"]) == {
            gleb.token,
            dina.token,
        }
    async with db.transaction() as s:
        await auth.disable_operator(s, "dina", by=CLI)
    async with db.session() as s:
        assert await auth.live_tokens(s, [gleb.token, dina.token]) == {gleb.token}
        assert await auth.live_tokens(s, []) == set()


async def test_audit_entries_cant_be_changed_or_deleted_through_the_orm(db: Database) -> None:
    from services.audit import AppendOnly

    await add(db, "root", role="admin")
    [entry] = await entries(db)
    with pytest.raises(AppendOnly):
        async with db.transaction() as s:
            found = await s.get(AuditEntry, entry.id)
            assert found is not None
            found.details = {"login": "someone-else"}
    with pytest.raises(AppendOnly):
        async with db.transaction() as s:
            found = await s.get(AuditEntry, entry.id)
            await s.delete(found)
    [kept] = await entries(db)
    assert kept.details["login"] == "root"
