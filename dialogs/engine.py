"""The dialog engine: runs the content's flows for one subscriber turn (the bot's `Responder`).

A turn is a text, a button press or a media message. The engine picks what to do:
- `/start` or a first empty contact: the `welcome` response;
- a button: its intent, flow, step of a flow, or an answer for the slot being asked;
- while a form asks a slot: the text is parsed as that slot's value (re-prompt when it isn't,
  "отмена" cancels, a clearly different request starts that flow instead);
- otherwise the NLU intent starts its flow; below the confidence threshold the bot offers the top
  intents as buttons, and after repeated misses offers a human.
Flow state lives in `conversation.slots` (keys starting with `_`), beside the slot values, so a
restart or another app process continues the same conversation. Content comes from a holder whose
`.current` is swapped atomically by hot reload; a turn uses one version from start to end.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import select

from dialogs import expr, identity, incidents
from dialogs.backends import Backend, BackendContext, BackendError, Customer, to_json
from dialogs.content import (
    FLOW_PAYLOAD,
    INTENT_PAYLOAD,
    NONE_OF_THESE,
    REMEMBERED_TYPES,
    SLOT_PAYLOAD,
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
    Say,
    SetSlots,
    SlotDef,
    StartFlow,
    UseFlow,
    command_key,
)
from dialogs.incidents import Incidents, Rules
from dialogs.limits import VK
from dialogs.messages import Button, Outbound
from dialogs.responder import Escalator, Turn
from dialogs.slot_types import Choice, parse_value, window_options
from storage import repo
from storage.models import ConversationState, Subscriber, Ticket, utcnow

log = logging.getLogger(__name__)

NOT_A_DIGRESSION = {"affirm", "deny"}  # answers inside a form, never a new request
NO_SUGGEST = {"out_of_scope", "affirm", "deny"}
MAX_STEPS = 200  # per turn: a goto loop in content must not hang the bot


class ContentSource(Protocol):
    @property
    def current(self) -> Content: ...


class StaticContent:
    def __init__(self, content: Content) -> None:
        self.current = content


class DialogEngine:
    def __init__(
        self,
        content: ContentSource,
        backend: Backend,
        *,
        threshold: float = 0.4,
        clock: Callable[[], datetime] = utcnow,
        escalator: Escalator | None = None,
        incidents: Incidents | None = None,
    ) -> None:
        self.content = content
        self.backend = backend
        self.escalator = escalator
        # Outage incidents (dialogs/incidents.py); default rules when none are given (dialog tests).
        self.incidents = incidents or Incidents(Rules(), backend)
        self.threshold = threshold
        self.clock = clock

    async def respond(self, turn: Turn) -> list[Outbound]:
        run = _Run(self, self.content.current, turn)
        await run.handle()
        if run.slots != turn.conversation.slots:
            turn.conversation.slots = run.slots  # a new dict, so SQLAlchemy sees the change
        return run.out

    def notice(self, name: str, turn: Turn, **scope: object) -> Outbound:
        """A reserved response said outside a flow (e.g. "continued_here" when a chat moves in
        from the subscriber's other channel)."""
        run = _Run(self, self.content.current, turn)
        return render(run.c.responses[name], {**run.scope(), **scope}, str(turn.inbound.channel))


class _Run:
    """One turn's work: the content version, a copy of the slots, and the replies so far."""

    def __init__(self, engine: DialogEngine, content: Content, turn: Turn) -> None:
        self.e = engine
        self.c = content
        self.turn = turn
        self.slots: dict[str, Any] = dict(turn.conversation.slots)
        self.out: list[Outbound] = []

    # -- entry ----------------------------------------------------------------------------

    async def handle(self) -> None:
        inbound = self.turn.inbound
        if self.turn.new_conversation:
            await self._remember_customer()
        text = (inbound.text or "").strip()
        payload = inbound.payload or ""
        if text.startswith("/start") or payload in ("/start", "start"):
            self._clear_flow()
            self.say("welcome")
            return
        if payload:
            await self._on_payload(payload)
            return
        if not text:
            kind = inbound.attachments[0].kind if inbound.attachments else None
            if kind is None:
                self.say("welcome" if self.turn.new_conversation else "fallback")
            else:
                self.say(kind if kind in ("photo", "sticker") else "media")
            return
        command = self.c.command_flows.get(command_key(text))
        if command is not None:  # an exact command ("/link") starts its flow, even mid-form
            self.turn.handled_as = "command"
            self._clear_flow()
            await self.start(command)
            return
        state = self.slots.get("_flow")
        if state and state.get("awaiting"):
            if self._is_cancel(text):
                self.turn.handled_as = "cancel"
                self._clear_flow()
                self.say("cancelled")
                return
            await self._on_answer(text, state)
            return
        parse = self.turn.parse
        if parse is not None and parse.confidence >= self.e.threshold:
            flow = self.c.intent_flows.get(parse.intent)
            if flow is not None:
                await self.start(flow)
                return
        if inbound.attachments:  # a photo with a caption we don't understand: it's the photo
            kind = inbound.attachments[0].kind
            self.say(kind if kind in ("photo", "sticker") else "media")
            return
        await self._miss()

    async def _on_payload(self, payload: str) -> None:
        if payload.startswith(INTENT_PAYLOAD):
            target = self.c.intent_flows.get(payload.removeprefix(INTENT_PAYLOAD))
            await (self.start(target) if target else self._stale())
        elif payload.startswith(FLOW_PAYLOAD):
            name = payload.removeprefix(FLOW_PAYLOAD)
            await (self.start(name) if name in self.c.flows else self._stale())
        elif payload.startswith(STEP_PAYLOAD):
            name, _, label = payload.removeprefix(STEP_PAYLOAD).partition(":")
            flow = self.c.flows.get(name)
            if flow is None or label not in flow.labels:
                await self._stale()
            else:
                await self.start(name, flow.labels[label])
        elif payload.startswith(SLOT_PAYLOAD):
            slot, _, raw = payload.removeprefix(SLOT_PAYLOAD).partition("=")
            state = self.slots.get("_flow") or {}
            if state.get("awaiting") != slot or slot not in self.c.slots:
                await self._stale()
                return
            value = self._button_value(self.c.slots[slot], raw)
            if value is None:
                await self._reprompt(state)
            else:
                await self._fill(state, slot, value)
        elif payload == NONE_OF_THESE:
            await self._miss(suggest=False)
        else:
            await self._stale()

    async def _stale(self) -> None:
        self.say("stale")

    # -- forms ----------------------------------------------------------------------------

    async def _on_answer(self, text: str, state: dict[str, Any]) -> None:
        slot = self.c.slots.get(state["awaiting"])
        flow = self.c.flows.get(state.get("name", ""))
        if slot is None or flow is None:  # content changed under a waiting form
            self._clear_flow()
            await self._miss()
            return
        parse = self.turn.parse
        value = self._parse_answer(slot, text)
        if value is not None:
            self.turn.handled_as = f"form:{slot.name}"
            await self._fill(state, slot.name, value)
            return
        if parse is not None and parse.confidence >= self.e.threshold:
            other = self.c.intent_flows.get(parse.intent)
            if other and other != flow.name and parse.intent not in NOT_A_DIGRESSION:
                await self.start(other)  # the subscriber asked something else: follow them
                return
        await self._reprompt(state)

    def _parse_answer(self, slot: SlotDef, text: str) -> Any:
        parse = self.turn.parse
        choices = self._choices(slot)
        if slot.type == "choice" and not choices:
            return None  # nothing to choose from (an empty list from the backend)
        return parse_value(
            slot.type,
            text,
            intent=parse.intent if parse is not None else None,
            choices=choices,
            now=self.e.clock(),
            tz=self.c.bot.tz,
        )

    def _button_value(self, slot: SlotDef, raw: str) -> Any:
        if slot.type == "yes_no":
            return {"yes": True, "no": False}.get(raw)
        if slot.type == "time_window":
            for option in window_options(self.e.clock(), tz=self.c.bot.tz, days=3):
                if _window_key(option) == raw:
                    return option
            return None
        if slot.type == "choice":
            return raw if any(c.value == raw for c in self._choices(slot)) else None
        return parse_value(slot.type, raw, now=self.e.clock(), tz=self.c.bot.tz)

    async def _fill(self, state: dict[str, Any], slot: str, value: Any) -> None:
        self.slots[slot] = value
        stack = [(str(n), int(p)) for n, p in state.get("stack", [])]
        await self.run(state["name"], int(state["pc"]) + 1, stack)

    async def _reprompt(self, state: dict[str, Any]) -> None:
        retries = int(state.get("retries", 0)) + 1
        if retries > self.c.bot.max_retries:
            self._clear_flow()
            await self._give_up()
            return
        self.slots["_flow"] = {**state, "retries": retries}
        slot = self.c.slots[state["awaiting"]]
        flow = self.c.flows.get(str(state.get("name")))
        ask = (
            flow.program[int(state["pc"])]
            if flow and int(state["pc"]) < len(flow.program)
            else None
        )
        step_prompt = ask.prompt if isinstance(ask, Ask) else None
        self.emit(slot.retry or step_prompt or slot.prompt, self._slot_buttons(slot))

    def _is_cancel(self, text: str) -> bool:
        lowered = text.lower().strip(" !.?")
        return lowered in self.c.bot.cancel_words

    # -- running a flow -------------------------------------------------------------------

    async def start(self, name: str, pc: int = 0) -> None:
        self.slots["_misses"] = 0
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
                self._clear_flow()
                return
            ins = flow.program[pc]
            if isinstance(ins, Say):
                self.emit(ins.response)
                pc += 1
            elif isinstance(ins, Ask):
                slot = self.c.slots[ins.slot]
                if self._already_known(slot, ins.force):
                    pc += 1
                    continue
                self.slots["_flow"] = {
                    "name": name,
                    "pc": pc,
                    "awaiting": slot.name,
                    "retries": 0,
                    "stack": [list(frame) for frame in stack],
                }
                self.emit(ins.prompt or slot.prompt, self._slot_buttons(slot))
                return
            elif isinstance(ins, Call):
                try:
                    self.slots[ins.into] = await self._call(ins.action)
                    self.slots.pop("error", None)
                    pc += 1
                except BackendError as exc:
                    log.warning("backend %s failed (%s): %s", ins.action, exc.reason, exc)
                    self.slots["error"] = {"reason": exc.reason, "action": ins.action}
                    if ins.on_error is None:
                        self._clear_flow()
                        self.say("error")
                        return
                    pc = ins.on_error
            elif isinstance(ins, Jump):
                pc = ins.target
            elif isinstance(ins, JumpUnless):
                pc = pc + 1 if expr.evaluate(ins.condition, self.scope()) else ins.target
            elif isinstance(ins, StartFlow):
                name, flow, pc, stack = ins.flow, self.c.flows[ins.flow], 0, []
            elif isinstance(ins, UseFlow):
                stack.append((name, pc + 1))
                name, flow, pc = ins.flow, self.c.flows[ins.flow], 0
            elif isinstance(ins, Handoff):
                self._clear_flow()
                await self._handoff(ins.group, ins.reason, name)
                return
            elif isinstance(ins, MakeTicket):
                try:
                    self.slots[ins.into] = await self._ticket(ins)
                except BackendError as exc:
                    log.warning("backend ticket %s failed (%s): %s", ins.kind, exc.reason, exc)
                    self.slots["error"] = {"reason": exc.reason, "action": "ticket"}
                    self._clear_flow()
                    self.say("error")
                    return
                pc += 1
            elif isinstance(ins, SetSlots):
                self.slots.update(dict(ins.values))
                pc += 1
            else:
                assert isinstance(ins, End)
                self._clear_flow()
                return
        log.error("flow %s ran %d steps in one turn (a goto loop?); stopped", name, MAX_STEPS)
        self._clear_flow()
        self.say("error")

    def _already_known(self, slot: SlotDef, force: bool) -> bool:
        if force or slot.type not in REMEMBERED_TYPES:
            return False
        if self.slots.get(slot.name) is not None:
            return True
        if slot.prefill is not None:
            value = expr.evaluate(slot.prefill, self.scope())
            parsed = parse_value(slot.type, str(value)) if value is not None else None
            if parsed is not None:
                self.slots[slot.name] = parsed
                return True
        return False

    def _clear_flow(self) -> None:
        self.slots.pop("_flow", None)

    # -- misses ---------------------------------------------------------------------------

    async def _miss(self, *, suggest: bool = True) -> None:
        self.turn.handled_as = self.turn.handled_as or "miss"  # analytics: the fallback rate
        misses = int(self.slots.get("_misses", 0)) + 1
        self.slots["_misses"] = misses
        if misses >= self.c.bot.max_misses:
            await self._give_up()
            return
        parse = self.turn.parse
        offer = []
        if suggest and parse is not None:
            offer = [
                r.name
                for r in parse.ranking[:3]
                if r.name in self.c.intent_flows and r.name not in NO_SUGGEST
            ]
        if not offer:
            self.say("fallback")
            return
        rows = [
            (Button(self.c.flows[self.c.intent_flows[i]].title, INTENT_PAYLOAD + i),) for i in offer
        ]
        rows.append((Button(self.c.bot.none_of_these, NONE_OF_THESE),))
        self.emit(self.c.responses["unsure"], tuple(rows))

    async def _give_up(self) -> None:
        """The bot can't help: straight to an operator (content's `give_up_group`), or, with no
        operators wired or no group set, a button that asks for one."""
        self.slots["_misses"] = 0
        group = self.c.bot.give_up_group
        if self.e.escalator is not None and group:
            self.emit(self.c.responses["give_up"])
            await self._handoff(group, "the bot did not understand", "give_up")
            return
        operator = self.c.intent_flows.get("operator")
        rows: tuple[tuple[Button, ...], ...] = ()
        if operator is not None:
            rows = ((Button(self.c.flows[operator].title, INTENT_PAYLOAD + "operator"),),)
        self.emit(self.c.responses["give_up"], rows)

    # -- effects --------------------------------------------------------------------------

    def _ctx(self) -> BackendContext:
        t = self.turn
        return BackendContext(
            t.session, t.inbound.channel, t.account.subscriber_id, t.conversation.id
        )

    def _customer(self) -> Customer:
        data = self.slots.get("customer")
        if not isinstance(data, dict):
            raise BackendError("no customer identified in this conversation", "no_customer")
        return Customer(**data)

    async def _call(self, action: str) -> Any:
        if action in identity.ACTIONS:
            t = self.turn
            return await identity.act(
                action, t.session, t.account, self.slots, self._render, now=self.e.clock()
            )
        b, ctx = self.e.backend, self._ctx()
        if action == "identify":
            contract = self.slots.get("contract") or {}
            customer = await b.find_customer(
                ctx, phone=contract.get("phone"), account=contract.get("account")
            )
            if customer is not None:
                await self._store_customer(customer)
            return to_json(customer)
        if action == "balance":
            return to_json(await b.balance(ctx, self._customer()))
        if action == "tariff_current":
            return to_json(await b.current_tariff(ctx, self._customer()))
        if action == "tariffs":
            return to_json(await b.tariffs(ctx))
        if action == "tariff_change":
            code = self.slots.get("tariff")
            if not code:
                raise BackendError("tariff_change without a chosen `tariff`", "no_tariff")
            return to_json(await b.change_tariff(ctx, self._customer(), str(code)))
        if action == "promised_payment_offer":
            return to_json(await b.promised_payment_offer(ctx, self._customer()))
        if action == "promised_payment":
            return to_json(await b.take_promised_payment(ctx, self._customer()))
        if action == "outage":
            address = self.slots.get("address") or (self.slots.get("customer") or {}).get("address")
            if not address:
                raise BackendError("no address to check for outages", "no_address")
            return await self._outage(ctx, str(address))
        if action in incidents.ACTIONS:
            t = self.turn
            return await self.e.incidents.act(
                action, t.session, t.account.subscriber_id, self.slots, now=self.e.clock()
            )
        raise BackendError(f"unknown action {action}", "unknown_action")

    async def _outage(self, ctx: BackendContext, address: str) -> Any:
        """`outage`: our open incident for the area, told before any troubleshooting, else the
        backend's outage. The contact is recorded and may open an incident (dialogs/incidents.py)."""
        return await self.e.incidents.check(
            ctx,
            address=address,
            customer=self.slots.get("customer"),
            problem=self._problem(),
            now=self.e.clock(),
        )

    def _problem(self) -> str:
        """The intent a contact is about (internet_down, tv_down, ...): of the flow that asked
        the form question this text answered, else of the button pressed, else of the text."""
        names: list[str] = []
        state = self.slots.get("_flow") or {}
        if (self.turn.handled_as or "").startswith("form:"):
            names += [str(frame[0]) for frame in state.get("stack", [])]
            names.append(str(state.get("name", "")))
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

    async def _store_customer(self, customer: Customer) -> None:
        """Remember who the subscriber is, so a later conversation doesn't ask again."""
        sub = await self.turn.session.get(Subscriber, self.turn.account.subscriber_id)
        if sub is not None:
            sub.phone, sub.account_number = customer.phone, customer.account
            sub.data = {**sub.data, "customer": to_json(customer)}

    async def _remember_customer(self) -> None:
        if "customer" in self.slots:
            return
        row = await self.turn.session.execute(
            select(Subscriber.data).where(Subscriber.id == self.turn.account.subscriber_id)
        )
        data = row.scalar_one_or_none() or {}
        if data.get("customer"):
            self.slots["customer"] = data["customer"]

    async def _handoff(self, group: str, reason: str | None, flow: str) -> None:
        turn = self.turn
        self.say("handoff")
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

    async def _ticket(self, ins: MakeTicket) -> dict[str, Any]:
        customer = None
        if isinstance(self.slots.get("customer"), dict):
            customer = Customer(**self.slots["customer"])
        details = {name: self.slots.get(name) for name in ins.details}
        receipt = await self.e.backend.create_ticket(self._ctx(), ins.kind, customer, details)
        self.turn.session.add(
            Ticket(
                number=receipt.number,
                kind=receipt.kind,
                subscriber_id=self.turn.account.subscriber_id,
                conversation_id=self.turn.conversation.id,
                details=to_json(receipt.details),
                due_at=receipt.due_at,
            )
        )
        result: dict[str, Any] = to_json(receipt)
        return result

    # -- rendering ------------------------------------------------------------------------

    def scope(self) -> dict[str, Any]:
        inbound = self.turn.inbound
        name = inbound.first_name or self.turn.account.first_name or "друг"
        return {**self.slots, "channel": str(inbound.channel), "first_name": name}

    def _render(self, name: str, scope: dict[str, Any], channel: str) -> Outbound:
        return render(self.c.responses[name], scope, channel)

    def say(self, response: str) -> None:
        self.emit(self.c.responses[response])

    def emit(self, response: Response, extra: tuple[tuple[Button, ...], ...] = ()) -> None:
        self.out.append(render(response, self.scope(), str(self.turn.inbound.channel), extra))

    def _choices(self, slot: SlotDef) -> tuple[Choice, ...]:
        if slot.choices_from is None:
            return slot.choices
        items = expr.resolve(slot.choices_from.of, self.scope())
        if not isinstance(items, list):
            return ()
        return tuple(
            Choice(
                str(item.get(slot.choices_from.value)), expr.render(slot.choices_from.title, item)
            )
            for item in items
            if isinstance(item, dict)
        )

    def _slot_buttons(self, slot: SlotDef) -> tuple[tuple[Button, ...], ...]:
        prefix = f"{SLOT_PAYLOAD}{slot.name}="
        if slot.type == "yes_no":
            return ((Button(self.c.bot.yes, prefix + "yes"), Button(self.c.bot.no, prefix + "no")),)
        if slot.type == "time_window":
            options = window_options(self.e.clock(), tz=self.c.bot.tz, days=3)
            buttons = [Button(o["label"], prefix + _window_key(o)) for o in options]
            return tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
        if slot.type == "choice":
            buttons = [Button(c.title[:40], prefix + c.value) for c in self._choices(slot)][:10]
            per_row = 1 if len(buttons) <= 5 else 2
            return tuple(tuple(buttons[i : i + per_row]) for i in range(0, len(buttons), per_row))
        return ()


def _window_key(option: dict[str, Any]) -> str:
    return f"{option['date']} {option['from']}-{option['to']}"


def render(
    response: Response,
    scope: dict[str, Any],
    channel: str,
    extra: tuple[tuple[Button, ...], ...] = (),
) -> Outbound:
    """One reply from a response: a random variant, the channel's override, templates filled."""
    variant = random.choice(response.variants).for_channel(channel)
    text = expr.render(variant.text, scope) if variant.text is not None else None
    if variant.lines is not None:
        items = expr.resolve(variant.lines.of, scope)
        lines = [
            expr.render(variant.lines.text, {**scope, **item})
            for item in (items if isinstance(items, list) else [])
            if isinstance(item, dict)
        ]
        text = "\n".join([text, *lines] if text else lines)
    rows = extra + tuple(
        tuple(Button(b.title, b.payload, b.url) for b in row) for row in variant.buttons
    )
    if channel == "vk" and len(rows) > VK.rows:  # automatic buttons + the response's own
        flat = [b for row in rows for b in row][: VK.rows * 2]
        rows = tuple(tuple(flat[i : i + 2]) for i in range(0, len(flat), 2))
    return Outbound(text=text, buttons=rows, image=variant.image, sticker=variant.sticker)
