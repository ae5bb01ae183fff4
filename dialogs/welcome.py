"""The welcome-menu responder: text + buttons from content/welcome.yml.

It is the bot's brain until the dialog engine (flows + NLU) replaces it: /start and unknown
texts get the menu, a button payload gets its answer, photos/stickers/other media get a polite reply.
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
        f"{path}: button payload {b.payload!r} has no entry under `answers`"
        for reply in [spec.welcome, spec.unknown, *spec.answers.values()]
        if reply.buttons != "welcome"
        for row in reply.buttons
        for b in row
        if b.payload and b.payload not in spec.answers
    ]
    if missing:
        raise ContentError("\n".join(missing))
    return spec


class WelcomeResponder:
    def __init__(self, content_dir: Path) -> None:
        self.spec = load_welcome(content_dir / "welcome.yml")

    async def respond(self, turn: Turn) -> list[Outbound]:
        inbound = turn.inbound
        name = inbound.first_name or turn.account.first_name
        if inbound.payload and inbound.payload in self.spec.answers:
            return [self._render(self.spec.answers[inbound.payload], name)]
        if inbound.attachments:
            kind = inbound.attachments[0].kind
            text = getattr(self.spec.media, kind) if kind in ("photo", "sticker") else None
            return [Outbound(text=text or self.spec.media.other)]
        text = (inbound.text or "").strip()
        if text.startswith("/start") or inbound.payload == "/start" or turn.new_conversation:
            return [self._render(self.spec.welcome, name)]
        return [self._render(self.spec.unknown, name)]

    def _render(self, reply: _Reply, name: str | None) -> Outbound:
        text = reply.text if isinstance(reply.text, str) else random.choice(reply.text)
        text = text.replace("{name}", f", {name}" if name else "").strip()
        rows = self.spec.welcome.buttons if reply.buttons == "welcome" else reply.buttons
        assert rows != "welcome"
        return Outbound(text=text, buttons=_buttons(rows))


def _buttons(rows: Any) -> tuple[tuple[Button, ...], ...]:
    return tuple(tuple(Button(b.title, b.payload, b.url) for b in row) for row in rows)
