"""A person with data in every table the bot keeps, for the privacy tests: the analytics fixture's
subscriber (tests/handoff/test_analytics.py: six conversations over three days in Telegram and
VK, with bot, operator and rating turns) plus a phone, a customer record, form data, a rating
comment, a transfer note, NLU entities, platform update ids, outbox rows (one still pending), an
operator upload on disk, a ticket, an outage report and subscription, a verification, SMS and
link codes, an NLU review and audit entries; a subscriber merged into them; and a bystander
whose data must never change. Nothing here adds a message or an event, so the analytics
fixture's figures still hold."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from services import audit
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    Incident,
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
    utcnow,
)
from tests.handoff.test_analytics import seed as analytics_seed

PHONE = "+79161234567"
MERGED_PHONE = "+79035550011"
ACCOUNT = "100200300"
BYSTANDER_PHONE = "+79990001122"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@dataclass
class Seeded:
    person: int  # the primary subscriber
    merged: int  # a subscriber merged into them
    bystander: int
    accounts: list[int]
    convs: dict[str, int]
    upload: Path  # an operator's image, referenced by one of the person's messages
    bystander_upload: Path
    content_image: Path  # a bot image outside the uploads directory: not the person's
    pending_outbox: int
    sent_outbox: int
    bystander_message: int
    bystander_outbox: int


def _images(uploads: Path, tmp: Path) -> tuple[Path, Path, Path]:
    """Two operator uploads (the person's, the bystander's) and a content picture."""
    uploads.mkdir(parents=True, exist_ok=True)
    paths = (uploads / ("a" * 32 + ".png"), uploads / ("b" * 32 + ".png"), tmp / "sbp.png")
    for path in paths:
        path.write_bytes(PNG)
    return paths[0].resolve(), paths[1].resolve(), paths[2].resolve()


async def seed_person(db: Database, uploads: Path, tmp: Path) -> Seeded:
    convs = await analytics_seed(db)
    upload, bystander_upload, content_image = await asyncio.to_thread(_images, uploads, tmp)
    now = utcnow()
    async with db.transaction() as s:
        c2 = await s.get(Conversation, convs["c2"])
        assert c2 is not None
        person = await s.get(Subscriber, c2.subscriber_id)
        assert person is not None
        person.display_name = "Иван Петров"
        person.phone = PHONE
        person.account_number = ACCOUNT
        person.data = {"customer": {"name": "Иван Петров", "phone": PHONE, "balance": 120.5}}
        accounts = list(
            (
                await s.scalars(
                    select(ChannelAccount)
                    .where(ChannelAccount.subscriber_id == person.id)
                    .order_by(ChannelAccount.id)
                )
            ).all()
        )
        for acc in accounts:
            acc.first_name, acc.last_name, acc.username = "Иван", "Петров", f"ivan_{acc.channel}"
            acc.external_user_id = {"telegram": "700100", "vk": "800200"}[acc.channel]
            acc.chat_id = acc.external_user_id
        tg, vk = accounts
        merged = Subscriber(
            display_name="Ваня", phone=MERGED_PHONE, data={"note": "old"}, merged_into=person.id
        )
        bystander = Subscriber(display_name="Пётр", phone=BYSTANDER_PHONE, data={})
        s.add_all([merged, bystander])
        await s.flush()
        by_acc = ChannelAccount(
            subscriber_id=bystander.id,
            channel="telegram",
            external_user_id="900300",
            chat_id="900300",
            first_name="Пётр",
        )
        s.add(by_acc)
        await s.flush()
        by_conv = Conversation(
            subscriber_id=bystander.id, channel_account_id=by_acc.id, channel="telegram",
            slots={"address": "Лесная 7"},
        )  # fmt: skip
        s.add(by_conv)
        await s.flush()
        by_msg = Message(
            conversation_id=by_conv.id, direction="out", author="operator", text="Пётр, держите",
            attachments=[{"kind": "photo", "ref": str(bystander_upload)}], channel="telegram",
            platform_update_id="9001",
        )  # fmt: skip
        s.add(by_msg)
        await s.flush()
        by_out = OutboxItem(
            channel="telegram", chat_id="900300", channel_account_id=by_acc.id,
            message_id=by_msg.id, body={"text": "Пётр, держите"}, status="sent",
        )  # fmt: skip
        s.add_all([by_out, ProcessedUpdate(channel="telegram", update_id="9001")])

        # Form data, a rating comment, a transfer note.
        c2.slots = {"phone": PHONE, "address": "Лесная 5, кв 2", "_flow": "balance"}
        c2.csat_comment = "спасибо, звоните на 8 916 123-45-67"
        await s.execute(
            update(ConversationEvent)
            .where(
                ConversationEvent.conversation_id == convs["c5"],
                ConversationEvent.kind == "escalated",
                ConversationEvent.from_state == "with_operator",
            )
            .values(data={"group": "tech", "reason": "transfer from Olga", "note": f"тел {PHONE}"})
        )
        msgs = {
            (m.conversation_id, m.author, m.text): m
            for m in (await s.scalars(select(Message).order_by(Message.id))).all()
        }
        phone_msg = msgs[(convs["c2"], "subscriber", "+7 916 123-45-67")]
        phone_msg.nlu = {
            **(phone_msg.nlu or {}),
            "entities": [{"entity": "phone", "value": PHONE, "start": 0, "end": 16}],
            "extra": {"raw": "+7 916 123-45-67"},
        }
        phone_msg.platform_update_id = "5001"
        phone_msg.platform_message_id = "77"
        miss = msgs[(convs["c1"], "subscriber", "  Хочу   КОТИКА ")]
        miss.platform_update_id = "msg:800200:12"  # VK's fallback id holds the user id
        s.add_all(
            [
                ProcessedUpdate(channel="telegram", update_id="5001"),
                ProcessedUpdate(channel="telegram", update_id="msg:800200:12"),
            ]
        )
        operator_msg = msgs[(convs["c2"], "operator", "Уже")]
        operator_msg.attachments = [{"kind": "photo", "ref": str(upload)}]
        bot_msgs = [m for (cid, who, _t), m in msgs.items() if cid == convs["c1"] and who == "bot"]
        bot_msgs[0].attachments = [{"kind": "photo", "ref": str(content_image)}]
        bot_msgs[0].buttons = [["Оплатить"]]
        # Delivery rows: the bot's first answer was sent; an operator reply is still pending.
        sent = OutboxItem(
            channel="telegram", chat_id="700100", channel_account_id=tg.id,
            message_id=bot_msgs[0].id, body={"text": "ответ бота", "image": str(content_image)},
            status="sent", sent_at=now,
        )  # fmt: skip
        pending = OutboxItem(
            channel="telegram", chat_id="700100", channel_account_id=tg.id,
            message_id=operator_msg.id, body={"text": "Уже", "image": str(upload)},
        )  # fmt: skip
        s.add_all([sent, pending])
        s.add(NluReview(message_id=miss.id, intent=None, text="хочу котика"))
        s.add(
            Ticket(
                number="T-100", kind="technician_visit", subscriber_id=person.id,
                conversation_id=convs["c2"], details={"address": "Лесная 5, кв 2", "phone": PHONE},
                due_at=now + timedelta(days=1), result="Мастер придёт с 10 до 12",
            )
        )  # fmt: skip
        incident = Incident(
            area="лесная", area_title="Лесная", source="detected", description="Авария",
        )  # fmt: skip
        s.add(incident)
        await s.flush()
        s.add_all(
            [
                OutageReport(
                    subscriber_id=person.id, conversation_id=convs["c2"], area="лесная",
                    area_title="Лесная", problem="internet_down", incident_id=incident.id,
                ),
                IncidentSubscriber(incident_id=incident.id, subscriber_id=person.id),
                Verification(
                    account_id=tg.id, subscriber_id=person.id, customer_id="C-42", phone=PHONE,
                    account_number=ACCOUNT, method="sms", expires_at=now + timedelta(days=30),
                ),
                Verification(
                    account_id=vk.id, subscriber_id=merged.id, customer_id="C-42",
                    phone=MERGED_PHONE, method="contact", expires_at=now + timedelta(days=30),
                ),
                VerificationCode(
                    account_id=tg.id, phone=PHONE, customer_id="C-42", code_hash="h" * 64,
                    expires_at=now + timedelta(minutes=5),
                ),
                LinkCode(
                    account_id=tg.id, target_account_id=vk.id, code_hash="l" * 64,
                    expires_at=now + timedelta(minutes=10),
                ),
            ]
        )  # fmt: skip
        audit.record(
            s, "chat_opened", actor="operator", operator_id=1, subscriber_id=person.id,
            conversation_id=convs["c2"],
        )  # fmt: skip
        audit.record(s, "verified", actor="bot", subscriber_id=person.id, details={"method": "sms"})
        await s.flush()
        return Seeded(
            person=person.id,
            merged=merged.id,
            bystander=bystander.id,
            accounts=[tg.id, vk.id],
            convs=convs,
            upload=upload,
            bystander_upload=bystander_upload,
            content_image=content_image,
            pending_outbox=pending.id,
            sent_outbox=sent.id,
            bystander_message=by_msg.id,
            bystander_outbox=by_out.id,
        )
