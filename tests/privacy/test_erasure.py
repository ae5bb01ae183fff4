"""Subject access and erasure (services/privacy/) on SQLite and PostgreSQL: who a query finds,
what the export holds, what an erasure removes and keeps (the analytics of the period stay the
same to the last figure), that it is idempotent, and that an erased person who writes again is
somebody new."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from handoff.analytics import Report
from services.privacy import (
    AmbiguousPerson,
    PersonNotFound,
    erase_person,
    export_person,
    find_person,
    summarise,
)
from storage import repo
from storage.db import Database
from storage.models import (
    AuditEntry,
    ChannelAccount,
    Conversation,
    ConversationEvent,
    IncidentSubscriber,
    LinkCode,
    Message,
    NluReview,
    OutageReport,
    OutboxItem,
    ProcessedUpdate,
    Subscriber,
    Ticket,
    Verification,
    VerificationCode,
)
from tests.handoff.test_analytics import ROWS, cells, report
from tests.privacy.seed import BYSTANDER_PHONE, MERGED_PHONE, PHONE, Seeded, seed_person


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return (tmp_path / "uploads").resolve()


async def _seed(db: Database, uploads: Path, tmp_path: Path) -> Seeded:
    return await seed_person(db, uploads, tmp_path)


async def test_a_query_finds_one_person_with_their_merged_rows(
    db: Database, uploads: Path, tmp_path: Path
) -> None:
    seeded = await _seed(db, uploads, tmp_path)
    both = (seeded.person, seeded.merged)
    async with db.session() as s:
        for query in (
            f"id:{seeded.person}",
            f"#{seeded.merged}",  # a merged row is the same person
            "+7 (916) 123-45-67",
            "89161234567",
            f"phone:{MERGED_PHONE}",  # only the merged row and its verification have it
            "account:100200300",
            "telegram:700100",
            "vk:800200",
        ):
            person = await find_person(s, query)
            assert (person.primary, person.subscriber_ids) == (seeded.person, both), query
        assert (await find_person(s, BYSTANDER_PHONE)).primary == seeded.bystander
        with pytest.raises(PersonNotFound):
            await find_person(s, "+79000000000")
        with pytest.raises(PersonNotFound):
            await find_person(s, "telegram:1")
        # Bare digits are tried as an id and as an account number: two people, name one.
        bystander = await s.get(Subscriber, seeded.bystander)
        assert bystander is not None
        bystander.account_number = str(seeded.person)
        await s.flush()
        with pytest.raises(AmbiguousPerson) as ambiguous:
            await find_person(s, str(seeded.person))
        assert ambiguous.value.candidates == sorted((seeded.person, seeded.bystander))
        await s.rollback()


async def test_the_export_holds_everything_about_the_person_and_no_code_hashes(
    db: Database, uploads: Path, tmp_path: Path
) -> None:
    seeded = await _seed(db, uploads, tmp_path)
    async with db.session() as s:
        person = await find_person(s, PHONE)
        data = await export_person(s, person, uploads=uploads)
        summary = await summarise(s, person)
    text = json.dumps(data, ensure_ascii=False)  # JSON-ready as it is
    assert "h" * 64 not in text and "l" * 64 not in text and "code_hash" not in text
    assert data["person"] == {
        "primary_subscriber_id": seeded.person,
        "subscriber_ids": [seeded.person, seeded.merged],
    }
    assert [s["phone"] for s in data["subscribers"]] == [PHONE, MERGED_PHONE]
    assert data["subscribers"][0]["data"]["customer"]["name"] == "Иван Петров"
    assert {a["username"] for a in data["channel_accounts"]} == {"ivan_telegram", "ivan_vk"}
    convs = {c["id"]: c for c in data["conversations"]}
    assert set(convs) == set(seeded.convs.values())
    c2 = convs[seeded.convs["c2"]]
    assert c2["slots"]["address"] == "Лесная 5, кв 2" and c2["csat_comment"].startswith("спасибо")
    authors = {m["author"] for c in convs.values() for m in c["messages"]}
    assert authors == {"subscriber", "bot", "operator"}
    texts = [m["text"] for m in c2["messages"]]
    assert "+7 916 123-45-67" in texts and "Здравствуйте!" in texts  # theirs and the operator's
    operator_reply = next(m for m in c2["messages"] if m["text"] == "Уже")
    assert operator_reply["uploads"] == [seeded.upload.name]
    assert operator_reply["delivery"]["status"] == "pending"
    assert any(e["kind"] == "escalated" for e in c2["events"])
    assert [t["details"]["address"] for t in data["tickets"]] == ["Лесная 5, кв 2"]
    assert [r["area_title"] for r in data["outage_reports"]] == ["Лесная"]
    subscription = data["notification_settings"]["outage_subscriptions"][0]
    assert subscription["incident_area"] == "Лесная" and subscription["notify"] is True
    assert {v["phone"] for v in data["verifications"]} == {PHONE, MERGED_PHONE}
    assert [v["phone"] for v in data["verification_codes"]] == [PHONE]
    assert len(data["link_codes"]) == 1
    assert [r["text"] for r in data["nlu_reviews"]] == ["хочу котика"]
    assert [a["action"] for a in data["audit"]] == ["chat_opened", "verified"]
    assert all("ip" not in a for a in data["audit"])
    assert BYSTANDER_PHONE not in text and "Пётр" not in text
    assert summary.conversations == 7 and summary.tickets == 1 and summary.erased_at is None
    assert summary.phone == "+7 ••• •••-45-67" and summary.account_number == "•••••0300"


def _same_figures(before: Report, after: Report) -> None:
    """Every figure of the report is the same; only the texts the bot missed are gone."""
    assert cells(after) == cells(before) == ROWS
    assert after.totals == before.totals
    assert after.top_intents == before.top_intents
    assert after.handoff_reasons == before.handoff_reasons and after.handoffs == before.handoffs
    assert after.resolution == before.resolution
    assert before.top_fallback_texts and after.top_fallback_texts == []
    assert replace(after, top_fallback_texts=before.top_fallback_texts) == before


async def _all(db: Database, model: Any, *where: Any) -> list[Any]:
    async with db.session() as s:
        return list((await s.scalars(select(model).where(*where))).all())


async def test_erasure_removes_the_persons_data_keeps_rows_and_every_analytics_figure(
    db: Database, uploads: Path, tmp_path: Path
) -> None:
    seeded = await _seed(db, uploads, tmp_path)
    before = await report(db)
    async with db.transaction() as s:
        person = await find_person(s, "telegram:700100")
        done = await erase_person(
            s, person, uploads=uploads, actor="operator", operator_id=7, ip="10.0.0.1"
        )
    assert done.subscriber_ids == [seeded.person, seeded.merged] and not done.already_erased
    assert (done.messages, done.uploads, done.tickets, done.verifications) == (52, 1, 1, 2)
    assert (done.outbox, done.outbox_cancelled, done.processed_updates) == (2, 1, 2)
    assert (done.codes, done.incident_subscriptions, done.nlu_reviews) == (2, 1, 1)
    assert (done.accounts, done.conversations_closed) == (2, 3)  # C1, C4, C6 were open

    _same_figures(before, await report(db))

    conv_ids = list(seeded.convs.values())
    messages = await _all(db, Message, Message.conversation_id.in_(conv_ids))
    assert len(messages) == 52  # every row kept
    assert {m.text for m in messages} == {"", "/start", None}
    for m in messages:
        assert m.nlu is not None and m.nlu["anonymised"] == "erasure"
        assert not {"text", "entities", "extra"} & set(m.nlu)
        assert m.payload in (None, "intent:payment_methods")  # a topic button stays
        assert m.buttons == [] and all(set(a) == {"kind"} for a in m.attachments)
        assert m.platform_update_id is None and m.platform_message_id is None
    messages.sort(key=lambda m: m.id)
    assert [m.nlu.get("intent") for m in messages if m.author == "subscriber"][:3] == [
        "payment_methods", "out_of_scope", None,
    ]  # fmt: skip
    assert not seeded.upload.exists()  # the operator's upload
    assert seeded.content_image.exists()  # the bot's picture is content, not theirs
    assert seeded.bystander_upload.exists()

    outbox = {o.id: o for o in await _all(db, OutboxItem)}
    for item_id in (seeded.pending_outbox, seeded.sent_outbox):
        assert outbox[item_id].body == {} and outbox[item_id].chat_id == ""
    assert outbox[seeded.pending_outbox].status == "failed"  # never sent with content
    assert outbox[seeded.sent_outbox].status == "sent"
    updates = {p.update_id for p in await _all(db, ProcessedUpdate)}
    assert updates == {"9001"}  # the bystander's only
    assert [r.text for r in await _all(db, NluReview)] == [""]

    subs = {s.id: s for s in await _all(db, Subscriber)}
    for sub_id in (seeded.person, seeded.merged):
        sub = subs[sub_id]
        assert (sub.display_name, sub.phone, sub.account_number, sub.data) == (None, None, None, {})
        assert sub.erased_at is not None
    assert subs[seeded.merged].merged_into == seeded.person
    accounts = await _all(db, ChannelAccount, ChannelAccount.id.in_(seeded.accounts))
    for acc in accounts:
        assert acc.external_user_id == acc.chat_id == f"erased:{acc.id}"
        assert (acc.first_name, acc.last_name, acc.username) == (None, None, None)
    convs = await _all(db, Conversation, Conversation.id.in_(conv_ids))
    assert all(c.slots == {} and c.csat_comment is None for c in convs)
    assert {c.state for c in convs} == {"closed"}
    assert [c.csat for c in sorted(convs, key=lambda c: c.id)] == [None, 5, 3, None, 4, None, 1]
    notes = await _all(db, ConversationEvent, ConversationEvent.conversation_id.in_(conv_ids))
    assert not any("note" in (e.data or {}) for e in notes)
    transfer = next(e for e in notes if e.data.get("reason") == "transfer from Olga")
    assert transfer.data == {"group": "tech", "reason": "transfer from Olga"}

    [ticket] = await _all(db, Ticket)
    assert (ticket.number, ticket.kind, ticket.status) == ("T-100", "technician_visit", "open")
    assert (ticket.details, ticket.result) == ({}, None)
    verifications = await _all(db, Verification)
    assert {(v.phone, v.account_number, v.customer_id) for v in verifications} == {(None, None, "")}
    assert all(v.revoked_reason == "erased" for v in verifications)
    assert await _all(db, VerificationCode) == [] and await _all(db, LinkCode) == []
    assert await _all(db, IncidentSubscriber) == []
    assert len(await _all(db, OutageReport)) == 1  # a street, counted by the incident

    entries = await _all(db, AuditEntry)
    assert [e.action for e in entries] == ["chat_opened", "verified", "subject_erased"]
    erased = entries[-1]
    assert (erased.actor, erased.operator_id, erased.subscriber_id, erased.ip) == (
        "operator", 7, seeded.person, "10.0.0.1",
    )  # fmt: skip
    assert erased.details["messages"] == 52 and erased.details["uploads"] == 1

    # Nobody else was touched.
    bystander = subs[seeded.bystander]
    assert (bystander.display_name, bystander.phone, bystander.erased_at) == (
        "Пётр", BYSTANDER_PHONE, None,
    )  # fmt: skip
    [by_msg] = await _all(db, Message, Message.id == seeded.bystander_message)
    assert by_msg.text == "Пётр, держите" and by_msg.attachments[0]["ref"]
    assert outbox[seeded.bystander_outbox].body == {"text": "Пётр, держите"}

    # What is left to find and to export: nothing personal.
    async with db.session() as s:
        with pytest.raises(PersonNotFound):
            await find_person(s, PHONE)
        with pytest.raises(PersonNotFound):
            await find_person(s, "telegram:700100")
        person = await find_person(s, f"id:{seeded.person}")
        data = json.dumps(await export_person(s, person, uploads=uploads), ensure_ascii=False)
        summary = await summarise(s, person)
    for secret in ("Иван", "9161234567", "Лесная 5", "КОТИКА", "Здравствуйте", "700100", "C-42"):
        assert secret not in data, secret
    assert summary.erased_at is not None and summary.names == [] and summary.phone is None


async def test_erasure_is_idempotent(db: Database, uploads: Path, tmp_path: Path) -> None:
    seeded = await _seed(db, uploads, tmp_path)
    async with db.transaction() as s:
        first = await erase_person(s, await find_person(s, PHONE), uploads=uploads, actor="cli")
    async with db.session() as s:
        erased_at = (await s.get(Subscriber, seeded.person)).erased_at  # type: ignore[union-attr]
    async with db.transaction() as s:
        person = await find_person(s, f"id:{seeded.merged}")
        again = await erase_person(s, person, uploads=uploads, actor="cli", by="root")
    assert first.messages == 52 and again.already_erased
    counts = {
        k: v for k, v in again.to_json().items() if k not in ("subscriber_ids", "already_erased")
    }
    assert set(counts.values()) == {0}, counts
    async with db.session() as s:
        assert (await s.get(Subscriber, seeded.person)).erased_at == erased_at  # type: ignore[union-attr]
        actions = (await s.scalars(select(AuditEntry.action).order_by(AuditEntry.id))).all()
        assert list(actions).count("subject_erased") == 2
        assert await s.scalar(select(func.count()).select_from(Message)) == 53


async def test_an_erased_person_who_writes_again_is_a_new_subscriber(
    db: Database, uploads: Path, tmp_path: Path
) -> None:
    seeded = await _seed(db, uploads, tmp_path)
    async with db.transaction() as s:
        await erase_person(s, await find_person(s, PHONE), uploads=uploads, actor="cli")
    async with db.transaction() as s:
        account = await repo.get_or_create_account(
            s, channel="telegram", user_id="700100", chat_id="700100", first_name="Иван"
        )
        conv, created = await repo.open_conversation(s, account)
        assert account.id not in seeded.accounts
        assert account.subscriber_id not in (seeded.person, seeded.merged)
        assert created and conv.subscriber_id == account.subscriber_id
        fresh = await s.get(Subscriber, account.subscriber_id)
        assert fresh is not None and fresh.erased_at is None and fresh.display_name == "Иван"
