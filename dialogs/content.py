"""The assistant's content: responses, slots and flows from `content/dialogs/*.yml`, checked and
compiled into small programs the dialog engine runs.

`load_content(content_dir, intents)` reads every file, reports every problem it finds as
`file:line:col: message` (ContentError) and returns an immutable `Content` only when there are
none; warnings (an unused response, a flow nothing leads to) ride along in `Content.warnings`.
The flow language itself is documented for editors in `content/README.md`.
"""

from __future__ import annotations

import ast
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dialogs import expr
from dialogs.slot_types import SLOT_TYPES, Choice
from dialogs.yamlsrc import ContentError, PathKey, Problem, Source, load

DIALOGS_DIR = "dialogs"
CHANNELS = ("telegram", "vk")
# Limits of the platforms (shared/CONTEXT.md): a button the platform refuses is an editor's error.
MAX_TEXT = 4096
TG_CALLBACK_BYTES = 64
VK_LABEL, VK_PAYLOAD, VK_ROWS, VK_PER_ROW = 40, 255, 6, 5

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
    "queue_position": "after handoff: the place in the queue ({queue.position}, {queue.eta_minutes})",
    "queue_update": "told again when the place in the queue changes materially",
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
}
# Backend calls a flow can make (`call:`): the slots each one needs, and what it stores.
ACTIONS: dict[str, tuple[str, ...]] = {
    "identify": ("contract",),
    "balance": (),
    "tariff_current": (),
    "tariffs": (),
    "tariff_change": ("tariff",),
    "promised_payment_offer": (),
    "promised_payment": (),
    "outage": ("address",),
    "incident_mute": (),  # dialogs/incidents.py: no closing notice for this outage
    "notifications_off": (),  # no proactive messages at all (Subscriber.notifications_off_at)
    "notifications_on": (),
    "link_send": (),  # dialogs.identity: a one-time code to the subscriber's other channel
    "link_confirm": ("link_code",),
    "unlink": (),
}
REMEMBERED_TYPES = {"phone", "account", "phone_or_account", "address"}  # never asked twice
ACTION_RESULT = {"identify": "customer"}  # where a result goes when the step has no `as:`
BUILTIN_NAMES = {"channel", "first_name", "customer", "error", "ticket", "queue", "operator"}
BUILTIN_NAMES |= {"code", "minutes", "from_channel"}  # link_code, continued_here
STEP_KEYS = {
    "say",
    "ask",
    "prompt",
    "force",
    "call",
    "as",
    "on_error",
    "if",
    "then",
    "else",
    "goto",
    "flow",
    "use",
    "handoff",
    "reason",
    "ticket",
    "details",
    "set",
    "end",
    "id",
}
STEP_EXTRAS: dict[str, set[str]] = {
    "say": set(),
    "ask": {"prompt", "force"},
    "call": {"as", "on_error"},
    "if": {"then", "else"},
    "goto": set(),
    "flow": set(),
    "use": set(),
    "handoff": {"reason"},
    "ticket": {"details", "as"},
    "set": set(),
    "end": set(),
}
INTENT_PAYLOAD, FLOW_PAYLOAD, STEP_PAYLOAD, SLOT_PAYLOAD = "intent:", "flow:", "step:", "slot:"
NONE_OF_THESE = "nlu:none"


# -- the compiled model ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ButtonSpec:
    title: str
    payload: str | None = None
    url: str | None = None


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


def command_key(text: str) -> str:
    """How a typed command is matched: case, edge punctuation, repeated spaces and a Telegram
    "@botname" suffix don't matter ("/link@my_bot", "Связать аккаунты!" both match)."""
    low = " ".join(text.lower().replace("ё", "е").split()).strip(" !.?,")
    if low.startswith("/"):
        head, _, rest = low.partition(" ")
        low = " ".join(p for p in (head.split("@", 1)[0], rest) if p)
    return low


# -- loading --------------------------------------------------------------------------------


def content_files(content_dir: Path) -> list[Path]:
    return sorted((content_dir / DIALOGS_DIR).glob("*.y*ml"))


def load_content(
    content_dir: Path, intents: Iterable[str], *, groups: Iterable[str] | None = None
) -> Content:
    """Load and check everything; raises ContentError listing every problem."""
    files = content_files(content_dir)
    problems: list[Problem] = []
    sources: list[Source] = []
    for path in files:
        try:
            sources.append(load(path, _display(path, content_dir)))
        except ContentError as exc:
            problems += exc.problems
    if not files:
        problems.append(
            Problem(str(content_dir / DIALOGS_DIR), 1, 1, "no dialog files (*.yml) found")
        )
    compiler = _Compiler(content_dir, set(intents), set(groups) if groups is not None else None)
    compiler.run(sources)
    problems += compiler.problems
    problems = list(dict.fromkeys(problems))  # a mistake inside a YAML anchor shows once
    errors = [p for p in problems if not p.warning]
    if errors:
        raise ContentError(errors + [p for p in problems if p.warning])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return Content(
        responses=compiler.responses,
        slots=compiler.slots,
        flows=compiler.flows,
        intent_flows=compiler.intent_flows,
        bot=compiler.bot,
        fingerprint=digest.hexdigest()[:16],
        warnings=tuple(p for p in problems if p.warning),
        content_dir=content_dir,
        command_flows=compiler.command_flows,
    )


