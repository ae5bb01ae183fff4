"""The dialog engine: runs the content's flows for one subscriber turn (the bot's `Responder`).

A turn is a text, a button press, a shared contact or a media message. The engine decides what
it is, in this order:
- `/start`: the welcome; a verification in progress takes its answer (dialogs/verify.py);
- a button (or a typed text naming one of the buttons just shown): its intent, flow, step, or
  an answer for the slot being asked; «вернуться к заявке?» answered;
- an exact command ("/link", «помощь»): its flow, even mid-form;
- while a form asks a slot: the text is parsed as that slot's value; «отмена», «да не нужен
  мне мастер», «нет, подумаю» leave the form; a clearly different request is answered and the
  form is offered back afterwards; else a re-prompt that says how to leave;
- otherwise the request: the NLU intent starts its flow (values the message already gives —
  a phone, an account, an address, a day, a description, a tariff — fill the flow's questions
  so nothing is asked twice); a short follow-up («а через сбер?») continues the previous topic;
  a refusal («стоп, не надо мастера») is not a request; below the confidence threshold the bot
  offers the top intents as buttons, and after repeated misses offers a human;
- the long tail: a question no intent covers (or out of scope) that a knowledge-base article
  answers gets the article (dialogs/knowledge.py); weaker matches join "did you mean".
Flow state lives in `conversation.slots` (keys starting with `_`), beside the slot values, so a
restart or another app process continues the same conversation. Content comes from a holder whose
`.current` is swapped atomically by hot reload; a turn uses one version from start to end.
The flows' instructions are run by dialogs/runner.py; forms by dialogs/forms.py.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from dialogs import assist, understanding
from dialogs.actions import Actions
from dialogs.content import (
    FLOW_PAYLOAD,
    INTENT_PAYLOAD,
    KB_PAYLOAD,
    NONE_OF_THESE,
    SLOT_PAYLOAD,
    STEP_PAYLOAD,
    Content,
    Route,
    command_key,
)
from dialogs.knowledge import MAX_TITLES
from dialogs.messages import Button, Outbound
from dialogs.responder import Escalator, Searched, Turn
from dialogs.responses import ContentSource, render
from dialogs.runner import Runner
from dialogs.verify import NUMBER_GIVEN, Verifier, claim_of
from nlu.offload import Offload
from storage.models import utcnow

log = logging.getLogger(__name__)

MISS_INTENTS = {"out_of_scope"}  # answered, but a miss: two in a row offer a human
SMALL_TALK = {"greet", "goodbye", "thanks", "affirm", "deny"}  # never "the other question"
# Requests a plain «не надо» can refuse; elsewhere a negation is part of the story («не хочу
# платить за то, что не работает» is a complaint, «с ботом не хочу» asks for a human).
REFUSABLE = {"technician_visit", "connect_home", "promised_payment", "tariff_change"}
CONTEXT_FLOOR = 0.15  # an unsure guess that one of the bot's own buttons offered is taken
# Below this, another topic's intent for a short follow-up («а тв есть?», «а интернет там будет
# работать?») does not take it away from the answer it follows.
FOLLOWUP_SURE = 0.7
OUT_OF_SCOPE_FLOOR = 0.25  # below the threshold, but clearly not ours
RESUME_PAYLOAD = "resume:"
MAX_RESUME_OFFERS = 2


class DialogEngine:
    def __init__(
        self,
        content: ContentSource,
        actions: Actions,
        *,
        threshold: float = 0.4,
        suggest_floor: float = 0.0,
        clock: Callable[[], datetime] = utcnow,
        escalator: Escalator | None = None,
        verifier: Verifier | None = None,
        offload: Offload | None = None,
    ) -> None:
        self.content = content
        self.offload = offload  # the knowledge-base search runs there (nlu/offload.py)
        self.actions = actions  # what `call:` and `ticket:` run (dialogs/actions.py)
        self.escalator = escalator
        self.verifier = verifier  # who is verified (services/verification.py)
        self.threshold = threshold
        self.suggest_floor = suggest_floor  # below it no "did you mean" buttons
        self.clock = clock

    def search_ahead(self, text: str) -> Coroutine[Any, Any, Searched] | None:
        """The knowledge-base search the turn for `text` makes, started in the helper process
        now, while the NLU reads the message (the pipeline puts it in `Turn.searched`); None
        without a helper ready: the turn searches itself."""
        if self.offload is None:
            return None
        index = self.content.current.knowledge
        text = text.strip()
        future = self.offload.submit(index, "search", text, MAX_TITLES) if len(index) else None
        if future is None:
            return None
        offload = self.offload

        async def searched() -> Searched:
            hits = await offload.outcome(future, index, "search", text, MAX_TITLES)
            return Searched(index, text, hits)

        return searched()

    async def respond(self, turn: Turn) -> list[Outbound]:
        run = _Run(self, self.content.current, turn)
        await run.handle()
        if run.slots != turn.conversation.slots:
            turn.conversation.slots = run.slots  # a new dict, so SQLAlchemy sees the change
        return run.out

    async def verification(self, turn: Turn) -> list[Outbound]:
        """A message in a chat with an operator who asked for verification: the bot takes what
        answers it (a contact, a number, the code, the code word) and leaves the rest to the
        operator (no reply)."""
        run = _Run(self, self.content.current, turn)
        await run.verifying_for_operator()
        if run.slots != turn.conversation.slots:
            turn.conversation.slots = run.slots
        return run.out

    def notice(self, name: str, turn: Turn, **scope: object) -> Outbound:
        """A reserved response said outside a flow (e.g. "continued_here" when a chat moves in
        from the subscriber's other channel)."""
        run = _Run(self, self.content.current, turn)
        return render(run.c.responses[name], {**run.scope(), **scope}, str(turn.inbound.channel))


class _Run(Runner):
    """One turn's work: deciding what the message is (here), running flows (Runner), forms
    (Forms); the content version, a copy of the slots, and the replies so far."""

    def __init__(self, engine: DialogEngine, content: Content, turn: Turn) -> None:
        super().__init__(engine, content, turn)

    async def handle(self) -> None:
        await self._understand()
        self._offer_resume()
        self._remember_last()

    async def _understand(self) -> None:
        inbound = self.turn.inbound
        if self.turn.new_conversation:
            await self.remember_customer()
        text = self.text
        payload = inbound.payload or ""
        if text.startswith("/start") or payload in ("/start", "start"):
            self.clear_flow()
            self.slots.pop("_verify", None)
            self.slots.pop("_resume", None)
            self.say("welcome")
            return
        if self.slots.get("_verify") and await self.verifying(text, payload, inbound.contact):
            return
        if inbound.contact is not None:
            await self.verify_by_contact(inbound.contact)
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
            self.clear_flow()
            await self.start(command)
            return
        state = self.slots.get("_flow")
        if state and state.get("awaiting"):
            await self.forms.answer(text, state)
            return
        if self.slots.get("_resume") and await self._answer_resume(text):
            return
        pressed = self._typed_button(text)
        if pressed is not None:
            self.turn.handled_as = "button"
            self.given_text = text  # «а на безлимит+ перейти можно?» names the tariff too
            await self._on_payload(pressed)
            return
        await self.request(text)

    # -- a request --------------------------------------------------------------------------

    async def request(self, text: str) -> None:
        """A message that is not an answer: start what it asks for, in the light of what the
        bot said last (its topic and its buttons)."""
        parse = self.turn.parse
        confident = parse is not None and parse.confidence >= self.e.threshold
        intent = parse.intent if parse is not None and confident else None
        self.given_text = text
        if understanding.only_number(text) and (claim := claim_of(text)) is not None:
            self.slots[NUMBER_GIVEN] = claim  # «89110000001» first: kept for the check to come
            self.turn.handled_as = "number"
            self.say("number_only")
            return
        started = self.c.started_by(text)  # «жалоба: ...» whatever the rest says
        if started is not None:
            await self.start(started)
            return
        context = self._in_context(text, intent)
        if context is not None:
            before = len(self.out)
            await self.start(context)
            if self._repeats(before):
                self._answer_instead(before, text)
            return
        vague = intent is None or intent in MISS_INTENTS or self._unsure_followup(text)
        if vague and self.kb.follow_up(text):
            return  # «а сколько стоит?», «а тв есть?» right after an article
        flow = self.c.intent_flows.get(intent) if intent else None
        refusal = understanding.control(text, self.c.bot.cancel_words) == "cancel"
        if flow is not None and refusal and intent in REFUSABLE and not self.has_route(flow):
            self.turn.handled_as = "cancel"  # «не надо обещанный платёж»: nothing to start
            self.say("refused")
            return
        if flow is not None and intent in MISS_INTENTS:
            if not self.kb.answer(text):  # the long tail first: an article may cover it
                await self._out_of_scope(flow)
            return
        if flow is not None:
            # A number in the message asks about an account («сколько на счёте 9100...») if
            # the flow can take it, and the topic just answered goes on («а домашний интернет у
            # меня какой?» after «мой тариф»): the intent's, never an article's. «Кто владелец
            # номера 8911...» is no account question for number porting's answer-only flow.
            last = self.slots.get("_last") or {}
            takes = parse is not None and bool(parse.entities) and self.takes_values(flow)
            own = parse is None or takes or intent == last.get("intent")
            sure = 1.0 if own or parse is None else parse.confidence
            if not (self.kb.beats_intent(text, sure) and self.kb.answer(text)):
                await self._start_both(flow)
                answered = not (self.handed_off or self.slots.get("_flow") or own)
                if answered and not self.slots.get("_verify"):
                    self.kb.offer_beside(text)
            return
        if refusal and intent is None:
            self.turn.handled_as = "cancel"
            self.say("refused")
            return
        if self.turn.inbound.attachments:  # a photo with a caption we don't understand
            kind = self.turn.inbound.attachments[0].kind
            self.say(kind if kind in ("photo", "sticker") else "media")
            return
        if self.kb.answer(text):  # no intent, but an article answers it
            return
        plainly_elsewhere = self._out_of_scope_flow()
        if plainly_elsewhere is not None:  # «закажите такси»: an honest "can't" beats a guess
            await self._out_of_scope(plainly_elsewhere)
            return
        self.slots["_unsure_text"] = text  # a button pressed after "did you mean" gets it
        await self.miss()

    async def _start_both(self, flow: str) -> None:
        """Start `flow`; when the message asked a second thing («где оплатить и какой у меня
        тариф») and one of the two is answered from the words alone, that one is said first
        and the other started after it, each read on its own part of the message."""
        parse = self.turn.parse
        also = parse.extra.get("also") if parse is not None else None
        other = self.c.intent_flows.get(str(also.get("intent"))) if isinstance(also, dict) else None
        if not isinstance(also, dict) or other is None or other == flow:
            await self.start(flow)
            return
        if str(also.get("intent")) in MISS_INTENTS | SMALL_TALK:
            await self.start(flow)
            return
        asked, main_text = str(also.get("text") or ""), str(also.get("main") or self.text)
        if assist.completes(self.c, other, asked):
            order = [(other, asked), (flow, main_text)]
        elif assist.completes(self.c, flow, main_text):
            order = [(flow, main_text), (other, asked)]
        else:  # both need more than words: one thing at a time
            await self.start(flow)
            return
        self.turn.handled_as = "two questions"
        whole = self.text
        try:
            for name, part in order:
                self.text = self.given_text = part
                await self.start(name)
        finally:
            self.text = whole

    def _in_context(self, text: str, intent: str | None) -> str | None:
        """The flow a message continues, read with the previous answer: its topic's own words
        («перенесите...» after a visit, «забыла написать» after a complaint), a follow-up
        («а через сбер?»), or — when the NLU is unsure — one of the topics its buttons offered."""
        last = self.slots.get("_last") or {}
        previous = last.get("flow") if last.get("flow") in self.c.flows else None
        parse = self.turn.parse
        whole = parse.extra.get("whole_confidence") if parse is not None else None
        reread = isinstance(whole, float) and whole < self.e.threshold  # a clause's guess only
        same_or_vague = (
            intent is None
            or reread
            or intent in MISS_INTENTS
            or intent == last.get("intent")
            or self._leans_back(text, last.get("intent"))
        )
        if previous and same_or_vague and self._routes_match(previous, text):
            return str(previous)
        if previous and same_or_vague and understanding.is_followup(text):
            return str(previous)
        if intent is not None:
            return None
        offered = {p.removeprefix(INTENT_PAYLOAD) for _, p in _buttons_of(last)}
        if parse is not None and parse.ranking:
            top = parse.ranking[0]
            if top.name in offered and top.confidence >= CONTEXT_FLOOR:
                return self.c.intent_flows.get(top.name)
        if previous and understanding.is_question(text) and len(text.split()) <= 6:
            return str(previous)  # «до какого числа?» right after the answer it asks about
        return None

    def _unsure_followup(self, text: str) -> bool:
        """A short follow-up whose intent the NLU is not sure of (`FOLLOWUP_SURE`)."""
        parse = self.turn.parse
        sure = parse is not None and parse.confidence >= FOLLOWUP_SURE
        return not sure and understanding.is_followup(text)

    def _leans_back(self, text: str, previous: object) -> bool:
        """An unsure follow-up whose guesses include the previous answer's topic («а интернет
        там будет работать?» after roaming: internet_down 0.54, roaming 0.26): that topic."""
        parse = self.turn.parse
        return (
            parse is not None
            and self._unsure_followup(text)
            and any(r.name == previous and r.confidence >= CONTEXT_FLOOR for r in parse.ranking)
        )

    def _repeats(self, before: int) -> bool:
        """Did the replies from `before` on say word for word what the bot said last turn (a
        follow-up read with the previous topic, which had nothing more to say)?"""
        last = self.slots.get("_last") or {}
        return (
            len(self.out) > before
            and last.get("said") == _said(self.out[before:])
            and not self.slots.get("_flow")
            and not self.handed_off
        )

    def _answer_instead(self, before: int, text: str) -> None:
        """An article that answers `text` replaces the repeat («а сколько стоит роутер?» after
        the home plans: the equipment prices, not the plans again); else the repeat stays."""
        repeat = self.out[before:]
        del self.out[before:]
        if not self.kb.answer(text):
            self.out.extend(repeat)

    def _routes_match(self, flow: str, text: str) -> bool:
        return any(
            isinstance(i, Route) and any(understanding.matches(text, k) for k, _ in i.routes)
            for i in self.c.flows[flow].program
        )

    def _out_of_scope_flow(self) -> str | None:
        parse = self.turn.parse
        if parse is None or not parse.ranking:
            return None
        top = parse.ranking[0]
        if top.name in MISS_INTENTS and top.confidence >= OUT_OF_SCOPE_FLOOR:
            return self.c.intent_flows.get(top.name)
        return None

    async def _out_of_scope(self, flow: str) -> None:
        """An honest "I can't, here is what I can" — still a miss: two in a row offer a human."""
        self.turn.handled_as = "miss"
        misses = int(self.slots.get("_misses", 0)) + 1
        if misses >= self.c.bot.max_misses:
            await self.give_up()
            return
        await self.run(flow, 0)
        self.slots["_misses"] = misses

    def _typed_button(self, text: str) -> str | None:
        """The payload of the button just shown that `text` names («наличными», «где
        терминалы»), if it names exactly one."""
        last = self.slots.get("_last") or {}
        buttons = [b for b in last.get("buttons", []) if isinstance(b, list) and len(b) == 2]
        if not buttons:
            return None
        found = understanding.match_button(text, [title for title, _ in buttons])
        short = len(text.split()) <= 3 or understanding.is_followup(text)
        if found is None and short:  # «картой», «а где именно?» -> «Где терминалы»
            found = _loose_button(text, [title for title, _ in buttons])
        return str(buttons[found][1]) if found is not None else None

    # -- buttons ------------------------------------------------------------------------------

    async def _on_payload(self, payload: str) -> None:
        if payload.startswith(INTENT_PAYLOAD):
            target = self.c.intent_flows.get(payload.removeprefix(INTENT_PAYLOAD))
            # After "did you mean": the message it was about may answer the flow's questions.
            unsure = self.slots.pop("_unsure_text", None)
            self.given_text = self.given_text or unsure
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
            await self.forms.pressed(payload.removeprefix(SLOT_PAYLOAD))
        elif payload.startswith(RESUME_PAYLOAD):
            await self._resume(payload == RESUME_PAYLOAD + "yes")
        elif payload.startswith(KB_PAYLOAD):
            await self.kb.pressed(payload)
        elif payload == NONE_OF_THESE:
            await self.miss(suggest=False)
        else:
            await self._stale()

    async def _stale(self) -> None:
        self.say("stale")

    # -- an interrupted form --------------------------------------------------------------------

    def _offer_resume(self) -> None:
        """After a detour, offer the interrupted form back («вернёмся к заявке на мастера?»)."""
        held = self.slots.get("_resume")
        if not held or self.slots.get("_flow") or self.slots.get("_verify") or self.handed_off:
            return
        if int(held.get("offers", 0)) >= MAX_RESUME_OFFERS:
            self.slots.pop("_resume", None)
            return
        state = held.get("state", {})
        outer = ([*state.get("stack", [])] or [[state.get("name")]])[0][0]  # what they started
        flow = self.c.flows.get(str(outer)) or self.c.flows.get(str(state.get("name")))
        if flow is None:
            self.slots.pop("_resume", None)
            return
        yes_no = (
            Button(self.c.bot.yes, RESUME_PAYLOAD + "yes"),
            Button(self.c.bot.no, RESUME_PAYLOAD + "no"),
        )
        self.emit(self.c.responses["resume_offer"], (yes_no,), flow_title=flow.title)
        self.slots["_resume"] = {**held, "offers": int(held.get("offers", 0)) + 1}

    async def _answer_resume(self, text: str) -> bool:
        """A reply to «вернёмся к ...?»: yes / no, or straight the answer the form was waiting
        for. Anything else: not about it (the offer stays for after this answer)."""
        said = self.forms.parse_yes_no(text)
        if said is not None:
            await self._resume(said)
            return True
        held = self.slots.get("_resume") or {}
        state = held.get("state") or {}
        slot = self.c.slots.get(str(state.get("awaiting")))
        if slot is None or slot.type == "yes_no":
            return False
        if slot.type == "text":  # any text parses as one: only a real description counts
            value = understanding.substantive(text)
        else:
            value = self.forms.parse(slot, text)
        if value is None:
            return False
        self.slots.pop("_resume", None)
        self.turn.handled_as = f"form:{slot.name}"
        await self.forms.fill(state, slot.name, value)
        return True

    async def _resume(self, yes: bool) -> None:
        held = self.slots.pop("_resume", None)
        if not held:
            await self._stale()
            return
        if not yes:
            self.say("cancelled")
            return
        await self.forms.ask_again(held["state"])

    # -- what the next turn needs to know ----------------------------------------------------

    def _remember_last(self) -> None:
        """The topic and the buttons of the last reply, for typed buttons and follow-ups."""
        last = dict(self.slots.get("_last") or {})
        if self.topic is not None:
            last["flow"], last["intent"] = self.topic
        article = (self.turn.handled_as or "").removeprefix("kb:")
        if article != (self.turn.handled_as or ""):  # answered from an article: its topic now
            last["flow"] = last["intent"] = None
            last["article"] = article
        elif self.out:
            last.pop("article", None)
        buttons = (
            [[b.title, b.payload] for row in self.out[-1].buttons for b in row if b.payload]
            if self.out
            else []
        )
        last["buttons"] = buttons
        last["said"] = _said(self.out)
        self.slots["_last"] = last


def _said(replies: list[Outbound]) -> int:
    """A fingerprint of replies' texts (kept in the slots: stable across processes)."""
    return zlib.crc32("\x1f".join(r.text or "" for r in replies).encode())


def _buttons_of(last: dict[str, object]) -> list[tuple[str, str]]:
    found = last.get("buttons")
    return [
        (str(b[0]), str(b[1]))
        for b in (found if isinstance(found, list) else [])
        if isinstance(b, list) and len(b) == 2 and str(b[1]).startswith(INTENT_PAYLOAD)
    ]


def _loose_button(text: str, titles: list[str]) -> int | None:
    """The one title sharing a meaningful word (3+ letters) with a short follow-up."""
    said = {w for w in understanding.words(text) if len(w) >= 3 and w not in _FOLLOWUP_NOISE}
    hits = [i for i, t in enumerate(titles) if said & set(understanding.words(t))]
    return hits[0] if len(hits) == 1 else None


_FOLLOWUP_NOISE = frozenset("именно еще ещё тоже там тут это как что если".split())
