"""Runs the conversation tests (dialogs/storytests.py) through the whole product: the Telegram and
VK emulators, the real aiogram and vkbottle bots, the pipeline, the NLU engine, the dialog engine,
the demo backend and a fresh SQLite database. Each story plays a fresh subscriber in each of its
channels; stories run side by side.

A turn is over when the database has stored the subscriber's message and the outbox holds nothing
undelivered for that chat; the replies are then what the emulator received.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import delete, func, select

from dialogs.storytests import Outcome, Reply, Story, TurnResult, run_story
from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from services.tickets import resolve_ticket
from services.verification import code_hash
from storage.models import (
    ChannelAccount,
    Conversation,
    DemoSms,
    Direction,
    Incident,
    IncidentSubscriber,
    Message,
    OutageReport,
    OutboxItem,
    OutboxStatus,
    Ticket,
    VerificationCode,
)
from supportbot.app import App
from supportbot.settings import Settings, TelegramSettings, VKSettings

TG_TOKEN = "7000000009:STORY-tests-token"
VK_TOKEN = "vk1.a.story-tests-token"
VK_GROUP = 229000999
TURN_TIMEOUT = 15.0
_users = itertools.count(500_001)


@dataclass
class Harness:
    app: App
    telegram: TelegramEmulator
    vk: VKEmulator


async def start_harness(settings: Settings, data_dir: Path) -> Harness:
    telegram = TelegramEmulator(TG_TOKEN)
    vk = VKEmulator(VK_TOKEN, VK_GROUP)
    tg_url = await telegram.start()
    await vk.start()
    app = App(
        settings.model_copy(
            update={
                "database_url": f"sqlite:///{data_dir / 'stories.db'}",
                "data_dir": data_dir,
                "http_port": 0,
                "content_store": "files",  # the folder under test, whatever the deployment uses
                # Stories must not depend on the time of day: operators work around the clock.
                "handoff": settings.handoff.model_copy(update={"hours": {}}),
                # Stories run side by side with the demo's six numbers: no hourly code limit.
                "verification": settings.verification.model_copy(update={"codes_per_hour": 10_000}),
                # The emulators don't throttle here; the stories check content, not pacing.
                "telegram": TelegramSettings(
                    token=SecretStr(TG_TOKEN),
                    api_base=tg_url,
                    rate_per_chat=50,
                    burst_per_chat=50,
                    rate_overall=500,
                ),
                "vk": VKSettings(
                    token=SecretStr(VK_TOKEN),
                    group_id=VK_GROUP,
                    api_url=vk.api_url,
                    rate_overall=500,
                ),
            }
        )
    )
    await app.start()
    await vk.wait_listening()
    return Harness(app, telegram, vk)


async def stop_harness(h: Harness) -> None:
    await h.app.stop()
    await h.telegram.stop()
    await h.vk.stop()


class AppDriver:
    """One subscriber in one channel of a running harness."""

    def __init__(self, h: Harness, channel: str) -> None:
        self.h = h
        self.channel = channel
        self.user_id = next(_users)
        self.seen = 0  # emulator messages to this chat already returned

    # -- subscriber actions ---------------------------------------------------------------

    async def say(self, text: str) -> TurnResult:
        if self.channel == "telegram":
            return await self._turn(lambda: self.h.telegram.send_text(self.user_id, text))
        return await self._turn(lambda: self.h.vk.send_text(self.user_id, text))

    async def press(self, reply: Reply, title: str) -> TurnResult:
        message_id, payloads = reply.ref
        data = payloads.get(title)
        if data is None:
            raise AssertionError(f"button {title!r} is a link, it cannot be pressed")
        if self.channel == "telegram":
            return await self._turn(
                lambda: self.h.telegram.press_button(self.user_id, message_id, data)
            )
        return await self._turn(lambda: self.h.vk.press_callback(self.user_id, data, message_id))

    async def media(self, kind: str) -> TurnResult:
        tg, vk = self.h.telegram, self.h.vk
        acts: dict[tuple[str, str], Callable[[], Any]] = {
            ("telegram", "photo"): lambda: tg.send_photo(self.user_id),
            ("telegram", "sticker"): lambda: tg.send_sticker(self.user_id),
            ("vk", "photo"): lambda: vk.send_photo(self.user_id),
            ("vk", "sticker"): lambda: vk.send_sticker(self.user_id),
        }
        return await self._turn(acts[self.channel, kind])

    async def resolve(self, number: str, result: str) -> TurnResult:
        assert self.h.app.content is not None
        content = self.h.app.content.current
        return await self._turn(
            lambda: resolve_ticket(self.h.app.db, content, number, result), inbound=False
        )

    async def contact(self, phone: str, own: bool) -> TurnResult:
        if self.channel != "telegram":
            raise AssertionError("only Telegram can share a contact (use channels: [telegram])")
        return await self._turn(lambda: self.h.telegram.send_contact(self.user_id, phone, own=own))

    async def sms_code(self, phone: str) -> str:
        """The code the demo backend sent by SMS to `phone` for this subscriber (stories run
        side by side and share the demo's numbers: the one matching this chat's code is it)."""
        async with self.h.app.db.session() as s:
            account_id = await s.scalar(select(ChannelAccount.id).where(*self._account()))
            wanted = await s.scalar(
                select(VerificationCode.code_hash)
                .where(VerificationCode.account_id == account_id)
                .order_by(VerificationCode.id.desc())
                .limit(1)
            )
            texts = await s.scalars(
                select(DemoSms.text).where(DemoSms.phone == phone).order_by(DemoSms.id.desc())
            )
            for text in texts:
                found = re.search(r"\b\d{6}\b", text)
                if found and account_id and code_hash(account_id, found.group()) == wanted:
                    return found.group()
        raise AssertionError(f"no SMS to {phone} carries this chat's code")

    # -- what the app did -----------------------------------------------------------------

    async def state(self) -> tuple[str, str | None]:
        async with self.h.app.db.session() as s:
            row = (
                await s.execute(
                    select(Conversation.state, Conversation.skill_group)
                    .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
                    .where(*self._account())
                    .order_by(Conversation.id.desc())
                    .limit(1)
                )
            ).first()
        return (row[0], row[1]) if row else ("none", None)

    async def tickets(self) -> list[tuple[str, str]]:
        async with self.h.app.db.session() as s:
            rows = await s.execute(
                select(Ticket.number, Ticket.kind)
                .join(ChannelAccount, ChannelAccount.subscriber_id == Ticket.subscriber_id)
                .where(*self._account())
                .order_by(Ticket.id)
            )
            return [(n, k) for n, k in rows]

    def _account(self) -> tuple[Any, ...]:
        return (
            ChannelAccount.channel == self.channel,
            ChannelAccount.external_user_id == str(self.user_id),
        )

    async def _turn(self, act: Callable[[], Any], *, inbound: bool = True) -> TurnResult:
        before = await self._inbound_count()
        result = act()
        if isinstance(result, Awaitable):
            await result
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TURN_TIMEOUT
        while True:
            if (
                not inbound or await self._inbound_count() > before
            ) and not await self._undelivered():
                break
            if loop.time() > deadline:
                raise TimeoutError(f"{self.channel} user {self.user_id}: the turn did not finish")
            await asyncio.sleep(0.02)
        sent = self._sent()
        fresh, self.seen = sent[self.seen :], len(sent)
        return TurnResult(
            [self._reply(m) for m in fresh], await self._intent() if inbound else None
        )

    async def _inbound_count(self) -> int:
        async with self.h.app.db.session() as s:
            return int(
                await s.scalar(
                    select(func.count(Message.id))
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
                    .where(Message.direction == Direction.IN, *self._account())
                )
                or 0
            )

    async def _undelivered(self) -> int:
        async with self.h.app.db.session() as s:
            return int(
                await s.scalar(
                    select(func.count(OutboxItem.id)).where(
                        OutboxItem.channel == self.channel,
                        OutboxItem.chat_id == str(self.user_id),
                        OutboxItem.status.in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                    )
                )
                or 0
            )

    async def _intent(self) -> str | None:
        async with self.h.app.db.session() as s:
            row = (
                await s.execute(
                    select(Message.nlu, Message.payload)
                    .join(Conversation, Conversation.id == Message.conversation_id)
                    .join(ChannelAccount, ChannelAccount.id == Conversation.channel_account_id)
                    .where(Message.direction == Direction.IN, *self._account())
                    .order_by(Message.id.desc())
                    .limit(1)
                )
            ).first()
        if row is None:
            return None
        nlu, payload = row
        if nlu:
            return str(nlu.get("intent"))
        if payload and payload.startswith("intent:"):
            return str(payload.removeprefix("intent:"))
        return None

    def _sent(self) -> list[dict[str, Any]]:
        if self.channel == "telegram":
            return self.h.telegram.sent(self.user_id)
        return self.h.vk.sent(self.user_id)

    def _reply(self, m: dict[str, Any]) -> Reply:
        titles: list[str] = []
        payloads: dict[str, str | None] = {}
        if self.channel == "telegram":
            rows = (m.get("reply_markup") or {}).get("inline_keyboard", [])
            for row in rows:
                for b in row:
                    titles.append(b["text"])
                    payloads[b["text"]] = b.get("callback_data")
            return Reply(
                m.get("text") or m.get("caption") or "",
                tuple(titles),
                image=m.get("photo") is not None,
                sticker=m.get("sticker") is not None,
                ref=(m["message_id"], payloads),
            )
        for row in (m.get("keyboard") or {}).get("buttons", []):
            for b in row:
                action = b["action"]
                titles.append(action["label"])
                payload = action.get("payload")
                payloads[action["label"]] = payload if action["type"] == "callback" else None
        return Reply(
            m.get("text") or "",
            tuple(titles),
            image=any(_is_photo(a) for a in m.get("attachment") or []),
            sticker=m.get("sticker_id") is not None,
            ref=(m["conversation_message_id"], payloads),
        )


def _is_photo(attachment: Any) -> bool:
    if isinstance(attachment, dict):
        return attachment.get("type") == "photo"
    return str(attachment).startswith("photo")


async def run_stories(
    settings: Settings,
    stories: list[Story],
    *,
    channels: tuple[str, ...] = ("telegram", "vk"),
) -> list[Outcome]:
    """Run every story in each of its channels. Each channel gets its own app and database (in a
    temporary directory) and runs its stories one after another, in file order; a backend with
    `reset(db)` (the demo billing) is reset before each story, so a story that changes a demo
    subscriber (a promised payment, a tariff) changes nothing for the next one."""
    with tempfile.TemporaryDirectory(prefix="supportbot-stories-") as tmp:
        results = await asyncio.gather(
            *(_run_channel(settings, stories, ch, Path(tmp) / ch) for ch in channels)
        )
    by_channel = dict(zip(channels, results, strict=True))
    return [
        by_channel[ch][story.name, story.line]
        for story in stories
        for ch in channels
        if ch in story.channels
    ]


async def _run_channel(
    settings: Settings, stories: list[Story], channel: str, data_dir: Path
) -> dict[tuple[str, int], Outcome]:
    await asyncio.to_thread(data_dir.mkdir, parents=True)
    h = await start_harness(settings, data_dir)
    reset = getattr(h.app.backend, "reset", None)  # the demo billing: every story from scratch
    try:
        outcomes = {}
        for story in stories:
            if channel not in story.channels:
                continue
            if not story.continues:
                if reset is not None:
                    await reset(h.app.db)
                await _forget_outages(h.app.db)
            outcomes[story.name, story.line] = await run_story(
                story, channel, AppDriver(h, channel)
            )
        return outcomes
    finally:
        await stop_harness(h)


async def _forget_outages(db: Any) -> None:
    """Every story starts with no detected outage: contacts of earlier stories (many on one
    street) would otherwise open an incident there and change what later stories hear."""
    async with db.transaction() as s:
        await s.execute(delete(IncidentSubscriber))
        await s.execute(delete(OutageReport))
        await s.execute(delete(Incident))


def report(outcomes: list[Outcome]) -> str:
    lines = []
    for o in outcomes:
        mark = "ok  " if o.ok else "FAIL"
        lines.append(f"{mark} [{o.channel}] {o.story.name} ({o.story.file}:{o.story.line})")
        if not o.ok:
            lines.append(f"     {o.failure}")
            lines += [f"       {t}" for t in o.transcript[-8:]]
    passed = sum(o.ok for o in outcomes)
    lines.append(f"{passed}/{len(outcomes)} conversation tests passed")
    return "\n".join(lines)


__all__ = ["AppDriver", "Harness", "report", "run_stories", "start_harness", "stop_harness"]
