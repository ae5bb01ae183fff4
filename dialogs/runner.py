"""Running a flow's program for one turn: `Runner` interprets the compiled instructions (say, ask,
call, if/goto, use, handoff, ticket, set, verify, route) until the flow asks something, ends or
hands off, and holds what every part of a turn shares (the content version, the slots, the
replies). The dialog engine (dialogs/engine.py) decides what a message is and subclasses it.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from dialogs import expr, understanding
from dialogs.actions import ActionContext, ActionError, Actions
from dialogs.content import (
    FLOW_PAYLOAD,
    INTENT_PAYLOAD,
    NONE_OF_THESE,
    STEP_PAYLOAD,
    Ask,
    Call,
    Content,
    End,
    Handoff,
    Jump,
    JumpUnless,
    MakeTicket,
    Response,
    Route,
    Say,
    SetSlots,
    ShowArticle,
    StartFlow,
    UseFlow,
    Verify,
)
from dialogs.forms import Forms
from dialogs.knowledge import Knowledge
from dialogs.messages import Button, Outbound, SharedContact
from dialogs.responder import Escalator, Turn
from dialogs.responses import FRIEND, Rows, render
from dialogs.verify import (
    SECRET_PAYLOAD,
    SECRET_TITLE,
    Talk,
    Verification,
    Verifier,
    level_at_least,
)
from storage import repo
from storage.models import ConversationState

log = logging.getLogger(__name__)
MAX_STEPS = 200  # per turn: a goto loop in content must not hang the bot
# Never offered as "did you mean": not a topic a subscriber could want to pick.
NO_SUGGEST = {"out_of_scope", "affirm", "deny", "greet", "goodbye", "thanks"}
MAX_OFFERS = 3  # "did you mean" buttons (and «Другое»): intents, then knowledge-base titles


class Engine(Protocol):
    """What a turn reads of the dialog engine (dialogs/engine.py DialogEngine)."""

    actions: Actions
    escalator: Escalator | None
    verifier: Verifier | None
    threshold: float
    suggest_floor: float
    clock: Callable[[], datetime]


class Runner:
    def __init__(self, engine: Engine, content: Content, turn: Turn) -> None:
        self.e = engine
        self.c = content
        self.turn = turn
        self.slots: dict[str, Any] = dict(turn.conversation.slots)
        self.out: list[Outbound] = []
        self.text = (turn.inbound.text or "").strip()
        # The message that started the flow being run this turn: values in it fill its questions.
        self.given_text: str | None = None
        self.topic: tuple[str, str | None] | None = None  # (flow, intent) started this turn
        self.handed_off = False
        # Through a proxy, so that the turn's objects are freed when it ends, not by the cycle
        # collector: a cycle here kept every turn's parse, hits and buttons alive until a
        # collection, and each one (~50,000 objects at 300 msg/s) paused the process ~50 ms.
        me = weakref.proxy(self)
        self.forms = Forms(me)
        self.kb = Knowledge(me)

    # -- running a flow -------------------------------------------------------------------

    async def start(self, name: str, pc: int = 0) -> None:
        self.slots["_misses"] = 0
        flow = self.c.flows[name]
        self.topic = (name, flow.intents[0] if flow.intents else None)
        await self.run(name, pc)

    async def run(self, name: str, pc: int, stack: list[tuple[str, int]] | None = None) -> None:
        """Execute from `pc` until the flow asks something, ends, or hands off. `stack` holds
        where to come back to after a `use:`d flow finishes."""
        stack = list(stack or [])
        flow = self.c.flows[name]
        for _ in range(MAX_STEPS):
            if pc >= len(flow.program) and stack:
                name, pc = stack.pop()
                flow = self.c.flows[name]
                continue
            if pc >= len(flow.program):
                self.clear_flow()
                return
            ins = flow.program[pc]
            if isinstance(ins, Say):
                self.emit(ins.response)
                pc += 1
            elif isinstance(ins, Ask):
                if self.forms.known(self.c.slots[ins.slot], ins.force):
                    pc += 1
                    continue
                self.forms.ask(name, pc, stack, ins)
                return
            elif isinstance(ins, Call | MakeTicket):
                next_pc = await self._act(ins, name, pc)
                if next_pc is None:
                    return
                pc = next_pc
            elif isinstance(ins, Jump):
                pc = ins.target
            elif isinstance(ins, JumpUnless):
                pc = pc + 1 if expr.evaluate(ins.condition, self.scope()) else ins.target
            elif isinstance(ins, Route):
                said = self.text
                pc = next(
                    (t for keys, t in ins.routes if understanding.matches(said, keys)), pc + 1
                )
            elif isinstance(ins, ShowArticle):
                article = self.c.articles.get(ins.article)  # the validator saw it exists
                if article is not None:
                    self.kb.show(article)
                pc += 1
            elif isinstance(ins, StartFlow):
                name, flow, pc, stack = ins.flow, self.c.flows[ins.flow], 0, []
            elif isinstance(ins, UseFlow):
                stack.append((name, pc + 1))
                name, flow, pc = ins.flow, self.c.flows[ins.flow], 0
            elif isinstance(ins, Handoff):
                self.clear_flow()
                await self.handoff(ins.group, ins.reason, name)
                return
            elif isinstance(ins, Verify):
                resume = {"name": name, "pc": pc + 1, "stack": [list(f) for f in stack]}
                if self.given_text:
                    resume["said"] = self.given_text
                if not await self._verify(ins.level, resume):
                    self.clear_flow()  # the verification has the conversation; it resumes this
                    return
                pc += 1
            elif isinstance(ins, SetSlots):
                self.slots.update(dict(ins.values))
                pc += 1
            else:
                assert isinstance(ins, End)
                self.clear_flow()
                return
        log.error("flow %s ran %d steps in one turn (a goto loop?); stopped", name, MAX_STEPS)
        self.clear_flow()
        self.say("error")

    async def _act(self, ins: Call | MakeTicket, name: str, pc: int) -> int | None:
        """Run a `call:` / `ticket:`; the next pc, or None when the flow stops (an error with no
        `on_error:`)."""
        if isinstance(ins, Call):
            action, args, on_error = ins.action, None, ins.on_error
        else:
            details = {slot: self.slots.get(slot) for slot in ins.details}
            action, args, on_error = "ticket", {"kind": ins.kind, "details": details}, None
        try:
            self.slots[ins.into] = await self.call(action, args)
            self.slots.pop("error", None)
            return pc + 1
        except ActionError as exc:
            log.warning("action %s failed (%s): %s", action, exc.reason, exc)
            self.slots["error"] = {"reason": exc.reason, "action": action}
            if on_error is None:
                self.clear_flow()
                self.say("error")
                return None
            return on_error

    def clear_flow(self) -> None:
        self.slots.pop("_flow", None)

    def has_route(self, flow: str) -> bool:
        """Does the flow look at the subscriber's own words (a `route:` step)?"""
        return any(isinstance(i, Route) for i in self.c.flows[flow].program)

    def takes_values(self, flow: str) -> bool:
        """Does the flow (or one it uses) ask, verify or call the backend: can a number or
        address in the message be for it? An answer-only flow (number porting's steps) cannot."""
        seen: set[str] = set()
        todo = [flow]
        while todo:
            name = todo.pop()
            seen.add(name)
            for i in self.c.flows[name].program:
                if isinstance(i, Ask | Verify | Call):
                    return True
                if isinstance(i, UseFlow | StartFlow) and i.flow not in seen:
                    todo.append(i.flow)
        return False

    # -- verification -----------------------------------------------------------------------

    def _verification(self) -> Verification:
        t = self.turn

        async def resume(where: dict[str, Any]) -> None:
            if where.get("name") in self.c.flows:
                stack = [(str(n), int(p)) for n, p in where.get("stack", [])]
                self.given_text = where.get("said")  # what the guarded flow was started with
                await self.run(str(where["name"]), int(where["pc"]), stack)

        talk = Talk(
            session=t.session,
            account=t.account,
            conversation_id=t.conversation.id,
            now=self.e.clock(),
            slots=self.slots,
            say=self._say_with,
            resume=resume,
            give_up=self.give_up,
        )
        if self.e.verifier is None:
            raise ActionError("no verifier wired: nobody can be verified", "unavailable")
        return Verification(self.e.verifier, talk)

    async def _verify(self, level: str, resume: dict[str, Any]) -> bool:
        return await self._verification().begin(level, resume, self.given_text or self.text)

    async def verifying(self, text: str, payload: str, contact: SharedContact | None) -> bool:
        """A message while a verification runs. False: it is about something else (a button
        elsewhere, another request): the verification ends and the message is handled anew."""
        verification = self._verification()
        if not payload and understanding.match_button(text, [SECRET_TITLE]) is not None:
            payload = SECRET_PAYLOAD  # the button's title typed (a Telegram reply keyboard)
        if contact is not None or payload.startswith("verify:"):
            await verification.answer(text, payload, contact)
            return True
        if payload:
            verification.end()
            return False
        if understanding.control(text, self.c.bot.cancel_words) == "cancel":
            verification.end()
            self.turn.handled_as = "cancel"
            self.say("cancelled")
            return True
        parse = self.turn.parse
        digits = any(c.isdigit() for c in text)
        if not digits and parse is not None and parse.confidence >= self.e.threshold:
            other = self.c.intent_flows.get(parse.intent)
            resume = (self.slots.get("_verify") or {}).get("resume") or {}
            if other and other != resume.get("name") and parse.intent not in ("affirm", "deny"):
                verification.end()
                return False
        self.turn.handled_as = "verify"
        await verification.answer(text, payload, None)
        return True

    async def verifying_for_operator(self) -> None:
        """Only what answers the verification an operator asked for; anything else is theirs."""
        inbound = self.turn.inbound
        text, payload = self.text, inbound.payload or ""
        state = self.slots.get("_verify") or {}
        if not payload and understanding.match_button(text, [SECRET_TITLE]) is not None:
            payload = SECRET_PAYLOAD
        answers = (
            inbound.contact is not None
            or payload.startswith("verify:")
            or Verification.is_answer(text, str(state.get("stage")))
        )
        if answers:
            self.turn.handled_as = "verify"
            await self._verification().answer(text, payload, inbound.contact)

    async def verify_by_contact(self, contact: SharedContact) -> None:
        """A contact shared with no verification running: verify them anyway (and say so)."""
        verification = self._verification()
        self.slots["_verify"] = {"level": "verified", "stage": "number", "resume": {}}
        await verification.answer("", "", contact)

    # -- effects --------------------------------------------------------------------------

    async def call(self, name: str, args: dict[str, Any] | None = None) -> Any:
        action = self.e.actions.get(name)
        if action is None:
            raise ActionError(f"unknown action {name}", "unknown_action")
        t = self.turn
        need = action.level_for(args or {})
        if need != "none":  # content validation guarantees this; the runtime checks again
            status = (
                await self.e.verifier.status(t.session, t.account, self.e.clock())
                if (self.e.verifier is not None)
                else None
            )
            if status is None or not level_at_least(status.level, need):
                raise ActionError(f"{name} needs a {need} subscriber", "unverified")
        call = ActionContext(
            session=t.session,
            channel=str(t.inbound.channel),
            account=t.account,
            conversation_id=t.conversation.id,
            slots=self.slots,
            render=self._render,
            now=self.e.clock(),
            topic=self.problem(),
            args=args or {},
            text=self.text,
        )
        return await action.run(call)

    def problem(self) -> str:
        """The intent a contact is about (internet_down, tv_down, ...): of the flow that asked
        the form question this text answered, else of the button pressed, else of the text."""
        names: list[str] = []
        state = self.slots.get("_flow") or {}
        if (self.turn.handled_as or "").startswith("form:"):
            names += [str(frame[0]) for frame in state.get("stack", [])]
            names.append(str(state.get("name", "")))
        if self.topic is not None:
            names.append(self.topic[0])
        payload = self.turn.inbound.payload or ""
        if payload.startswith(INTENT_PAYLOAD):
            return payload.removeprefix(INTENT_PAYLOAD)
        names.append(payload.removeprefix(STEP_PAYLOAD).removeprefix(FLOW_PAYLOAD).split(":")[0])
        for name in names:
            flow = self.c.flows.get(name)
            if flow is not None and flow.intents:
                return flow.intents[0]
        parse = self.turn.parse
        return parse.intent if parse is not None else "unknown"

    async def remember_customer(self) -> None:
        """A new conversation knows who the subscriber is only if they are verified still."""
        self.slots.pop("customer", None)
        if self.e.verifier is None:
            return
        t = self.turn
        status = await self.e.verifier.status(t.session, t.account, self.e.clock())
        if status.level != "none":
            self.slots["customer"] = status.customer

    async def handoff(self, group: str, reason: str | None, flow: str) -> None:
        turn = self.turn
        self.say("handoff")
        self.handed_off = True
        self.slots.pop("_resume", None)
        why = reason or flow
        if self.e.escalator is not None:
            self.slots = {k: v for k, v in self.slots.items() if k != "_flow"}
            turn.conversation.slots = self.slots  # the escalator adds its own marks to these
            self.out += await self.e.escalator.escalate(
                turn.session, turn.conversation, turn.account, group=group, reason=why
            )
            self.slots = dict(turn.conversation.slots)
            return
        conv = turn.conversation  # no operators wired (tests of the dialogs alone)
        await repo.set_state(
            turn.session,
            conv,
            ConversationState.QUEUED,
            kind="escalated",
            data={"group": group, "reason": why},
        )
        conv.skill_group = group

    # -- misses ---------------------------------------------------------------------------

    async def miss(self, *, suggest: bool = True) -> None:
        self.turn.handled_as = self.turn.handled_as or "miss"  # analytics: the fallback rate
        misses = int(self.slots.get("_misses", 0)) + 1
        self.slots["_misses"] = misses
        if misses >= self.c.bot.max_misses:
            await self.give_up()
            return
        parse = self.turn.parse
        offer = []
        if suggest and parse is not None and parse.confidence >= self.e.suggest_floor:
            offer = [
                r.name
                for r in parse.ranking[:3]
                if r.name in self.c.intent_flows
                and r.name not in ("out_of_scope", "affirm", "deny")
            ]
        rows = [
            (Button(self.c.flows[self.c.intent_flows[i]].title, INTENT_PAYLOAD + i),) for i in offer
        ]
        if suggest and self.text:  # knowledge-base articles close to the question
            rows += [(b,) for b in self.kb.titles(self.text, MAX_OFFERS - len(rows))]
        if not rows:
            self.say("fallback")
            return
        rows.append((Button(self.c.bot.none_of_these, NONE_OF_THESE),))
        self.emit(self.c.responses["unsure"], tuple(rows))

    async def give_up(self) -> None:
        """The bot can't help: straight to an operator (content's `give_up_group`), or, with no
        operators wired or no group set, a button that asks for one."""
        self.slots["_misses"] = 0
        group = self.c.bot.give_up_group
        if self.e.escalator is not None and group:
            self.emit(self.c.responses["give_up"])
            await self.handoff(group, "the bot did not understand", "give_up")
            return
        self.offer_human()

    def offer_human(self) -> None:
        """«Позвать оператора?» as a button: the subscriber decides."""
        operator = self.c.intent_flows.get("operator")
        rows: Rows = ()
        if operator is not None:
            rows = ((Button(self.c.flows[operator].title, INTENT_PAYLOAD + "operator"),),)
        self.emit(self.c.responses["give_up"], rows)

    # -- rendering ------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        inbound = self.turn.inbound
        name = inbound.first_name or self.turn.account.first_name or FRIEND
        return {**self.slots, "channel": str(inbound.channel), "first_name": name}

    def _render(self, name: str, scope: dict[str, Any], channel: str) -> Outbound:
        return render(self.c.responses[name], scope, channel)

    def say(self, response: str) -> None:
        self.emit(self.c.responses[response])

    def _say_with(self, response: str, extra: Rows = (), **scope: Any) -> None:
        self.emit(self.c.responses[response], extra, **scope)

    def emit(self, response: Response, extra: Rows = (), **scope: Any) -> None:
        values = {**self.scope(), **scope}
        self.out.append(render(response, values, str(self.turn.inbound.channel), extra))
