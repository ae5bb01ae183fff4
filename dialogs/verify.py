"""The verification conversation a `verify:` step runs when the subscriber isn't verified yet.

The engine hands over here (`begin`) and routes every message to `answer` while it lasts
(state `_verify` in the conversation's slots). What counts as proof, the limits and the audit
are the `Verifier`'s (services/verification.py); this module only talks:

    verify_ask           -> a shared own contact (Telegram)            -> verified
                         -> a phone or account number -> verify_code_sent -> the code -> verified
                         -> «🔑 Нет доступа к телефону» -> the number, then the code word
    verified: verify_done, and the flow goes on after its `verify:` step with `customer` set.

No oracle: the answer to a number is the same whether it is a customer's or not. «отмена» (or
another request) leaves the verification; the flow it guarded does not go on.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from dialogs.messages import Button, SharedContact
from dialogs.slot_types import parse_value
from storage.models import ChannelAccount

SECRET_PAYLOAD, SECRET_TITLE = "verify:secret", "🔑 Нет доступа к телефону"
CODE_LENGTH, CODE_TRIES = 6, 3  # as services/verification.py sends and checks them
MAX_UNPARSED = 2  # messages that are no number / no code before the bot offers a human


class Status(Protocol):
    @property
    def level(self) -> str: ...  # "none" | "verified" | "fresh"

    @property
    def customer(self) -> dict[str, Any] | None: ...


class Outcome(Protocol):
    @property
    def result(self) -> str: ...  # verified | sent | limited | wrong | expired | too_many | ...

    @property
    def customer(self) -> dict[str, Any] | None: ...

    @property
    def minutes(self) -> int: ...


class Verifier(Protocol):
    """What the engine needs of verification (services.verification.Verifier)."""

    async def status(
        self, session: AsyncSession, account: ChannelAccount, now: datetime
    ) -> Status: ...

    async def by_contact(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        contact: SharedContact,
        *,
        conversation_id: int,
        now: datetime,
    ) -> Outcome: ...

    async def send_code(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        *,
        phone: str | None,
        number: str | None,
        conversation_id: int,
        now: datetime,
    ) -> Outcome: ...

    async def check_code(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        code: str,
        *,
        conversation_id: int,
        now: datetime,
    ) -> Outcome: ...

    async def check_secret(
        self,
        session: AsyncSession,
        account: ChannelAccount,
        answer: str,
        *,
        phone: str | None,
        number: str | None,
        conversation_id: int,
        now: datetime,
    ) -> Outcome: ...


def level_at_least(have: str, need: str) -> bool:
    order = ("none", "verified", "fresh")
    return order.index(have) >= order.index(need)


@dataclass
class Talk:
    """What the verification needs of the engine's turn (dialogs/engine.py `_Run`)."""

    session: AsyncSession
    account: ChannelAccount
    conversation_id: int
    now: datetime
    slots: dict[str, Any]
    say: Callable[..., None]  # (response name, extra button rows=(), **scope)
    resume: Callable[[dict[str, Any]], Awaitable[None]]  # go on with the guarded flow
    give_up: Callable[[], Awaitable[None]]  # the bot can't help: offer a human


