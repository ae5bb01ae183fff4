"""The FAQ responder: answers from content/welcome.yml, chosen by button payload or NLU intent.

It is the bot's brain until the dialog engine (flows, forms, backends) replaces it:
- /start gets the welcome menu; a menu button gets its answer; photos/stickers/media a polite reply;
- a text the NLU engine understands (confidence >= threshold) gets its intent's answer;
- below the threshold the bot says it is not sure and offers the top intents as buttons
  ("intent:<name>" payloads); after two misses in a row it offers a human instead.
A broken content file is reported as `file:line: message` and never starts a half-working bot.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from dialogs.messages import Button, Outbound
from dialogs.responder import Turn

INTENT_PAYLOAD = "intent:"  # a button that means "I meant this intent"
NONE_OF_THESE = "nlu:none"


class ContentError(ValueError):
    """A content file cannot be used; str() is `file:line: message` lines for an editor."""


class _ButtonSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    payload: str | None = None
    url: str | None = None


Rows = list[list[_ButtonSpec]]


class _Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | list[str]
    buttons: Rows | Literal["welcome"] = []

    @field_validator("text")
    @classmethod
    def _not_empty(cls, v: str | list[str]) -> str | list[str]:
        if not v:
            raise ValueError("text must not be empty")
        return v


class _IntentReply(_Reply):
    title: str


class _Unsure(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str
    other: str


class _GiveUp(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class _Media(BaseModel):
    model_config = ConfigDict(extra="forbid")
    photo: str
    sticker: str
    other: str


class _WelcomeFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int = 1
    welcome: _Reply
    answers: dict[str, _Reply] = {}
    media: _Media
    unknown: _Reply
    intents: dict[str, _IntentReply] = {}
    unsure: _Unsure | None = None
    give_up: _GiveUp | None = None


def load_welcome(path: Path) -> _WelcomeFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ContentError(f"{where}: {exc.problem}") from exc
    except OSError as exc:
        raise ContentError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        spec = _WelcomeFile.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"{path}: {'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        ]
        raise ContentError("\n".join(lines)) from exc
    missing = [
        f"{path}: button payload {b.payload!r} has no entry under "
        + ("`intents`" if b.payload.startswith(INTENT_PAYLOAD) else "`answers`")
        for reply in [spec.welcome, spec.unknown, *spec.answers.values(), *spec.intents.values()]
        if reply.buttons != "welcome"
        for row in reply.buttons
        for b in row
        if b.payload
        and b.payload not in spec.answers
        and b.payload.removeprefix(INTENT_PAYLOAD) not in spec.intents
    ]
    if missing:
        raise ContentError("\n".join(missing))
    return spec


class WelcomeResponder:
    def __init__(self, content_dir: Path, *, threshold: float = 0.4, max_misses: int = 2) -> None:
        self.spec = load_welcome(content_dir / "welcome.yml")
        self.threshold = threshold
        self.max_misses = max_misses

    async def respond(self, turn: Turn) -> list[Outbound]:
        inbound = turn.inbound
        name = inbound.first_name or turn.account.first_name
        payload = inbound.payload or ""
        if payload in self.spec.answers:
            return [self._render(self.spec.answers[payload], name)]
        if payload.removeprefix(INTENT_PAYLOAD) in self.spec.intents:
            return self._answer(turn, payload.removeprefix(INTENT_PAYLOAD), name)
        if payload == NONE_OF_THESE:
            return self._miss(turn, name, offer=[])
        if inbound.attachments:
            kind = inbound.attachments[0].kind
            text = getattr(self.spec.media, kind) if kind in ("photo", "sticker") else None
            return [Outbound(text=text or self.spec.media.other)]
        text = (inbound.text or "").strip()
        if text.startswith("/start") or payload == "/start" or (turn.new_conversation and not text):
            return [self._render(self.spec.welcome, name)]
        parse = turn.parse
        if parse is None or not self.spec.intents:
            return [self._render(self.spec.unknown, name)]
        if parse.confidence >= self.threshold and parse.intent in self.spec.intents:
            return self._answer(turn, parse.intent, name)
        offer = [r.name for r in parse.ranking[:3] if r.name in self.spec.intents]
        return self._miss(turn, name, offer=[i for i in offer if i != "out_of_scope"])

    def _answer(self, turn: Turn, intent: str, name: str | None) -> list[Outbound]:
        _set_slot(turn, "nlu_misses", 0)
        return [self._render(self.spec.intents[intent], name)]

    def _miss(self, turn: Turn, name: str | None, offer: list[str]) -> list[Outbound]:
        misses = int(turn.conversation.slots.get("nlu_misses", 0)) + 1
        _set_slot(turn, "nlu_misses", misses)
        if misses >= self.max_misses and self.spec.give_up and "operator" in self.spec.intents:
            _set_slot(turn, "nlu_misses", 0)
            button = Button(self.spec.intents["operator"].title, INTENT_PAYLOAD + "operator")
            return [Outbound(text=self.spec.give_up.text, buttons=((button,),))]
        if not offer or self.spec.unsure is None:
            return [self._render(self.spec.unknown, name)]
        rows = [(Button(self.spec.intents[i].title, INTENT_PAYLOAD + i),) for i in offer]
        rows.append((Button(self.spec.unsure.other, NONE_OF_THESE),))
        return [Outbound(text=self.spec.unsure.text, buttons=tuple(rows))]

    def _render(self, reply: _Reply, name: str | None) -> Outbound:
        text = reply.text if isinstance(reply.text, str) else random.choice(reply.text)
        text = text.replace("{name}", f", {name}" if name else "").strip()
        rows = self.spec.welcome.buttons if reply.buttons == "welcome" else reply.buttons
        assert rows != "welcome"
        return Outbound(text=text, buttons=_buttons(rows))


def _set_slot(turn: Turn, key: str, value: Any) -> None:
    # A new dict, so SQLAlchemy sees the JSON column change.
    turn.conversation.slots = {**turn.conversation.slots, key: value}


def _buttons(rows: Any) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(Button(b.title, b.payload, b.url) for b in row) for row in rows)
