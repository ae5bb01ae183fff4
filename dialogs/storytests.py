"""Conversation tests: stories in `content/tests/*.yml` that a content editor writes and runs.

A story is what a subscriber does and what the bot must answer:

    tests:
      - name: где оплатить
        channels: [telegram, vk]          # optional; default both
        continues: false                  # optional: true builds on the previous story's state
        steps:
          - user: где оплатить?
          - bot: {intent: payment_methods, contains: "Оплатить", buttons: ["⚡ СБП"]}
          - press: "⚡ СБП"
          - bot: {contains: "СБП"}

Steps: `user: text`, `press: button title` (the latest message with that button), `photo: true`, `sticker: true`, then checks on what
the bot did after the last action: `bot:` (the next reply: `contains`, `not_contains`,
`buttons`, `no_buttons`, `image`, `intent`), `silent: true` (no reply at all),
`escalates: <group>` (the chat went to operators), `ticket: <kind>` (a ticket was created),
`resolve_ticket: <result text>` (the CRM resolves the last ticket; the notification is the
next `bot:`), `sms_code: <phone>` (types the code from the latest SMS the backend sent to that
number: verification), `contact: <phone>` / `contact: {phone: ..., own: false}` (Telegram: shares
one's own contact, or forwards someone else's). A `Driver` plays the subscriber; the app's driver goes through the real bots,
emulators, pipeline, NLU and database (supportbot/storydriver.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from dialogs.yamlsrc import ContentError, PathKey, Problem, Source, load

CHANNELS = ("telegram", "vk")
ACTIONS = ("user", "press", "photo", "sticker", "resolve_ticket", "sms_code", "contact")
CHECKS = ("bot", "silent", "escalates", "ticket")
BOT_KEYS = {"contains", "not_contains", "buttons", "no_buttons", "image", "intent"}


@dataclass(frozen=True, slots=True)
class Reply:
    """One message the subscriber saw from the bot."""

    text: str
    buttons: tuple[str, ...] = ()
    image: bool = False
    sticker: bool = False
    ref: Any = None  # the driver's handle for pressing this message's buttons


@dataclass(slots=True)
class TurnResult:
    replies: list[Reply]
    intent: str | None = None


class Driver(Protocol):
    """Plays one subscriber in one channel."""

    async def say(self, text: str) -> TurnResult: ...

    async def press(self, reply: Reply, title: str) -> TurnResult: ...

    async def media(self, kind: str) -> TurnResult: ...

    async def state(self) -> tuple[str, str | None]: ...  # conversation state, skill group

    async def tickets(self) -> list[tuple[str, str]]: ...  # (number, kind), oldest first

    async def resolve(self, number: str, result: str) -> TurnResult: ...

    async def sms_code(self, phone: str) -> str: ...  # the code in the latest SMS to `phone`

    async def contact(self, phone: str, own: bool) -> TurnResult: ...  # Telegram only


@dataclass(frozen=True, slots=True)
class Step:
    kind: str
    value: Any
    line: int


@dataclass(frozen=True, slots=True)
class Story:
    name: str
    file: str
    line: int
    channels: tuple[str, ...]
    steps: tuple[Step, ...]
    continues: bool = False  # builds on the previous story's state (no fresh demo billing)


@dataclass(slots=True)
class Outcome:
    story: Story
    channel: str
    failure: str | None = None
    transcript: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failure is None


class StoryFailure(AssertionError):
    pass


def load_stories(files: Iterable[Path], root: Path | None = None) -> list[Story]:
    """Read story files; every mistake is reported as `file:line:col: message`."""
    stories: list[Story] = []
    problems: list[Problem] = []
    for path in files:
        display = str(path.relative_to(root)) if root and path.is_relative_to(root) else str(path)
        try:
            src = load(path, display)
        except ContentError as exc:
            problems += exc.problems
            continue
        stories += _stories(src, problems)
    if problems:
        raise ContentError(problems)
    return stories


def _stories(src: Source, problems: list[Problem]) -> list[Story]:
    data = src.data
    if not isinstance(data, dict) or not isinstance(data.get("tests"), list):
        problems.append(src.problem((), "a tests file needs `tests:` with a list of stories"))
        return []
    out = []
    for i, raw in enumerate(data["tests"]):
        path: PathKey = ("tests", i)
        if not isinstance(raw, dict) or "name" not in raw or not isinstance(raw.get("steps"), list):
            problems.append(src.problem(path, "a story needs `name` and a list of `steps`"))
            continue
        channels = tuple(raw.get("channels") or CHANNELS)
        for ch in channels:
            if ch not in CHANNELS:
                problems.append(src.problem((*path, "channels"), f"unknown channel {ch!r}"))
        steps = []
        for j, step in enumerate(raw["steps"]):
            spath = (*path, "steps", j)
            if not isinstance(step, dict) or len(step) != 1:
                problems.append(
                    src.problem(spath, "a step is one `key: value` (user, press, bot, ...)")
                )
                continue
            ((kind, value),) = step.items()
            if kind not in ACTIONS + CHECKS:
                known = ", ".join(ACTIONS + CHECKS)
                problems.append(src.problem(spath, f"unknown step {kind!r} (known: {known})"))
                continue
            if kind == "bot":
                value = value if isinstance(value, dict) else {"contains": value}
                for key in value:
                    if key not in BOT_KEYS:
                        problems.append(
                            src.problem((*spath, kind, key), f"unknown bot check {key!r}")
                        )
            steps.append(Step(kind, value, src.at(spath)[0]))
        continues = raw.get("continues", False)
        if not isinstance(continues, bool):
            problems.append(src.problem((*path, "continues"), "continues must be true or false"))
        story = Story(str(raw["name"]), src.file, src.at(path)[0], channels, tuple(steps))
        out.append(replace(story, continues=continues is True))
    return out


async def run_story(story: Story, channel: str, driver: Driver) -> Outcome:
    outcome = Outcome(story, channel)
    turn = TurnResult([])
    seen = 0  # replies of the current turn already checked by `bot:`
    shown: list[Reply] = []  # every reply with buttons so far, for `press` (old buttons too)
    try:
        for step in story.steps:
            where = f"{story.file}:{step.line}"
            if step.kind in ACTIONS:
                if step.kind == "user":
                    outcome.transcript.append(f"👤 {step.value}")
                    turn = await driver.say(str(step.value))
                elif step.kind == "press":
                    target = _button_owner(shown, str(step.value), where)
                    outcome.transcript.append(f"👤 [{step.value}]")
                    turn = await driver.press(target, str(step.value))
                elif step.kind == "contact":
                    value = step.value if isinstance(step.value, dict) else {"phone": step.value}
                    own = bool(value.get("own", True))
                    outcome.transcript.append(f"👤 📱 {'свой' if own else 'чужой'} контакт")
                    turn = await driver.contact(str(value.get("phone")), own)
                elif step.kind == "sms_code":
                    code = await driver.sms_code(str(step.value))
                    outcome.transcript.append(f"👤 {code} (код из SMS на {step.value})")
                    turn = await driver.say(code)
                elif step.kind == "resolve_ticket":
                    tickets = await driver.tickets()
                    if not tickets:
                        raise StoryFailure(f"{where}: no ticket to resolve")
                    outcome.transcript.append(f"🗂 resolve {tickets[-1][0]}: {step.value}")
                    turn = await driver.resolve(tickets[-1][0], str(step.value))
                else:
                    outcome.transcript.append(f"👤 <{step.kind}>")
                    turn = await driver.media(step.kind)
                seen = 0
                for r in turn.replies:
                    outcome.transcript.append(
                        f"🤖 {r.text[:200]}" + (f" {list(r.buttons)}" if r.buttons else "")
                    )
                    if r.buttons:
                        shown.append(r)
            elif step.kind == "bot":
                if seen >= len(turn.replies):
                    raise StoryFailure(
                        f"{where}: expected another bot reply, got {len(turn.replies)} in this turn"
                    )
                _check_reply(turn, turn.replies[seen], step.value, where)
                seen += 1
            elif step.kind == "silent":
                if turn.replies:
                    raise StoryFailure(
                        f"{where}: expected no reply, the bot said {turn.replies[0].text[:100]!r}"
                    )
            elif step.kind == "escalates":
                state, group = await driver.state()
                if state not in ("queued", "with_operator") or group != str(step.value):
                    raise StoryFailure(
                        f"{where}: expected a handoff to {step.value!r}; conversation is {state} (group {group})"
                    )
            elif step.kind == "ticket":
                kinds = [k for _, k in await driver.tickets()]
                if str(step.value) not in kinds:
                    raise StoryFailure(
                        f"{where}: expected a {step.value!r} ticket; tickets: {kinds}"
                    )
    except StoryFailure as exc:
        outcome.failure = str(exc)
    except TimeoutError as exc:
        outcome.failure = f"{story.file}:{story.line}: timed out: {exc}"
    return outcome


def _button_owner(shown: list[Reply], title: str, where: str) -> Reply:
    """The latest message that has a button with this title (a subscriber can scroll up)."""
    for reply in reversed(shown):
        if title in reply.buttons:
            return reply
    latest = list(shown[-1].buttons) if shown else []
    raise StoryFailure(f"{where}: no button {title!r} to press; latest buttons: {latest}")


def _check_reply(turn: TurnResult, reply: Reply, want: dict[str, Any], where: str) -> None:
    said = f"the bot said {reply.text!r}"
    contains = want.get("contains", [])
    for piece in [contains] if isinstance(contains, str) else contains:
        if str(piece).lower() not in reply.text.lower():
            raise StoryFailure(f"{where}: expected the reply to contain {piece!r}; {said}")
    not_contains = want.get("not_contains", [])
    for piece in [not_contains] if isinstance(not_contains, str) else not_contains:
        if str(piece).lower() in reply.text.lower():
            raise StoryFailure(f"{where}: expected the reply not to contain {piece!r}; {said}")
    for title in want.get("buttons", []):
        if str(title) not in reply.buttons:
            raise StoryFailure(
                f"{where}: expected a button {title!r}; buttons: {list(reply.buttons)}; {said}"
            )
    if want.get("no_buttons") and reply.buttons:
        raise StoryFailure(f"{where}: expected no buttons; buttons: {list(reply.buttons)}")
    if "image" in want and bool(want["image"]) != reply.image:
        raise StoryFailure(f"{where}: expected {'an' if want['image'] else 'no'} image; {said}")
    if "intent" in want and turn.intent != want["intent"]:
        raise StoryFailure(
            f"{where}: expected intent {want['intent']!r}, the NLU said {turn.intent!r}"
        )


def story_files(content_dir: Path) -> list[Path]:
    return sorted((content_dir / "tests").glob("*.y*ml"))
