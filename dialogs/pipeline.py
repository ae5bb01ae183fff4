"""The conversation pipeline: the single entry both frontends call for every subscriber action.

In one transaction it drops a redelivered update, finds or creates the subscriber and the
conversation, stores the message, lets the responder decide (only while the bot owns the chat;
a closed chat asking for its rating goes to the rating responder) and writes the replies through
dialogs/outgoing.py. The transaction is the database's unit of work: once it commits, the
channel's outbox sender is woken and the live events noted in it are published (operators'
consoles see a queued chat's new message at once).
Persist first, acknowledge after: if the database is away (a transient failure), `handle`
raises, the frontend answers the platform with an error (or holds the polled update) and the
update comes again; the dedupe row makes that redelivery exactly-once. Anything else is
permanent (a bug, data the database refuses): retrying it would hold up everyone behind it,
so the update is kept as a dead letter for supervisors, the subscriber gets an apology, and
`handle` returns normally.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Coroutine
from dataclasses import asdict, replace
from typing import Any, Protocol, runtime_checkable

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from dialogs import logcontext, outgoing, understanding
from dialogs.messages import Attachment, HandleResult, Inbound, Outbound
from dialogs.outgoing import Outgoing, Recipient
from dialogs.responder import Responder, Searched, Turn
from nlu.types import IntentEngine, Parse
from storage import repo
from storage.db import Database, note_event, note_wake, transient
from storage.models import Author, ChannelAccount, ConversationState, DeadLetter, Direction

log = logging.getLogger(__name__)
APOLOGY = (
    "Ой, у меня что-то сломалось на этом сообщении 😔 Я уже передал его команде. "
    "Попробуй написать по-другому или позови оператора — он поможет."
)
REREAD_BELOW = 0.5  # a parse this unsure of a long message is tried on its shorter readings
ALSO_AT = 0.6  # the second question of a two-question message counts when the NLU is this sure


class RatingResponder(Protocol):
    """Answers a subscriber while their closed chat asks for a rating (handoff.rating).
    Returns the replies and whether the message was the rating; if not, the rating is over and
    the message starts a new conversation with the bot."""

    async def respond(self, turn: Turn) -> tuple[list[Outbound], bool]: ...


@runtime_checkable
class Verifying(Protocol):
    """A responder that can take a verification's answers in an operator's chat
    (dialogs.engine.DialogEngine)."""

    async def verification(self, turn: Turn) -> list[Outbound]: ...


# A responder's `search_ahead(text)`: its knowledge-base search, started before the turn while
# the NLU reads the message (dialogs.engine.DialogEngine, with the helper process of
# nlu/offload.py). Looked up with getattr: a runtime-checkable Protocol's isinstance costs ~3 us,
# on every message.
SearchAhead = Callable[[str], Coroutine[Any, Any, Searched] | None]


class Notices(Protocol):
    """Renders a content response outside the bot's turn (dialogs.engine.DialogEngine)."""

    def notice(self, name: str, turn: Turn, **scope: object) -> Outbound: ...


