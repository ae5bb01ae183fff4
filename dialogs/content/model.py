"""The compiled content: the immutable model `load_content` returns and the dialog engine runs.

Responses (variants, buttons, per-channel overrides), slot definitions, flows compiled into flat
programs of instructions (Say, Ask, Call, Jump, ...), the bot's settings, and the names and
payload prefixes the engine and the content agree on. Nothing here reads files or checks content.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogs.slot_types import Choice
from dialogs.yamlsrc import Problem
from nlu.knowledge import KnowledgeIndex

CHANNELS = ("telegram", "vk")  # a response may override its text, buttons... for each of these

# Responses the engine itself says; content must define each.
RESERVED = {
    "welcome": "the greeting for /start and a first message",
    "fallback": "said when the bot did not understand and has nothing to suggest",
    "unsure": "said above the 'did you mean' buttons when the bot is not sure",
    "give_up": "said after repeated misses, with the button to an operator",
    "photo": "the reply to a photo",
    "sticker": "the reply to a sticker",
    "media": "the reply to voice, video, files and other media",
    "cancelled": "said when the subscriber cancels a form ('отмена')",
    "error": "said when the backend (billing, CRM) fails",
    "stale": "said when an old button is pressed",
    "handoff": "said when the chat goes to an operator",
    "ticket_resolved": "the notification sent when a ticket is resolved",
    "queue_position": "after handoff: the place in the queue ({queue.position}, {queue.wait})",
    "queue_next": "after handoff when a seat is free: an operator is joining now",
    "queue_offline": "after handoff when nobody of the group is online ({queue.hours})",
    "queue_update": "told again when the place in the queue or the wait changes materially",
    "after_hours": "after handoff outside working hours ({queue.returns}: when operators are back)",
    "operator_joined": "when an operator takes the chat ({operator.name})",
    "transferred": "when an operator transfers the chat to another group",
    "returned_to_bot": "when an operator hands the chat back to the bot",
    "csat_ask": "after an operator closes the chat, above the 1-5 rating buttons",
    "nps_ask": "after the rating, if NPS is on, above the 0-10 buttons",
    "csat_comment_ask": "after the rating: an optional comment",
    "csat_thanks": "the last word after a rating",
    "incident_closed": "to subscribers of an outage when it is fixed ({outage.area_title}, {outage.resolution})",
    "link_code": "sent to the OTHER channel when linking: the one-time {code} ({minutes} min)",
    "continued_here": "when a chat from the subscriber's other channel continues here",
    # Verified identity (a `verify:` step; the engine runs the conversation, dialogs/verify.py)
    "verify_ask": "asks who they are: phone or account number (Telegram: a share-contact button)",
    "verify_code_sent": "after a number: 'if it is ours, an SMS code comes' ({minutes} min)",
    "verify_code_wrong": "a wrong code ({tries_left} tries left)",
    "verify_code_waiting": "a message with no code while the code is awaited",
    "verify_code_resent": "«не пришло» while the code is awaited: a new code is sent ({minutes} min)",
    "verify_code_expired": "the code is too old: ask for the number again",
    "verify_too_many": "too many wrong codes or code words: a human will help",
    "verify_limited": "too many codes asked for within an hour",
    "verify_not_own": "a forwarded contact of someone else: it proves nothing",
    "verify_unknown": "their own shared number is not a customer's",
    "verify_secret_number": "no phone at hand: first the phone or account number",
    "verify_secret_ask": "no phone at hand: then the code word",
    "verify_done": "verified ({customer.name})",
    "verify_request": "an operator asks the subscriber to verify (from the console)",
    "number_only": "a message that is only a phone or account number: what about it? (kept for the check)",
    "logged_out": "after «выйти» / «это не мой номер»: the number is forgotten",
    # Knowledge base (content/knowledge/*.md)
    "kb_helped": "after «👍 Помогло» under an article",
    "kb_not_helped": "after «👎 Не помогло» (once; the second time in a row a human is offered)",
    # Conversation skills
    "resume_offer": "after a detour: offer to go back to the interrupted form ({flow_title})",
    "refused": "a request refused outright («не надо мастера») with nothing to cancel",
}
REMEMBERED_TYPES = {"phone", "account", "phone_or_account", "address"}  # never asked twice
BUILTIN_NAMES = {"channel", "first_name", "customer", "error", "ticket", "queue", "operator"}
BUILTIN_NAMES |= {"code", "minutes", "from_channel"}  # link_code, continued_here
BUILTIN_NAMES |= {"verification", "tries_left", "flow_title"}  # verify_*, resume_offer
LEVELS = ("none", "verified", "fresh")  # what a `verify:` step ensures, in order
INTENT_PAYLOAD, FLOW_PAYLOAD, STEP_PAYLOAD, SLOT_PAYLOAD = "intent:", "flow:", "step:", "slot:"
KB_PAYLOAD = "kb:"  # kb:<article> (show it), kb:more:<id>, kb:yes:<id>, kb:no:<id>
NONE_OF_THESE = "nlu:none"


# -- the compiled model ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    title: str
    payload: str | None = None
    url: str | None = None
    request: str | None = None  # "contact": Telegram's «Поделиться номером»


@dataclass(frozen=True, slots=True)
class Lines:
    """`lines: {for: tariffs, text: "• {name}"}`: one line per item of a list result."""

    of: str
    text: str


@dataclass(frozen=True, slots=True)
class Variant:
    text: str | None = None
    buttons: tuple[tuple[ButtonSpec, ...], ...] = ()
    image: str | None = None
    sticker: str | None = None
    lines: Lines | None = None
    channels: tuple[tuple[str, Variant], ...] = ()  # per-channel overrides

    def for_channel(self, channel: str) -> Variant:
        for name, override in self.channels:
            if name == channel:
                return override
        return self


@dataclass(frozen=True, slots=True)
class Response:
    name: str
    variants: tuple[Variant, ...]


@dataclass(frozen=True, slots=True)
class ChoicesFrom:
    of: str  # a list result, e.g. "tariffs"
    value: str  # the item key stored in the slot, e.g. "code"
    title: str  # template over the item, e.g. "{name} — {price|rub}"


@dataclass(frozen=True, slots=True)
class SlotDef:
    name: str
    type: str
    prompt: Response
    retry: Response | None = None
    choices: tuple[Choice, ...] = ()
    choices_from: ChoicesFrom | None = None
    prefill: ast.Expression | None = None  # `from:` e.g. customer.address


# Instructions of a compiled flow.
@dataclass(frozen=True, slots=True)
class Say:
    response: Response


@dataclass(frozen=True, slots=True)
class Ask:
    slot: str
    prompt: Response | None
    force: bool


@dataclass(frozen=True, slots=True)
class Call:
    action: str
    into: str
    on_error: int | None


@dataclass(frozen=True, slots=True)
class Jump:
    target: int


@dataclass(frozen=True, slots=True)
class JumpUnless:
    condition: ast.Expression
    target: int


@dataclass(frozen=True, slots=True)
class StartFlow:
    flow: str


@dataclass(frozen=True, slots=True)
class UseFlow:
    """Run another flow, then come back to the next step (like a subroutine)."""

    flow: str


@dataclass(frozen=True, slots=True)
class Handoff:
    group: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class MakeTicket:
    kind: str
    details: tuple[str, ...]
    into: str


@dataclass(frozen=True, slots=True)
class Verify:
    """Make sure the subscriber is verified at `level` ("verified" or "fresh"); if not, the
    engine runs the verification conversation and comes back here."""

    level: str


@dataclass(frozen=True, slots=True)
class Route:
    """Go to the first target whose words the subscriber's message has (`route:` step); else on."""

    routes: tuple[tuple[tuple[str, ...], int], ...]  # (words, target pc)


