"""Saying a content response: from a `Response` (content/dialogs/*.yml) to one `Outbound` reply.

`render` picks a random variant, applies the channel's override, fills the templates from the
scope and fits the buttons to the channel; `say` does it for one subscriber's account (their
first name and channel in the scope). Everything that talks to subscribers renders through
here: the dialog engine, the operators' desk and queue, the rating, notifications, linking.
`ContentSource` is what holds the live content (hot reload swaps `.current` atomically).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any, Protocol

from dialogs import expr
from dialogs.content import Content, Response
from dialogs.limits import VK
from dialogs.messages import Button, Outbound
from storage.models import ChannelAccount

Rows = tuple[tuple[Button, ...], ...]
FRIEND = "друг"  # how a subscriber without a first name is addressed


class ContentSource(Protocol):
    @property
    def current(self) -> Content: ...


class StaticContent:
    """Content that never changes (tests, one-off commands)."""

    def __init__(self, content: Content) -> None:
        self.current = content


def render(
    response: Response, scope: Mapping[str, Any], channel: str, extra: Rows = ()
) -> Outbound:
    """One reply from a response: a random variant, the channel's override, templates filled;
    `extra` button rows go above the response's own."""
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


def account_scope(account: ChannelAccount) -> dict[str, Any]:
    """What every response may use about the subscriber it goes to."""
    return {"first_name": account.first_name or FRIEND, "channel": account.channel}


def say(
    content: Content, name: str, account: ChannelAccount, extra: Rows = (), **scope: Any
) -> Outbound:
    """The content's response `name` for this subscriber (their first name and channel), with
    `scope` for its templates and `extra` button rows above its own."""
    values = {**account_scope(account), **scope}
    return render(content.responses[name], values, account.channel, extra)