class ConversationService:
    def __init__(
        self,
        db: Database,
        responder: Responder,
        *,
        engine: IntentEngine | None = None,
        rating: RatingResponder | None = None,
        notices: Notices | None = None,
    ) -> None:
        self.db = db
        self.responder = responder
        self.engine = engine
        self.rating = rating
        self.notices = notices

    async def handle(self, inbound: Inbound) -> HandleResult:
        inbound = inbound.storable()  # a NUL in a text must not make the database refuse it
        # Understand the text before the transaction: a Rasa round trip must not hold a DB connection.
        parse = searched = None
        if self.engine is not None and inbound.text and not inbound.payload:
            search_ahead: SearchAhead | None = getattr(self.responder, "search_ahead", None)
            ahead = search_ahead(inbound.text) if search_ahead is not None else None
            try:
                parse = await self._understand(inbound.text)
            except BaseException:
                if ahead is not None:
                    ahead.close()
                raise
            searched = await ahead if ahead is not None else None
        for attempt in (1, 2):
            try:
                return await self._turn(inbound, parse, searched)
            except Exception as exc:
                if transient(exc):
                    raise  # the database is away: the update comes again
                if isinstance(exc, IntegrityError) and attempt == 1:
                    continue  # most likely a race with the same subscriber's other update
                return await self._dead_letter(inbound, exc)
        raise AssertionError("unreachable")

    async def _dead_letter(self, inbound: Inbound, exc: Exception) -> HandleResult:
        """Keep the update for supervisors, mark it processed, apologise to the subscriber.
        If even that cannot be written, the original error goes up (the update comes again)."""
        log.error(
            "%s update %s from chat %s failed for good; kept as a dead letter",
            inbound.channel, inbound.update_id, inbound.chat_id, exc_info=exc,
        )  # fmt: skip
        error = "".join(traceback.format_exception_only(exc)).strip()[:4000]
        try:
            async with self.db.transaction() as session:
                if not await repo.claim_update(session, inbound.channel, inbound.update_id):
                    return HandleResult(duplicate=True)
                conv_id = await repo.open_conversation_id(session, inbound.channel, inbound.chat_id)
                session.add(
                    DeadLetter(
                        channel=inbound.channel,
                        update_id=inbound.update_id,
                        chat_id=inbound.chat_id,
                        user_id=inbound.user_id,
                        conversation_id=conv_id,
                        text=(inbound.text or inbound.payload or "")[:4000] or None,
                        error=error,
                    )
                )
                apology = Outbound(text=APOLOGY)
                if conv_id is not None:
                    to = Recipient(conv_id, inbound.channel, inbound.chat_id)
                    await outgoing.write(session, [Outgoing(to, apology)])
                else:
                    await repo.enqueue(session, [_raw_outbox(inbound, apology)])
                    note_wake(session, inbound.channel)
                note_event(session, {"type": "dead_letter", "channel": inbound.channel})
        except Exception as second:
            log.error("dead letter for %s not written (%r)", inbound.update_id, second)
            raise exc from second
        return HandleResult(conversation_id=conv_id, replies=[apology])

    async def _turn(
        self, inbound: Inbound, parse: Parse | None, searched: Searched | None = None
    ) -> HandleResult:
        async with self.db.transaction() as session:
            claimed, known, chats = await repo.claim_and_read(
                session, inbound.channel, inbound.update_id, inbound.user_id
            )
            if not claimed:
                log.info("duplicate update %s:%s dropped", inbound.channel, inbound.update_id)
                return HandleResult(duplicate=True)
            account = await repo.get_or_create_account(
                session,
                channel=inbound.channel,
                user_id=inbound.user_id,
                chat_id=inbound.chat_id,
                first_name=inbound.first_name,
                last_name=inbound.last_name,
                username=inbound.username,
                known=known,
                known_none=known is None,
            )
            replies: list[Outbound] = []
            # A first contact's chats are looked up after its account is made (a race with
            # another process may have made it, chats and all).
            conv, created, came_from = await repo.open_or_continue(
                session, account, chats if known is not None else None
            )
            if came_from is not None and self.notices is not None:  # "продолжим здесь"
                turn = Turn(inbound, conv, account, created, session, parse)
                note = self.notices.notice("continued_here", turn, from_channel=came_from)
                replies.append(note)
            if conv.state == ConversationState.RATING and self.rating is not None:
                turn = Turn(inbound, conv, account, created, session, parse)
                replies, consumed = await self.rating.respond(turn)
                if not consumed:  # the rating is over; this message is a new request
                    conv, created = await repo.open_conversation(session, account)
            logcontext.conversation_id.set(conv.id)  # on every log line from here (JSON logs)
            handled_as = None
            if conv.state == ConversationState.BOT:
                turn = Turn(inbound, conv, account, created, session, parse, searched=searched)
                replies += await self.responder.respond(turn)
                handled_as = turn.handled_as
            elif conv.slots.get("_verify") and isinstance(self.responder, Verifying):
                # An operator asked for verification: the bot takes the answers to it.
                turn = Turn(inbound, conv, account, created, session, parse)
                replies += await self.responder.verification(turn)
                handled_as = turn.handled_as
            await self._store_turn(session, conv.id, account, inbound, parse, replies, handled_as)
            await repo.save_conversation(session, conv)
            if conv.state in (ConversationState.QUEUED, ConversationState.WITH_OPERATOR):
                note_event(
                    session,
                    {"type": "message", "conversation_id": conv.id, "state": conv.state},
                )
            conv_id = conv.id
        return HandleResult(conversation_id=conv_id, replies=replies)

    async def _understand(self, text: str) -> Parse:
        """The NLU's parse of the message; when it is unsure of a long or cluttered message,
        the best of its shorter readings (without the address, clause by clause) decides the
        intent — entities still come from the whole message. A message asking two things
        («где оплатить и какой у меня тариф») carries the second one in `extra["also"]`."""
        assert self.engine is not None
        whole = await self.engine.parse(text)
        chosen = whole
        if whole.confidence < REREAD_BELOW:
            best = whole
            for reading in understanding.readings(text):
                part = await self.engine.parse(reading)
                if part.confidence > best.confidence:
                    best = part
            if best is not whole:
                extra = {**whole.extra, "read_as": best.text, "whole_confidence": whole.confidence}
                chosen = replace(whole, intent=best.intent, confidence=best.confidence,
                                 ranking=best.ranking, extra=extra)  # fmt: skip
        also = await self._second_ask(text, chosen)
        return replace(chosen, extra={**chosen.extra, "also": also}) if also else chosen

    async def _second_ask(self, text: str, chosen: Parse) -> dict[str, object] | None:
        """The other question of a two-question message: one part is what `chosen` understood,
        the other a different intent the NLU is sure of (`ALSO_AT`)."""
        asks = understanding.two_asks(text)
        if asks is None or self.engine is None:
            return None
        parts = [await self.engine.parse(ask) for ask in asks]
        same = [p for p in parts if p.intent == chosen.intent]
        other = [p for p in parts if p.intent != chosen.intent and p.confidence >= ALSO_AT]
        if len(same) != 1 or len(other) != 1:
            return None
        found = other[0]
        return {"intent": found.intent, "text": found.text, "confidence": found.confidence,
                "main": same[0].text}  # fmt: skip

    @staticmethod
    async def _store_turn(
        session: AsyncSession,
        conv_id: int,
        account: ChannelAccount,
        inbound: Inbound,
        parse: Parse | None,
        replies: list[Outbound],
        handled_as: str | None = None,
    ) -> None:
        """The subscriber's message and the replies, stored; the replies queued for delivery."""
        nlu = parse.to_json() if parse is not None else None
        if nlu is not None and handled_as:
            nlu["handled_as"] = handled_as
        incoming = {
            "conversation_id": conv_id,
            "direction": Direction.IN,
            "author": Author.SUBSCRIBER,
            "text": inbound.text,
            "payload": inbound.payload,
            "attachments": [_attachment_json(a) for a in inbound.attachments],
            "edited": inbound.edited,
            "platform_update_id": inbound.update_id,
            "platform_message_id": inbound.platform_message_id,
            "nlu": nlu,
            "channel": inbound.channel,
        }
        # The reply goes to the chat the message came from (the account row may lag an edit).
        to = Recipient(conv_id, inbound.channel, inbound.chat_id, account.id)
        await outgoing.write(session, [Outgoing(to, r) for r in replies], incoming=incoming)


def _raw_outbox(inbound: Inbound, reply: Outbound) -> dict[str, object]:
    """An outbox row outside any conversation (the failure came before there was one)."""
    return {"channel": inbound.channel, "chat_id": inbound.chat_id, "body": reply.to_json()}


def _attachment_json(att: Attachment) -> dict[str, object]:
    return {k: v for k, v in asdict(att).items() if v is not None}
