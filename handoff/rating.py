"""After an operator closes a chat: the subscriber rates it (CSAT 1-5, optionally NPS 0-10, an
optional comment), and the answers are stored with the conversation.

The pipeline routes a subscriber's message here while their conversation is in `rating`. A rating
button, a number or (after the score) a comment is consumed; anything else ends the rating and
starts a new conversation with the bot, so a subscriber who simply carries on is never stuck.
"""

from __future__ import annotations

from typing import Any

from dialogs.messages import Button, Outbound
from dialogs.responder import Turn
from dialogs.responses import ContentSource, render
from handoff.desk import CSAT_PAYLOAD, NPS_PAYLOAD
from storage import repo
from storage.db import note_event
from storage.models import ConversationState


class RatingResponder:
    def __init__(self, content: ContentSource, *, nps: bool = False) -> None:
        self.content = content
        self.nps = nps

    async def respond(self, turn: Turn) -> tuple[list[Outbound], bool]:
        conv = turn.conversation
        state: dict[str, Any] = conv.slots.get("_rating") or {"step": "score"}
        step = state.get("step")
        payload = turn.inbound.payload or ""
        text = (turn.inbound.text or "").strip()
        if step == "score":
            score = _number(payload, CSAT_PAYLOAD, text, 1, 5)
            if score is None:
                return await self._finish(turn, consumed=False)
            conv.csat = score
            return await self._next(turn, "nps" if self.nps else "comment")
        if step == "nps":
            score = _number(payload, NPS_PAYLOAD, text, 0, 10)
            if score is None:
                return await self._finish(turn, consumed=False)
            conv.nps = score
            return await self._next(turn, "comment")
        # step == "comment": any text is the comment; the "no comment" button just finishes
        if payload == f"{CSAT_PAYLOAD}done" or (not text and not payload):
            return await self._finish(turn, consumed=True)
        if payload:
            return await self._finish(turn, consumed=False)
        conv.csat_comment = text[:2000]
        return await self._finish(turn, consumed=True)

    async def _next(self, turn: Turn, step: str) -> tuple[list[Outbound], bool]:
        conv = turn.conversation
        conv.slots = {**conv.slots, "_rating": {"step": step}}
        channel = str(turn.inbound.channel)
        scope = {"first_name": turn.account.first_name or "друг"}
        responses = self.content.current.responses
        if step == "nps":
            ask = render(responses["nps_ask"], scope, channel)
            rows = tuple(  # VK allows 5 buttons in a row: 0-3, 4-7, 8-10
                tuple(Button(str(n), f"{NPS_PAYLOAD}{n}") for n in span)
                for span in (range(0, 4), range(4, 8), range(8, 11))
            )
            return [Outbound(ask.text, rows + ask.buttons, ask.image, ask.sticker)], True
        ask = render(responses["csat_comment_ask"], scope, channel)
        skip = ((Button(self.content.current.bot.no_comment, f"{CSAT_PAYLOAD}done"),),)
        return [Outbound(ask.text, skip + ask.buttons, ask.image, ask.sticker)], True

    async def _finish(self, turn: Turn, *, consumed: bool) -> tuple[list[Outbound], bool]:
        conv = turn.conversation
        conv.slots = {k: v for k, v in conv.slots.items() if k != "_rating"}
        data = {"csat": conv.csat, "nps": conv.nps, "comment": bool(conv.csat_comment)}
        await repo.set_state(turn.session, conv, ConversationState.CLOSED, kind="rated", data=data)
        note_event(turn.session, {"type": "rated", "conversation_id": conv.id, **data})
        if not consumed:
            return [], False
        scope = {"first_name": turn.account.first_name or "друг"}
        thanks = render(
            self.content.current.responses["csat_thanks"], scope, str(turn.inbound.channel)
        )
        return [thanks], True


def _number(payload: str, prefix: str, text: str, low: int, high: int) -> int | None:
    raw = payload.removeprefix(prefix) if payload.startswith(prefix) else text
    if payload and not payload.startswith(prefix):
        return None
    raw = raw.strip().rstrip("⭐️ ").strip()
    if raw.isdigit() and low <= int(raw) <= high:
        return int(raw)
    return None