def _display(path: Path, content_dir: Path) -> str:
    try:
        return str(path.relative_to(content_dir.parent))
    except ValueError:
        return str(path)


@dataclass
class _Pending:
    """Things checked after every file is read (they may refer across files)."""

    names: list[tuple[Source, PathKey, str, str]] = field(default_factory=list)
    exact_names: list[tuple[Source, int, int, str, str]] = field(default_factory=list)
    intents: list[tuple[Source, PathKey, str]] = field(default_factory=list)
    flows: list[tuple[Source, PathKey, str]] = field(default_factory=list)
    steps: list[tuple[Source, PathKey, str, str]] = field(default_factory=list)
    response_refs: list[tuple[Source, PathKey, str]] = field(default_factory=list)


class _Compiler:
    def __init__(self, content_dir: Path, intents: set[str], groups: set[str] | None) -> None:
        self.content_dir = content_dir
        self.known_intents = intents
        self.groups = groups
        self.problems: list[Problem] = []
        self.responses: dict[str, Response] = {}
        self.slots: dict[str, SlotDef] = {}
        self.flows: dict[str, Flow] = {}
        self.intent_flows: dict[str, str] = {}
        self.command_flows: dict[str, str] = {}
        self.bot = BotSettings()
        self.result_names: set[str] = set()
        self.pending = _Pending()
        self.used_responses: set[str] = set()
        self.entry_labels: dict[str, set[str]] = {}
        self.flow_refs: set[str] = set()
        self._raw_responses: dict[str, tuple[Source, PathKey, Any]] = {}
        self._flow_sources: dict[str, tuple[Source, PathKey]] = {}
        self._builders: list[_FlowBuilder] = []

    def err(self, src: Source, path: PathKey, message: str) -> None:
        self.problems.append(src.problem(path, message))

    def warn(self, src: Source, path: PathKey, message: str) -> None:
        self.problems.append(src.problem(path, message, warning=True))

    # -- passes ---------------------------------------------------------------------------

    def run(self, sources: list[Source]) -> None:
        flow_defs: list[tuple[Source, str, Any]] = []
        slot_defs: list[tuple[Source, str, Any]] = []
        for src in sources:
            data = src.data
            if data is None:
                continue
            if not isinstance(data, dict):
                self.err(src, (), "a dialogs file must be a mapping with responses/slots/flows")
                continue
            for key in data:
                if key not in ("version", "bot", "responses", "slots", "flows"):
                    self.err(
                        src,
                        (key,),
                        f"unknown section {key!r} (expected responses, slots, flows, bot)",
                    )
            if "bot" in data:
                self._bot(src, data["bot"])
            for name, raw in self._mapping(src, ("responses",), data.get("responses")):
                if name in self._raw_responses:
                    other = self._raw_responses[name][0]
                    self.err(
                        src,
                        ("responses", name),
                        f"response {name!r} already defined in {other.file}",
                    )
                    continue
                self._raw_responses[name] = (src, ("responses", name), raw)
            slot_defs += [(src, n, r) for n, r in self._mapping(src, ("slots",), data.get("slots"))]
            flow_defs += [(src, n, r) for n, r in self._mapping(src, ("flows",), data.get("flows"))]
        for name, (src, path, raw) in self._raw_responses.items():
            self.responses[name] = self._response(src, path, raw, name, flow=None)
        for src, name, raw in slot_defs:
            if name in self.slots:
                self.err(src, ("slots", name), f"slot {name!r} is defined twice")
                continue
            slot = self._slot(src, name, raw)
            if slot is not None:
                self.slots[name] = slot
        for src, name, raw in flow_defs:
            if name in self.flows or name in self._flow_sources:
                self.err(src, ("flows", name), f"flow {name!r} is defined twice")
                continue
            self._flow_sources[name] = (src, ("flows", name))
            flow = self._flow(src, name, raw)
            if flow is not None:
                self.flows[name] = flow
        for builder in self._builders:
            builder.reachability()
        self._check_pending()
        self._check_coverage(sources)

    def _mapping(self, src: Source, path: PathKey, value: Any) -> list[tuple[str, Any]]:
        if value is None:
            return []
        if not isinstance(value, dict):
            self.err(src, path, f"{path[-1]} must be a mapping of names")
            return []
        out = []
        for key, item in value.items():
            if not isinstance(key, str) or not key.replace("_", "").isalnum():
                self.err(src, (*path, key), f"name {key!r} must be letters, digits and _")
                continue
            out.append((key, item))
        return out

    def _bot(self, src: Source, raw: Any) -> None:
        if not isinstance(raw, dict):
            self.err(src, ("bot",), "bot must be a mapping")
            return
        defaults = self.bot
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if not hasattr(defaults, key):
                self.err(src, ("bot", key), f"unknown bot setting {key!r}")
                continue
            expected = type(getattr(defaults, key))
            if expected is tuple:
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    self.err(src, ("bot", key), f"bot.{key} must be a list of texts")
                    continue
                value = tuple(v.lower() for v in value)
            elif not isinstance(value, expected) or isinstance(value, bool):
                self.err(src, ("bot", key), f"bot.{key} must be a {expected.__name__}")
                continue
            values[key] = value
        self.bot = BotSettings(
            **{**{k: getattr(defaults, k) for k in defaults.__slots__}, **values}
        )

    # -- responses ------------------------------------------------------------------------

    def _response_ref(self, src: Source, path: PathKey, raw: Any, flow: str | None) -> Response:
        """A `say:`/`prompt:` value: a response name or an inline response."""
        if isinstance(raw, str) and raw.replace("_", "").isalnum() and " " not in raw:
            self.pending.response_refs.append((src, path, raw))
            self.used_responses.add(raw)
            return Response(raw, ())  # resolved after all files are read
        return self._response(src, path, raw, f"{flow or 'inline'}@{src.at(path)[0]}", flow)

    def _response(
        self, src: Source, path: PathKey, raw: Any, name: str, flow: str | None
    ) -> Response:
        items = raw if isinstance(raw, list) else [raw]
        if not items:
            self.err(src, path, "a response needs at least one variant")
        variants = tuple(
            self._variant(src, (*path, i) if isinstance(raw, list) else path, item, flow, top=True)
            for i, item in enumerate(items)
        )
        return Response(name, variants)

    def _variant(
        self, src: Source, path: PathKey, raw: Any, flow: str | None, top: bool
    ) -> Variant:
        if isinstance(raw, str):
            self._check_text(src, path, raw)
            return Variant(text=raw)
        if not isinstance(raw, dict):
            self.err(
                src,
                path,
                "a response is a text, a list of variants, or a mapping with text/buttons/image/sticker",
            )
            return Variant()
        allowed = {"text", "buttons", "image", "sticker", "lines", *(CHANNELS if top else ())}
        for key in raw:
            if key not in allowed:
                self.err(
                    src,
                    (*path, key),
                    f"unknown key {key!r} in a response (allowed: {', '.join(sorted(allowed))})",
                )
        text = raw.get("text")
        if text is not None and not isinstance(text, str):
            self.err(src, (*path, "text"), "text must be a string")
            text = None
        if isinstance(text, str):
            self._check_text(src, (*path, "text"), text)
        buttons = self._buttons(src, (*path, "buttons"), raw.get("buttons"), flow)
        image = raw.get("image")
        if image is not None:
            image = self._image(src, (*path, "image"), image)
        sticker = raw.get("sticker")
        if sticker is not None:
            sticker = str(sticker)
        lines = None
        if "lines" in raw:
            lines = self._lines(src, (*path, "lines"), raw["lines"])
        overrides = []
        for channel in CHANNELS:
            if channel in raw:
                own = raw[channel] if isinstance(raw[channel], dict) else {}
                sub = self._variant(src, (*path, channel), raw[channel], flow, top=False)
                overrides.append(
                    (
                        channel,
                        Variant(
                            sub.text if sub.text is not None else text,
                            sub.buttons if "buttons" in own else buttons,
                            sub.image if sub.image is not None else image,
                            sub.sticker if sub.sticker is not None else sticker,
                            sub.lines if sub.lines is not None else lines,
                        ),
                    )
                )
        variant = Variant(text, buttons, image, sticker, lines, tuple(overrides))
        if top:
            for channel in CHANNELS:
                seen = variant.for_channel(channel)
                if seen.text is None and seen.image is None and seen.sticker is None:
                    message = "a response needs text, image or sticker"
                    if overrides:
                        message += f" (in {channel} nothing would be sent)"
                    self.err(src, path, message)
                    break
            # Each channel's limits apply to the buttons that channel really gets.
            for channel in CHANNELS:
                own = raw.get(channel) if isinstance(raw.get(channel), dict) else None
                if own is not None and "buttons" in own:
                    rows, at = variant.for_channel(channel).buttons, (*path, channel)
                else:
                    rows, at = buttons, path
                self._check_limits(src, at, rows, channel)
        return variant

    def _check_text(self, src: Source, path: PathKey, text: str) -> None:
        if not text.strip():
            self.err(src, path, "text is empty")
        if len(text) > MAX_TEXT:
            self.err(src, path, f"text is {len(text)} characters; Telegram and VK allow {MAX_TEXT}")
        for name, flt, offset in expr.template_spans(text):
            line, col = src.position_in_text(path, text, offset)
            what = f"template {{{name}}}"
            self.pending.exact_names.append((src, line, col, name, what))
            if flt and flt not in expr.FILTERS:
                self.problems.append(
                    Problem(
                        src.file,
                        line,
                        col,
                        f"unknown filter |{flt} (known: {', '.join(expr.FILTERS)})",
                    )
                )

    def _check_filters(self, src: Source, path: PathKey, text: str) -> None:
        """Templates over list items (`lines`, `choices_from`): names are item fields, only the
        filters can be checked."""
        for _name, flt, offset in expr.template_spans(text):
            if flt and flt not in expr.FILTERS:
                line, col = src.position_in_text(path, text, offset)
                self.problems.append(
                    Problem(
                        src.file,
                        line,
                        col,
                        f"unknown filter |{flt} (known: {', '.join(expr.FILTERS)})",
                    )
                )

    def _image(self, src: Source, path: PathKey, value: Any) -> str | None:
        if not isinstance(value, str):
            self.err(src, path, "image must be a file path under content/ or an http(s) URL")
            return None
        if value.startswith(("http://", "https://")):
            return value
        file = (self.content_dir / value).resolve()
        if not file.is_file():
            self.err(src, path, f"image file {value!r} not found under {self.content_dir}")
        return str(file)

    def _lines(self, src: Source, path: PathKey, raw: Any) -> Lines | None:
        if not isinstance(raw, dict) or set(raw) != {"for", "text"}:
            self.err(src, path, "lines needs exactly `for: <list result>` and `text: <template>`")
            return None
        self.pending.names.append((src, (*path, "for"), str(raw["for"]), "lines for"))
        self._check_filters(src, (*path, "text"), str(raw["text"]))
        return Lines(str(raw["for"]), str(raw["text"]))

    def _buttons(
        self, src: Source, path: PathKey, raw: Any, flow: str | None
    ) -> tuple[tuple[ButtonSpec, ...], ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.err(src, path, "buttons must be a list of rows (or of buttons, one per row)")
            return ()
        rows = []
        for r, row in enumerate(raw):
            items = row if isinstance(row, list) else [row]
            rpath = (*path, r)
            specs = []
            for i, b in enumerate(items):
                bpath = (*rpath, i) if isinstance(row, list) else rpath
                spec = self._button(src, bpath, b, flow)
                if spec is not None:
                    specs.append(spec)
            rows.append(tuple(specs))
        return tuple(rows)

    def _button(self, src: Source, path: PathKey, raw: Any, flow: str | None) -> ButtonSpec | None:
        if not isinstance(raw, dict) or not isinstance(raw.get("title"), str):
            self.err(src, path, "a button needs a `title` and one of intent / flow / goto / url")
            return None
        targets = [k for k in ("intent", "flow", "goto", "url") if k in raw]
        extra = set(raw) - {"title", "intent", "flow", "goto", "url"}
        if extra:
            self.err(src, (*path, sorted(extra)[0]), f"unknown button key {sorted(extra)[0]!r}")
        if len(targets) != 1:
            self.err(
                src,
                path,
                f"button {raw['title']!r} needs exactly one of intent / flow / goto / url",
            )
            return None
        kind, value = targets[0], str(raw[targets[0]])
        title = raw["title"]
        tpath = (*path, kind)
        if kind == "url":
            if not value.startswith(("https://", "http://", "tg://")):
                self.err(src, tpath, f"url {value!r} must start with https://, http:// or tg://")
            return ButtonSpec(title, url=value)
        if kind == "intent":
            self.pending.intents.append((src, tpath, value))
            payload = INTENT_PAYLOAD + value
        elif kind == "flow":
            self.pending.flows.append((src, tpath, value))
            self.flow_refs.add(value)
            payload = FLOW_PAYLOAD + value
        else:
            target_flow, _, label = value.rpartition(".")
            target_flow = target_flow or (flow or "")
            if not target_flow:
                self.err(
                    src,
                    tpath,
                    f"goto {value!r} in a shared response must name the flow: <flow>.<step id>",
                )
                return None
            self.pending.steps.append((src, tpath, target_flow, label))
            self.entry_labels.setdefault(target_flow, set()).add(label)
            payload = f"{STEP_PAYLOAD}{target_flow}:{label}"
        return ButtonSpec(title, payload=payload)

    def _check_limits(
        self, src: Source, path: PathKey, rows: tuple[tuple[ButtonSpec, ...], ...], channel: str
    ) -> None:
        for r, row in enumerate(rows):
            for i, b in enumerate(row):
                where = (*path, "buttons", r, i)
                if channel == "vk" and len(b.title) > VK_LABEL:
                    self.err(
                        src,
                        where,
                        f"button title {b.title!r} is {len(b.title)} characters; VK allows {VK_LABEL}",
                    )
                if b.payload is None:
                    continue
                size = len(b.payload.encode())
                if channel == "telegram" and size > TG_CALLBACK_BYTES:
                    self.err(
                        src,
                        where,
                        f"button {b.title!r}: callback data {b.payload!r} is {size} bytes; Telegram allows {TG_CALLBACK_BYTES}",
                    )
                vk_size = len(json.dumps({"p": b.payload}, ensure_ascii=False))
                if channel == "vk" and vk_size > VK_PAYLOAD:
                    self.err(
                        src,
                        where,
                        f"button {b.title!r}: VK payload is {vk_size} characters; VK allows {VK_PAYLOAD}",
                    )
        if channel == "vk" and (len(rows) > VK_ROWS or any(len(r) > VK_PER_ROW for r in rows)):
            self.err(
                src,
                (*path, "buttons"),
                f"VK shows at most {VK_ROWS} rows of {VK_PER_ROW} buttons under a message",
            )

    # -- slots ----------------------------------------------------------------------------

    def _slot(self, src: Source, name: str, raw: Any) -> SlotDef | None:
        path: PathKey = ("slots", name)
        if not isinstance(raw, dict):
            self.err(src, path, "a slot needs `type` and `prompt`")
            return None
        for key in raw:
            if key not in ("type", "prompt", "retry", "choices", "choices_from", "from"):
                self.err(src, (*path, key), f"unknown slot key {key!r}")
        kind = raw.get("type", "text")
        if kind not in SLOT_TYPES:
            self.err(
                src, (*path, "type"), f"unknown slot type {kind!r} (known: {', '.join(SLOT_TYPES)})"
            )
        if "prompt" not in raw:
            self.err(src, path, f"slot {name!r} needs a prompt (what the bot asks)")
            return None
        prompt = self._response_ref(src, (*path, "prompt"), raw["prompt"], None)
        retry = (
            self._response_ref(src, (*path, "retry"), raw["retry"], None)
            if "retry" in raw
            else None
        )
        choices: list[Choice] = []
        for i, c in enumerate(raw.get("choices") or []):
            if not isinstance(c, dict) or "value" not in c or "title" not in c:
                self.err(src, (*path, "choices", i), "a choice needs `value` and `title`")
                continue
            syn = c.get("synonyms") or []
            choices.append(Choice(str(c["value"]), str(c["title"]), tuple(str(s) for s in syn)))
            payload = f"{SLOT_PAYLOAD}{name}={c['value']}"
            if len(payload.encode()) > TG_CALLBACK_BYTES:
                self.err(
                    src,
                    (*path, "choices", i),
                    f"choice value makes callback data {payload!r} longer than {TG_CALLBACK_BYTES} bytes",
                )
            if len(str(c["title"])) > VK_LABEL:
                self.err(
                    src,
                    (*path, "choices", i, "title"),
                    f"choice title is longer than VK's {VK_LABEL} characters",
                )
        choices_from = None
        if "choices_from" in raw:
            cf = raw["choices_from"]
            if not isinstance(cf, dict) or set(cf) != {"for", "value", "title"}:
                self.err(
                    src, (*path, "choices_from"), "choices_from needs `for`, `value` and `title`"
                )
            else:
                choices_from = ChoicesFrom(str(cf["for"]), str(cf["value"]), str(cf["title"]))
                self._check_filters(src, (*path, "choices_from", "title"), choices_from.title)
                self.pending.names.append(
                    (src, (*path, "choices_from", "for"), choices_from.of, "choices_from")
                )
        if kind == "choice" and not choices and choices_from is None:
            self.err(src, path, f"choice slot {name!r} needs `choices` or `choices_from`")
        prefill = None
        if "from" in raw:
            prefill = self._condition(src, (*path, "from"), raw["from"])
            if kind not in REMEMBERED_TYPES:
                self.err(
                    src,
                    (*path, "from"),
                    f"`from:` fills only remembered slots ({', '.join(sorted(REMEMBERED_TYPES))}); "
                    f"a {kind} slot is asked every time",
                )
        return SlotDef(name, kind, prompt, retry, tuple(choices), choices_from, prefill)

    def _condition(self, src: Source, path: PathKey, raw: Any) -> ast.Expression | None:
        try:
            tree = expr.compile_condition(str(raw))
        except expr.ExprError as exc:
            self.err(src, path, str(exc))
            return None
        for name in expr.names_in(tree):
            self.pending.names.append((src, path, name, "condition"))
        return tree

    # -- flows ----------------------------------------------------------------------------

    def _flow(self, src: Source, name: str, raw: Any) -> Flow | None:
        path: PathKey = ("flows", name)
        if not isinstance(raw, dict):
            self.err(src, path, "a flow needs `steps` (and usually `intent` and `title`)")
            return None
        for key in raw:
            if key not in ("intent", "intents", "title", "commands", "steps"):
                self.err(
                    src,
                    (*path, key),
                    f"unknown flow key {key!r} (allowed: intent, intents, title, commands, steps)",
                )
        self._commands(src, name, raw.get("commands"))
        intents = raw.get("intents") or ([raw["intent"]] if "intent" in raw else [])
        key = "intents" if "intents" in raw else "intent"
        for i, intent in enumerate(intents):
            ipath = (*path, key, i) if key == "intents" else (*path, key)
            self.pending.intents.append((src, ipath, str(intent)))
            if intent in self.intent_flows:
                self.err(
                    src,
                    ipath,
                    f"intent {intent!r} already starts flow {self.intent_flows[intent]!r}",
                )
            else:
                self.intent_flows[str(intent)] = name
        title = raw.get("title", name)
        if len(str(title)) > VK_LABEL:
            self.err(
                src,
                (*path, "title"),
                f"title is longer than VK's {VK_LABEL} characters (it becomes a button)",
            )
        steps = raw.get("steps")
        if not isinstance(steps, list) or not steps:
            self.err(src, path, f"flow {name!r} needs a non-empty `steps` list")
            return None
        builder = _FlowBuilder(self, src, name)
        builder.block(steps, (*path, "steps"))
        builder.finish()
        self._builders.append(builder)
        return Flow(
            name, str(title), tuple(str(i) for i in intents), tuple(builder.program), builder.labels
        )

    def _commands(self, src: Source, name: str, raw: Any) -> None:
        """`commands:` exact texts ("/link", "связать аккаунты") that start the flow, even mid-form."""
        if raw is None:
            return
        path: PathKey = ("flows", name, "commands")
        if not isinstance(raw, list) or not raw:
            self.err(src, path, "`commands` must be a non-empty list of texts")
            return
        for i, text in enumerate(raw):
            key = command_key(str(text)) if isinstance(text, str | int) else ""
            if not key:
                self.err(src, (*path, i), "a command must be a non-empty text")
            elif key in self.command_flows and self.command_flows[key] != name:
                self.err(
                    src,
                    (*path, i),
                    f"command {text!r} already starts flow {self.command_flows[key]!r}",
                )
            else:
                self.command_flows[key] = name

    def _check_pending(self) -> None:
        p = self.pending
        for src, path, ref in p.response_refs:
            if ref not in self.responses:
                self.err(src, path, f"unknown response {ref!r}")
        for src, path, intent in p.intents:
            if intent not in self.known_intents:
                self.err(src, path, f"unknown intent {intent!r} (not in content/nlu)")
            elif intent not in self.intent_flows:
                self.err(src, path, f"intent {intent!r} has no flow to answer it")
        for src, path, flow in p.flows:
            if flow not in self.flows and flow not in self._flow_sources:
                self.err(src, path, f"unknown flow {flow!r}")
        for src, path, flow, label in p.steps:
            target = self.flows.get(flow)
            if target is None:
                if flow not in self._flow_sources:
                    self.err(src, path, f"unknown flow {flow!r} in goto")
            elif label not in target.labels:
                self.err(src, path, f"unknown step {label!r} in flow {flow!r}")
        known = set(self.slots) | self.result_names | BUILTIN_NAMES
        for src, path, name, what in p.names:
            if name not in known:
                self.err(src, path, f"unknown slot {name!r} in {what}")
        for src, line, col, name, what in p.exact_names:
            if name not in known:
                self.problems.append(
                    Problem(src.file, line, col, f"unknown slot {name!r} in {what}")
                )
        for action, needs in ACTIONS.items():
            used = any(
                isinstance(i, Call) and i.action == action
                for f in self.flows.values()
                for i in f.program
            )
            for slot in needs:
                if used and slot not in self.slots:
                    src, path = next(iter(self._flow_sources.values()))
                    self.err(src, ("slots",), f"action {action!r} needs a slot named {slot!r}")
        # Resolve response references now that every response is known.
        self._resolve_refs()

    def _resolve_refs(self) -> None:
        def fix(r: Response | None) -> Response | None:
            if r is None or r.variants:
                return r
            return self.responses.get(r.name, r)

        for name, slot in list(self.slots.items()):
            prompt = fix(slot.prompt)
            assert prompt is not None
            self.slots[name] = SlotDef(
                slot.name,
                slot.type,
                prompt,
                fix(slot.retry),
                slot.choices,
                slot.choices_from,
                slot.prefill,
            )
        for name, flow in list(self.flows.items()):
            program: list[Instr] = []
            for ins in flow.program:
                if isinstance(ins, Say):
                    resolved = fix(ins.response)
                    assert resolved is not None
                    ins = Say(resolved)
                elif isinstance(ins, Ask):
                    ins = Ask(ins.slot, fix(ins.prompt), ins.force)
                program.append(ins)
            self.flows[name] = Flow(
                flow.name, flow.title, flow.intents, tuple(program), flow.labels
            )

    def _check_coverage(self, sources: list[Source]) -> None:
        # Missing things are reported at the file holding the bot's own responses (bot.yml).
        anchor = next(
            (src for src, _p, _r in self._raw_responses.values() if src.data and "bot" in src.data),
            sources[0] if sources else Source("content/dialogs", None),
        )
        for name, why in RESERVED.items():
            if name not in self.responses:
                self.err(anchor, (), f"missing response {name!r} ({why})")
            self.used_responses.add(name)
        for intent in sorted(self.known_intents - set(self.intent_flows)):
            self.err(
                anchor,
                (),
                f"missing response: intent {intent!r} has no flow (add `intent: {intent}` to a flow)",
            )
        for name, (src, path, _raw) in self._raw_responses.items():
            if name not in self.used_responses:
                self.warn(src, path, f"response {name!r} is never used")
        for name, (src, path) in self._flow_sources.items():
            flow = self.flows.get(name)
            if (
                flow is not None
                and not flow.intents
                and name not in self.flow_refs
                and name not in self.entry_labels
                and name not in self.command_flows.values()
            ):
                self.warn(src, path, f"flow {name!r} has no intent and nothing leads to it")


class _FlowBuilder:
    """Compiles a flow's nested steps into a flat program with jumps, then checks reachability."""

    def __init__(self, compiler: _Compiler, src: Source, flow: str) -> None:
        self.c = compiler
        self.src = src
        self.flow = flow
        self.program: list[Instr] = []
        self.paths: list[PathKey] = []
        self.labels: dict[str, int] = {}
        self.label_paths: dict[str, PathKey] = {}
        self.fixups: list[tuple[int, str, PathKey]] = []  # (pc, label, path) for goto / on_error
        self.step_starts: list[tuple[int, PathKey]] = []

    def emit(self, ins: Instr, path: PathKey) -> int:
        self.program.append(ins)
        self.paths.append(path)
        return len(self.program) - 1

    def block(self, steps: Any, path: PathKey) -> None:
        if not isinstance(steps, list):
            self.c.err(self.src, path, "steps must be a list")
            return
        for i, step in enumerate(steps):
            self.step((*path, i), step)

    def step(self, path: PathKey, raw: Any) -> None:
        c, src = self.c, self.src
        self.step_starts.append((len(self.program), path))
        if raw == "end":
            self.emit(End(), path)
            return
        if not isinstance(raw, dict):
            c.err(
                src,
                path,
                "a step is a mapping like `say: ...`, `ask: slot`, `call: action`, or `end`",
            )
            return
        for key in raw:
            if key not in STEP_KEYS:
                c.err(src, (*path, key), f"unknown step key {key!r}")
        if "id" in raw:
            label = str(raw["id"])
            if label in self.labels:
                c.err(src, (*path, "id"), f"step id {label!r} is used twice in flow {self.flow!r}")
            self.labels[label] = len(self.program)
            self.label_paths[label] = (*path, "id")
        kinds = [
            k
            for k in (
                "say",
                "ask",
                "call",
                "if",
                "goto",
                "flow",
                "use",
                "handoff",
                "ticket",
                "set",
                "end",
            )
            if k in raw
        ]
        if len(kinds) != 1:
            c.err(
                src, path, f"a step does exactly one thing; found {', '.join(kinds) or 'nothing'}"
            )
            return
        kind = kinds[0]
        kpath = (*path, kind)
        for key in raw:
            if key in STEP_KEYS and key != kind and key != "id" and key not in STEP_EXTRAS[kind]:
                extras = ", ".join(sorted(STEP_EXTRAS[kind])) or "nothing else"
                c.err(
                    src,
                    (*path, key),
                    f"`{key}` does not belong on a `{kind}` step (it takes {extras})",
                )
        value = raw[kind]
        if kind == "say":
            self.emit(Say(c._response_ref(src, kpath, value, self.flow)), kpath)
        elif kind == "ask":
            slot = str(value)
            if slot not in c.slots:
                c.err(src, kpath, f"unknown slot {slot!r} (declare it under `slots:`)")
            prompt = (
                c._response_ref(src, (*path, "prompt"), raw["prompt"], self.flow)
                if "prompt" in raw
                else None
            )
            self.emit(Ask(slot, prompt, bool(raw.get("force", False))), kpath)
        elif kind == "call":
            action = str(value)
            if action not in ACTIONS:
                c.err(src, kpath, f"unknown action {action!r} (known: {', '.join(ACTIONS)})")
            if action in ACTION_RESULT and "as" in raw:
                c.err(
                    src,
                    (*path, "as"),
                    f"`{action}` always stores its result in `{ACTION_RESULT[action]}`",
                )
            into = str(raw.get("as", ACTION_RESULT.get(action, action)))
            c.result_names.add(into)
            pc = self.emit(Call(action, into, None), kpath)
            if "on_error" in raw:
                self.fixups.append((pc, str(raw["on_error"]), (*path, "on_error")))
        elif kind == "if":
            cond = c._condition(src, kpath, value)
            if "then" not in raw:
                c.err(src, path, "an `if` step needs `then:` steps")
            jump = self.emit(JumpUnless(cond or expr.compile_condition("False"), -1), kpath)
            self.block(raw.get("then", []), (*path, "then"))
            if "else" in raw:
                skip = self.emit(Jump(-1), (*path, "else"))
                self.program[jump] = JumpUnless(
                    cond or expr.compile_condition("False"), len(self.program)
                )
                self.block(raw["else"], (*path, "else"))
                self.program[skip] = Jump(len(self.program))
            else:
                self.program[jump] = JumpUnless(
                    cond or expr.compile_condition("False"), len(self.program)
                )
        elif kind == "goto":
            pc = self.emit(Jump(-1), kpath)
            self.fixups.append((pc, str(value), kpath))
        elif kind == "flow":
            c.pending.flows.append((src, kpath, str(value)))
            c.flow_refs.add(str(value))
            self.emit(StartFlow(str(value)), kpath)
        elif kind == "use":
            c.pending.flows.append((src, kpath, str(value)))
            c.flow_refs.add(str(value))
            self.emit(UseFlow(str(value)), kpath)
        elif kind == "handoff":
            group = str(value)
            if c.groups is not None and group not in c.groups:
                c.err(
                    src,
                    kpath,
                    f"unknown skill group {group!r} (settings: {', '.join(sorted(c.groups))})",
                )
            self.emit(Handoff(group, str(raw["reason"]) if "reason" in raw else None), kpath)
        elif kind == "ticket":
            details = raw.get("details") or []
            if not isinstance(details, list):
                c.err(src, (*path, "details"), "details must be a list of slot names")
                details = []
            for i, d in enumerate(details):
                c.pending.names.append((src, (*path, "details", i), str(d), "ticket details"))
            into = str(raw.get("as", "ticket"))
            c.result_names.add(into)
            self.emit(MakeTicket(str(value), tuple(str(d) for d in details), into), kpath)
        elif kind == "set":
            if not isinstance(value, dict):
                c.err(src, kpath, "set needs a mapping of slot: value")
                return
            for k in value:
                c.pending.names.append((src, (*kpath, k), str(k), "set"))
            self.emit(SetSlots(tuple((str(k), v) for k, v in value.items())), kpath)
        else:
            self.emit(End(), kpath)

    def finish(self) -> None:
        for pc, label, path in self.fixups:
            target = self.labels.get(label)
            if target is None:
                self.c.err(self.src, path, f"unknown step {label!r} in flow {self.flow!r}")
                target = len(self.program)
            ins = self.program[pc]
            self.program[pc] = (
                Call(ins.action, ins.into, target) if isinstance(ins, Call) else Jump(target)
            )

    def reachability(self) -> None:
        """Report steps nothing leads to (run after every flow is built: buttons elsewhere
        may enter this flow at a step id)."""
        entries = {0} | {
            self.labels[x] for x in self.c.entry_labels.get(self.flow, ()) if x in self.labels
        }
        seen: set[int] = set()
        todo = list(entries)
        size = len(self.program)
        while todo:
            pc = todo.pop()
            if pc in seen or pc >= size:
                continue
            seen.add(pc)
            ins = self.program[pc]
            if isinstance(ins, Jump):
                todo.append(ins.target)
            elif isinstance(ins, JumpUnless):
                todo += [pc + 1, ins.target]
            elif isinstance(ins, Call):
                todo.append(pc + 1)
                if ins.on_error is not None:
                    todo.append(ins.on_error)
            elif not isinstance(ins, End | StartFlow | Handoff):
                todo.append(pc + 1)
        reported: set[int] = set()
        for start, path in self.step_starts:
            if start < size and start not in seen and start not in reported:
                reported.add(start)
                self.c.err(
                    self.src, path, f"unreachable step in flow {self.flow!r} (nothing leads here)"
                )
