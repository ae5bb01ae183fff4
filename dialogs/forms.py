"""Forms: a flow's questions (`ask:` steps) and the subscriber's answers.

- asking: a question whose answer is known already is skipped — remembered for the chat (phone,
  account, address), filled from what billing knows (`from:`), or given in the very message that
  started the flow («перенесите мастера на пятницу», «подключите интернет на Садовую 5»,
  «жалоба: мастер не пришёл», «перейти на Безлимит+»);
- answering: the text is parsed as the slot's type; a typed button title counts as the press;
- leaving: «отмена», «да не нужен мне мастер», «ой всё само заработало», «нет, подумаю» end the
  form; another clear request is answered and the form is held to be offered back
  (`_resume`); anything else gets the re-prompt, which says how to leave.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from dialogs import expr, understanding
from dialogs.content import (
    REMEMBERED_TYPES,
    SLOT_PAYLOAD,
    Ask,
    Content,
    Response,
    SlotDef,
    UseFlow,
)
from dialogs.knowledge import Knowledge
from dialogs.messages import Button, Outbound
from dialogs.responder import Turn
from dialogs.responses import Rows
from dialogs.slot_types import Choice, parse_value, window_options
from nlu.address import address_span, extract_address

NOT_A_DIGRESSION = {"affirm", "deny"}  # answers inside a form, never a new request
_CLAUSES = re.compile(r"[,.;!?]|\s(?:а|но|или)\s")
_NOT_THEN = re.compile(r"\bне\s+(?:смогу|могу|получится|буду|успею)|\bнельзя\b|\bзанят")
_PHONEISH = re.compile(r"\+?\d[\d\s()-]{8,}\d")
_ADDRESS_TAIL = re.compile(r"\b(?:кв|квартира|корп|корпус|дом|д)\.?\s*\d+\w?", re.IGNORECASE)
TEXT_CONTROL_WORDS = 8  # a free-text answer this short may be «а хотя ладно, не буду писать»
# Slot types a flow-starting message may answer without being asked.
GIVEN_TYPES = {"phone", "account", "phone_or_account", "address", "time_window", "choice", "text"}


class _Engine(Protocol):
    threshold: float
    clock: Callable[[], datetime]


class Run(Protocol):
    """What forms use of the turn being run (dialogs/runner.py Runner)."""

    @property
    def e(self) -> _Engine: ...

    @property
    def c(self) -> Content: ...

    @property
    def turn(self) -> Turn: ...

    slots: dict[str, Any]
    out: list[Outbound]
    given_text: str | None
    kb: Knowledge

    def scope(self) -> dict[str, Any]: ...

    def emit(self, response: Response, extra: Rows = (), **scope: Any) -> None: ...

    def say(self, response: str) -> None: ...

    def clear_flow(self) -> None: ...

    async def miss(self, *, suggest: bool = True) -> None: ...

    async def give_up(self) -> None: ...

    async def start(self, name: str, pc: int = 0) -> None: ...

    async def run(self, name: str, pc: int, stack: list[tuple[str, int]] | None = None) -> None: ...


class Forms:
    def __init__(self, run: Run) -> None:
        self.r = run

    # -- asking ---------------------------------------------------------------------------

    def known(self, slot: SlotDef, force: bool) -> bool:
        """Is the answer known already (and so not asked)? Fills it when it can."""
        r = self.r
        if not force and slot.type in REMEMBERED_TYPES:
            if r.slots.get(slot.name) is not None:
                return True
            if slot.prefill is not None:
                value = expr.evaluate(slot.prefill, r.scope())
                parsed = parse_value(slot.type, str(value)) if value is not None else None
                if parsed is not None:
                    r.slots[slot.name] = parsed
                    return True
        given = self.given(slot) if not force else None
        if given is not None:
            self._set(slot, given)
            return True
        return False

    def _set(self, slot: SlotDef, value: Any) -> None:
        """An answer stored; a choice from a list result keeps the chosen item too."""
        self.r.slots[slot.name] = value
        chosen = self._chosen(slot, value)
        if chosen is not None:  # for the confirmation: `tariff_choice.name`
            self.r.slots[f"{slot.name}_choice"] = chosen

    def given(self, slot: SlotDef) -> Any:
        """The answer to `slot` in the message that started the flow this turn, if any."""
        text = self.r.given_text
        if not text or slot.type not in GIVEN_TYPES:
            return None
        if slot.type == "address":
            return extract_address(text) or parse_value("address", text)
        if slot.type == "text":
            return understanding.substantive(text)
        if slot.type == "choice":
            choices = self.choices(slot)
            if not choices:
                return None
            value = parse_value("choice", text, choices=choices)
            found = understanding.named_in(text, [c.title for c in choices])
            return (
                value
                if value is not None
                else (choices[found].value if found is not None else None)
            )
        if slot.type == "time_window":
            return self._window_in(text)
        return parse_value(slot.type, text)

    def _window_in(self, text: str) -> Any:
        """A visit time inside a longer message: its address and phone aside, clause by clause,
        skipping a clause that rules a day out («на пятницу, завтра не смогу»)."""
        found = address_span(text)
        clean = text[: found[0]] + " " + text[found[1] :] if found else text
        clean = _PHONEISH.sub(" ", clean)
        clean = _ADDRESS_TAIL.sub(" ", clean)
        for clause in _CLAUSES.split(clean):
            if not clause.strip() or _NOT_THEN.search(clause.lower()):
                continue
            found = parse_value("time_window", clause, now=self.r.e.clock(), tz=self.r.c.bot.tz)
            if found is not None:
                return found
        return None

    def ask(self, name: str, pc: int, stack: list[tuple[str, int]], ins: Ask) -> None:
        r = self.r
        slot = r.c.slots[ins.slot]
        r.slots["_flow"] = {
            "name": name,
            "pc": pc,
            "awaiting": slot.name,
            "retries": 0,
            "stack": [list(frame) for frame in stack],
        }
        if r.given_text:  # later questions of this flow may be answered by it too
            r.slots["_flow"]["said"] = r.given_text
        r.emit(ins.prompt or slot.prompt, self.buttons(slot))

    async def ask_again(self, state: dict[str, Any]) -> None:
        """Back to a held form, from its question on: what it collected is still in the slots,
        and what became known meanwhile (verified: billing's address and phone) is not asked."""
        r = self.r
        flow = r.c.flows.get(str(state.get("name")))
        pc = int(state.get("pc", 0))
        ins = flow.program[pc] if flow is not None and pc < len(flow.program) else None
        if flow is None or not isinstance(ins, Ask) or ins.slot not in r.c.slots:
            r.say("stale")
            return
        stack = [(str(n), int(p)) for n, p in state.get("stack", [])]
        r.given_text = state.get("said")
        await r.run(flow.name, pc, stack)

    # -- answering ----------------------------------------------------------------------------

    async def answer(self, text: str, state: dict[str, Any]) -> None:
        r = self.r
        slot = r.c.slots.get(state["awaiting"])
        flow = r.c.flows.get(state.get("name", ""))
        if slot is None or flow is None:  # content changed under a waiting form
            r.clear_flow()
            await r.miss()
            return
        if text.lower().strip(" !.?") in r.c.bot.cancel_words:
            self._leave()
            return
        if slot.type == "text" and await self._not_an_answer(text, state, flow.name):
            return
        value = self.parse(slot, text)
        if value is None:
            value = self._typed_choice(slot, text)
        if value is not None:
            r.turn.handled_as = f"form:{slot.name}"
            await self.fill(state, slot.name, value)
            return
        if understanding.control(text, r.c.bot.cancel_words) is not None:
            self._leave()
            return
        other = self._other_request(state)
        if other is not None:
            r.slots["_resume"] = {"state": state, "offers": 0}
            r.clear_flow()
            r.given_text = text
            await r.start(other)  # the subscriber asked something else: answer, offer back later
            return
        if understanding.is_question(text) and r.kb.clearly_answers(text):
            r.slots["_resume"] = {"state": state, "offers": 0}  # «а сколько стоит роутер?»
            r.clear_flow()
            r.kb.answer(text)
            return
        await self.reprompt(state)

    async def _not_an_answer(self, text: str, state: dict[str, Any], current: str) -> bool:
        """A free-text question takes anything, so first: is this a refusal («а хотя ладно не
        буду ничего писать») or a question of its own («а где офис?», «что с моей жалобой?»)?"""
        r = self.r
        short = len(text.split()) <= TEXT_CONTROL_WORDS
        if short and understanding.control(text, r.c.bot.cancel_words) is not None:
            self._leave()
            return True
        if not understanding.is_question(text):
            return False
        parse = r.turn.parse
        if parse is None or parse.confidence < r.e.threshold:
            return False
        other = r.c.intent_flows.get(parse.intent)
        if other == current:  # «что с моей жалобой?» in the complaint form: its routes decide
            r.clear_flow()
            r.given_text = text
            await r.start(current)
            return True
        if other is None or parse.intent in NOT_A_DIGRESSION:
            return False
        r.slots["_resume"] = {"state": state, "offers": 0}
        r.clear_flow()
        r.given_text = text
        await r.start(other)
        return True

    def _leave(self) -> None:
        r = self.r
        r.turn.handled_as = "cancel"
        r.clear_flow()
        r.slots.pop("_resume", None)
        r.say("cancelled")

    def _other_request(self, state: dict[str, Any]) -> str | None:
        """The flow a message asks for instead of answering, unless it is the waiting form's
        own, one it was used from, or one that uses it too: «всё равно не работает» at the
        outage check's address (internet_down or tv_down) would only ask the same again."""
        parse = self.r.turn.parse
        if parse is None or parse.confidence < self.r.e.threshold:
            return None
        other = self.r.c.intent_flows.get(parse.intent)
        if not other or parse.intent in NOT_A_DIGRESSION:
            return None
        waiting = str(state.get("name"))
        mine = {waiting, *(str(name) for name, _pc in state.get("stack", []))}
        program = self.r.c.flows[other].program if other in self.r.c.flows else ()
        asks_the_same = any(isinstance(i, UseFlow) and i.flow == waiting for i in program)
        return None if other in mine or asks_the_same else other

    def parse(self, slot: SlotDef, text: str) -> Any:
        r = self.r
        parse = r.turn.parse
        choices = self.choices(slot)
        if slot.type == "choice" and not choices:
            return None  # nothing to choose from (an empty list from the backend)
        return parse_value(
            slot.type,
            text,
            intent=parse.intent if parse is not None else None,
            choices=choices,
            now=r.e.clock(),
            tz=r.c.bot.tz,
        )

    def parse_yes_no(self, text: str) -> bool | None:
        value = parse_value("yes_no", text)
        return value if isinstance(value, bool) else None

    def _typed_choice(self, slot: SlotDef, text: str) -> Any:
        """A typed button title of this question («выбери Безлимит+», «завтра утром»), or «самый
        дешёвый» among priced choices."""
        if slot.choices_from is not None and understanding.wants_cheapest(text):
            items = expr.resolve(slot.choices_from.of, self.r.scope())
            priced = [i for i in items or [] if isinstance(i, dict) and "price" in i]
            if priced:
                return str(min(priced, key=lambda i: float(i["price"]))[slot.choices_from.value])
        buttons = [b for row in self.buttons(slot) for b in row if b.payload]
        found = understanding.match_button(text, [b.title for b in buttons])
        if found is None:
            return None
        payload = buttons[found].payload or ""
        return self.button_value(slot, payload.partition("=")[2])

    async def pressed(self, raw: str) -> None:
        """A slot button (`slot:<name>=<value>`) pressed."""
        r = self.r
        slot, _, value_raw = raw.partition("=")
        state = r.slots.get("_flow") or {}
        if state.get("awaiting") != slot or slot not in r.c.slots:
            r.say("stale")
            return
        value = self.button_value(r.c.slots[slot], value_raw)
        if value is None:
            await self.reprompt(state)
        else:
            await self.fill(state, slot, value)

    def button_value(self, slot: SlotDef, raw: str) -> Any:
        r = self.r
        if slot.type == "yes_no":
            return {"yes": True, "no": False}.get(raw)
        if slot.type == "time_window":
            for option in window_options(r.e.clock(), tz=r.c.bot.tz, days=3):
                if _window_key(option) == raw:
                    return option
            return None
        if slot.type == "choice":
            return raw if any(c.value == raw for c in self.choices(slot)) else None
        return parse_value(slot.type, raw, now=r.e.clock(), tz=r.c.bot.tz)

    async def fill(self, state: dict[str, Any], slot: str, value: Any) -> None:
        r = self.r
        definition = r.c.slots.get(slot)
        if definition is not None:
            self._set(definition, value)
        else:
            r.slots[slot] = value
        stack = [(str(n), int(p)) for n, p in state.get("stack", [])]
        r.given_text = state.get("said")
        await r.run(state["name"], int(state["pc"]) + 1, stack)

    def _chosen(self, slot: SlotDef | None, value: Any) -> dict[str, Any] | None:
        if slot is None or slot.choices_from is None:
            return None
        items = expr.resolve(slot.choices_from.of, self.r.scope())
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict) and str(item.get(slot.choices_from.value)) == str(value):
                return item
        return None

    async def reprompt(self, state: dict[str, Any]) -> None:
        r = self.r
        retries = int(state.get("retries", 0)) + 1
        if retries > r.c.bot.max_retries:
            r.clear_flow()
            await r.give_up()
            return
        r.slots["_flow"] = {**state, "retries": retries}
        slot = r.c.slots[state["awaiting"]]
        flow = r.c.flows.get(str(state.get("name")))
        pc = int(state["pc"])
        ask = flow.program[pc] if flow and pc < len(flow.program) else None
        step_prompt = ask.prompt if isinstance(ask, Ask) else None
        r.emit(slot.retry or step_prompt or slot.prompt, self.buttons(slot))
        last = r.out[-1]
        hint = r.c.bot.leave_hint
        if hint and last.text:  # how to leave, on every re-prompt
            r.out[-1] = Outbound(f"{last.text}\n{hint}", last.buttons, last.image, last.sticker)

    # -- what a question offers ---------------------------------------------------------------

    def choices(self, slot: SlotDef) -> tuple[Choice, ...]:
        if slot.choices_from is None:
            return slot.choices
        items = expr.resolve(slot.choices_from.of, self.r.scope())
        if not isinstance(items, list):
            return ()
        return tuple(
            Choice(
                str(item.get(slot.choices_from.value)), expr.render(slot.choices_from.title, item)
            )
            for item in items
            if isinstance(item, dict)
        )

    def buttons(self, slot: SlotDef) -> Rows:
        r = self.r
        prefix = f"{SLOT_PAYLOAD}{slot.name}="
        if slot.type == "yes_no":
            return ((Button(r.c.bot.yes, prefix + "yes"), Button(r.c.bot.no, prefix + "no")),)
        if slot.type == "time_window":
            options = window_options(r.e.clock(), tz=r.c.bot.tz, days=3)
            found = [Button(o["label"], prefix + _window_key(o)) for o in options]
            return tuple(tuple(found[i : i + 2]) for i in range(0, len(found), 2))
        if slot.type == "choice":
            found = [Button(c.title[:40], prefix + c.value) for c in self.choices(slot)][:10]
            per_row = 1 if len(found) <= 5 else 2
            return tuple(tuple(found[i : i + per_row]) for i in range(0, len(found), per_row))
        return ()


def _window_key(option: dict[str, Any]) -> str:
    return f"{option['date']} {option['from']}-{option['to']}"
