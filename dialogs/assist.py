"""The bot's own answer to a message, for an operator to send (operator assist).

`answer` walks the flow the message's intent starts the way the runner would (its `route:` by
the subscriber's words, jumps, flows started from it) and collects what the bot says up to the
first step that needs more than the words: a question to the subscriber, a backend call, a
verification, a handoff, a ticket, a condition on data. Nothing runs and nothing is stored; the
result is plain text (buttons become lines: an operator's reply has no buttons).
"""

from __future__ import annotations

from dataclasses import dataclass

from dialogs import understanding
from dialogs.content import (
    Content,
    End,
    Flow,
    Jump,
    Response,
    Route,
    Say,
    SetSlots,
    StartFlow,
)
from dialogs.responses import FRIEND, render

MAX_STEPS = 50  # a loop in content (a `goto` back) ends the walk, not the console
MENU = 3  # this many choice buttons make a menu worth listing («⬅️ Назад» alone is not)


@dataclass(frozen=True, slots=True)
class Answer:
    flow: str
    title: str  # the flow's title from the content, e.g. «💳 Как оплатить»
    text: str


def flow_for(content: Content, intent: str) -> Flow | None:
    return next((f for f in content.flows.values() if intent in f.intents), None)


def walk(content: Content, name: str, said: str) -> tuple[list[Response], bool]:
    """The responses flow `name` says to `said` before it needs anything else, and whether it
    ends there (True: it answers from the words alone, nothing is asked, called or checked)."""
    program, pc = content.flows[name].program, 0
    said_so: list[Response] = []
    for _ in range(MAX_STEPS):
        if pc >= len(program):
            return said_so, True
        step = program[pc]
        if isinstance(step, Say):
            said_so.append(step.response)
            pc += 1
        elif isinstance(step, Route):
            pc = next((t for keys, t in step.routes if understanding.matches(said, keys)), pc + 1)
        elif isinstance(step, Jump):
            pc = step.target
        elif isinstance(step, SetSlots):
            pc += 1
        elif isinstance(step, StartFlow):
            program, pc = content.flows[step.flow].program, 0
        elif isinstance(step, End):
            return said_so, True
        else:  # ask, call, verify, handoff, ticket, a condition
            return said_so, False
    return said_so, False


def completes(content: Content, name: str, said: str) -> bool:
    """Does flow `name` answer `said` from the words alone (says something, then ends)?"""
    said_so, ends = walk(content, name, said)
    return ends and bool(said_so)


def answer(
    content: Content, intent: str, said: str, channel: str, first_name: str | None = None
) -> Answer | None:
    """What the bot says to `said` (understood as `intent`) before it would need anything else,
    as text; None when the flow starts by asking, checking or calling (the operator answers)."""
    flow = flow_for(content, intent)
    if flow is None:
        return None
    scope = {"first_name": first_name or FRIEND, "channel": channel}
    responses, _ = walk(content, flow.name, said)
    text = "\n\n".join(t for t in (_plain(r, scope, channel) for r in responses) if t)
    return Answer(flow.name, flow.title, text) if text else None


def _plain(response: Response, scope: dict[str, str], channel: str) -> str:
    """The response's first variant as text an operator can send: link buttons with their
    address; a menu (`MENU` or more choice buttons) as the list of what one can ask about."""
    first = Response(response.name, response.variants[:1])
    out = render(first, scope, channel)
    buttons = [b for row in out.buttons for b in row]
    links = [f"{b.title}: {b.url}" for b in buttons if b.url]
    choices = [f"• {b.title}" for b in buttons if not b.url]
    lines = [(out.text or "").strip(), *links, *(choices if len(choices) >= MENU else [])]
    return "\n".join(line for line in lines if line)