class Verification:
    def __init__(self, verifier: Verifier, talk: Talk) -> None:
        self.v = verifier
        self.t = talk

    @property
    def state(self) -> dict[str, Any]:
        found: dict[str, Any] = self.t.slots.get("_verify") or {}
        return found

    def _set(self, **changes: Any) -> None:
        self.t.slots["_verify"] = {**self.state, **changes}

    def end(self) -> None:
        self.t.slots.pop("_verify", None)

    @staticmethod
    def is_answer(text: str, stage: str) -> bool:
        """Does `text` answer this stage (a number; the code; the code word)? Used where other
        messages belong to someone else (an operator's chat)."""
        if stage in ("secret", "secret_number"):
            return bool(text.strip())
        code = parse_value("code", text) if stage == "code" else None
        return (code is not None and len(code) == CODE_LENGTH) or _claim(text) is not None

    async def begin(self, level: str, resume: dict[str, Any], said: str | None) -> bool:
        """Start for a `verify: <level>` step; True when the subscriber is verified already (the
        flow goes straight on). `said`: the message that started the flow (a number in it is
        used at once: «баланс по счёту 100200301»)."""
        t = self.t
        status = await self.v.status(t.session, t.account, t.now)
        if level_at_least(status.level, level):
            t.slots["customer"] = status.customer
            return True
        t.slots["_verify"] = {"level": level, "stage": "number", "resume": resume, "misses": 0}
        known = status.customer if status.level != "none" else None
        if known is not None:  # a step-up: the code goes to the number we already know
            await self._send({"phone": known.get("phone")})
            return False
        claim = _claim(said) if said else None
        claim = claim or t.slots.pop(NUMBER_GIVEN, None)  # a number sent on its own before
        if claim is not None:
            await self._send(claim)
            return False
        self._ask()
        return False

    def _ask(self) -> None:
        self.t.say("verify_ask", self._secret_button())

    def _secret_button(self) -> tuple[tuple[Button, ...], ...]:
        return ((Button(SECRET_TITLE, SECRET_PAYLOAD),),)

    async def answer(self, text: str, payload: str, contact: SharedContact | None) -> None:
        """A message while verifying: a contact, the «no phone» button, a number, a code, a
        code word. (The engine handled «отмена» and other requests before.)"""
        t, state = self.t, self.state
        if contact is not None:
            outcome = await self.v.by_contact(
                t.session, t.account, contact, conversation_id=t.conversation_id, now=t.now
            )
            await self._after(outcome)
            return
        if payload == SECRET_PAYLOAD:
            if state.get("claim"):
                self._set(stage="secret")
                self.t.say("verify_secret_ask")
            else:
                self._set(stage="secret_number")
                self.t.say("verify_secret_number")
            return
        stage = state.get("stage")
        code = parse_value("code", text) if stage == "code" else None
        if code is not None and len(code) == CODE_LENGTH:
            outcome = await self.v.check_code(
                t.session, t.account, code, conversation_id=t.conversation_id, now=t.now
            )
            await self._after(outcome)
            return
        claim = _claim(text)
        if stage in ("secret_number", "secret"):
            if claim is not None and stage == "secret_number":
                self._set(stage="secret", claim=claim)
                self.t.say("verify_secret_ask")
                return
            if stage == "secret" and text.strip():
                found = state.get("claim") or {}
                outcome = await self.v.check_secret(
                    t.session,
                    t.account,
                    text,
                    phone=found.get("phone"),
                    number=found.get("account"),
                    conversation_id=t.conversation_id,
                    now=t.now,
                )
                await self._after(outcome)
                return
        if claim is not None:
            await self._send(claim)
            return
        if stage == "code" and state.get("claim") and _NOT_ARRIVED.search(text):
            await self._send(state["claim"], again=True)  # «смс не пришла»: not a wrong code
            return
        misses = int(state.get("misses", 0)) + 1
        if misses > MAX_UNPARSED:
            self.end()
            await t.give_up()
            return
        self._set(misses=misses)
        if stage == "number":
            self._ask()
        elif any(ch.isdigit() for ch in text):  # digits, but not a code: a mistyped one
            left = CODE_TRIES - int(state.get("tries", 0))
            self.t.say("verify_code_wrong", tries_left=left)
        else:  # words while the code is awaited: say what is awaited and how to get another
            self.t.say("verify_code_waiting", self._secret_button())

    async def _send(self, claim: dict[str, Any], *, again: bool = False) -> None:
        t = self.t
        outcome = await self.v.send_code(
            t.session,
            t.account,
            phone=claim.get("phone"),
            number=claim.get("account"),
            conversation_id=t.conversation_id,
            now=t.now,
        )
        if outcome.result == "limited":
            self.end()
            t.say("verify_limited")
            return
        self._set(stage="code", claim=claim, misses=0, tries=0)
        sent = "verify_code_resent" if again else "verify_code_sent"
        t.say(sent, self._secret_button(), minutes=outcome.minutes)

    async def _after(self, outcome: Outcome) -> None:
        t, state = self.t, self.state
        result = outcome.result
        if result == "verified":
            resume = state.get("resume") or {}
            self.end()
            t.slots["customer"] = outcome.customer
            t.say("verify_done", customer=outcome.customer)
            await t.resume(resume)
        elif result == "wrong":
            tries = int(state.get("tries", 0)) + 1
            self._set(tries=tries)
            left = max(0, CODE_TRIES - tries)
            t.say("verify_code_wrong", tries_left=left)
        elif result == "too_many":
            self.end()
            t.say("verify_too_many")
            await t.give_up()
        elif result in ("expired", "no_code"):
            self._set(stage="number", claim=None)
            t.say("verify_code_expired")
        elif result == "not_own":
            t.say("verify_not_own", self._secret_button())
        else:  # "unknown": their own number is no customer's
            self.end()
            t.say("verify_unknown")


NUMBER_GIVEN = "_number"  # slot: a number the subscriber sent on its own, for the next check
# «смс не пришла», «код не приходит», «где код?», «отправьте ещё раз»
_NOT_ARRIVED = re.compile(
    r"не\s*(?:при|до)?(?:шл|шёл|шел|ход|получ)|нет\s+(?:смс|sms|кода|сообщ)"
    r"|где\s+(?:же\s+)?(?:код|смс|sms)|новый\s+код|повторн"
    r"|(?:отправ|пришл|вышл|скин)\w*\s+(?:ещё|еще|снова|заново|новый|другой)",
    re.IGNORECASE,
)


def claim_of(text: str) -> dict[str, Any] | None:
    """A phone or account number in the message (see `_claim`)."""
    return _claim(text)


def _claim(text: str) -> dict[str, Any] | None:
    """A phone or account number in the message, as {"phone": ...} or {"account": ...}."""
    value = parse_value("phone_or_account", text)
    return value if isinstance(value, dict) else None