@dataclass(frozen=True, slots=True)
class ShowArticle:
    """Answer with a knowledge-base article (a `route:` entry's `article:`), as if its
    question had been asked."""

    article: str


@dataclass(frozen=True, slots=True)
class SetSlots:
    values: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class End:
    pass


Instr = (
    Say
    | Ask
    | Call
    | Jump
    | JumpUnless
    | StartFlow
    | UseFlow
    | Handoff
    | MakeTicket
    | SetSlots
    | Verify
    | Route
    | ShowArticle
    | End
)


@dataclass(frozen=True, slots=True)
class Flow:
    name: str
    title: str
    intents: tuple[str, ...]
    program: tuple[Instr, ...]
    labels: dict[str, int]


@dataclass(frozen=True, slots=True)
class BotSettings:
    max_misses: int = 2
    max_retries: int = 2
    none_of_these: str = "🤷 Другое"
    yes: str = "✅ Да"
    no: str = "❌ Нет"
    no_comment: str = "👌 Без комментария"
    give_up_group: str = (
        "consult"  # after repeated misses: hand off to this group ("" = offer a button)
    )
    cancel_words: tuple[str, ...] = ("отмена", "отменить", "стоп", "/cancel", "передумал")
    tz: str = "Europe/Moscow"
    kb_more: str = "📖 Подробнее"
    kb_yes: str = "👍 Помогло"
    kb_no: str = "👎 Не помогло"
    # Added to a form's re-prompt: how to leave it.
    leave_hint: str = "Передумал(а) — напиши «отмена» 🙂"


@dataclass(frozen=True, slots=True)
class ArticleText:
    short: str  # the answer in the chat
    body: str  # the whole article, on «Подробнее»


@dataclass(frozen=True, slots=True)
class Article:
    """A knowledge-base article (content/knowledge/<id>.md)."""

    id: str
    title: str
    questions: tuple[str, ...]
    text: ArticleText
    buttons: tuple[tuple[ButtonSpec, ...], ...] = ()
    keywords: tuple[str, ...] = ()
    channels: tuple[tuple[str, ArticleText], ...] = ()  # per-channel overrides
    file: str = ""

    def for_channel(self, channel: str) -> ArticleText:
        for name, override in self.channels:
            if name == channel:
                return override
        return self.text


@dataclass(frozen=True, slots=True)
class Content:
    responses: dict[str, Response]
    slots: dict[str, SlotDef]
    flows: dict[str, Flow]
    intent_flows: dict[str, str]
    bot: BotSettings
    fingerprint: str
    warnings: tuple[Problem, ...] = ()
    content_dir: Path = field(default=Path("content"))
    command_flows: dict[str, str] = field(default_factory=dict)  # command_key(text) -> flow
    start_flows: dict[str, str] = field(default_factory=dict)  # `starts:` word -> flow
    articles: dict[str, Article] = field(default_factory=dict)
    knowledge: KnowledgeIndex = field(default_factory=lambda: KnowledgeIndex(()))

    def started_by(self, text: str) -> str | None:
        """The flow whose `starts:` word the message begins with («жалоба: ...»)."""
        key = command_key(text)
        for word, flow in self.start_flows.items():
            if key == word or key.startswith((f"{word} ", f"{word}:", f"{word},", f"{word}!")):
                return flow
        return None


def command_key(text: str) -> str:
    """How a typed command is matched: case, edge punctuation, repeated spaces and a Telegram
    "@botname" suffix don't matter ("/link@my_bot", "Связать аккаунты!" both match)."""
    low = " ".join(text.lower().replace("ё", "е").split()).strip(" !.?,")
    if low.startswith("/"):
        head, _, rest = low.partition(" ")
        low = " ".join(p for p in (head.split("@", 1)[0], rest) if p)
    return low
