"""Long texts cut into messages a channel accepts: the one `split_text` of every frontend.

How long a part may be comes from the limits table (dialogs/limits.py): the channel's `text`
limit, measured the way the channel counts (Telegram in UTF-16 code units, so an emoji may count
2; VK in characters). Without a channel, parts fit every channel.

Where to cut: at the last paragraph break ("\\n\\n") of the stretch that fits, else the last line
break, else the last space, taking a break in the second half of the stretch when there is one
(full parts, few messages) and an earlier one rather than cutting a word. Only a word longer than
a whole message is cut inside. The break and any other whitespace at a cut are dropped; nothing
else changes (a text that fits is returned as it is), and no part is empty or blank.
"""

from __future__ import annotations

from collections.abc import Callable

from dialogs.limits import LIMITS, MAX_TEXT, measure

Measure = Callable[[str], int]

BREAKS = ("\n\n", "\n", " ")  # strongest first


def split_text(text: str, channel: str | None = None) -> list[str]:
    """`text` as the messages `channel` ("telegram", "vk"; None: any channel) accepts, in order.

    A blank text gives no parts."""
    limit, size = _rule(channel)
    parts: list[str] = []
    rest = text
    while size(rest) > limit:
        cut = _cut(rest, _fitting(rest, limit, size))
        part = rest[:cut].rstrip()
        if part.strip():  # blank only if the text starts with a message's worth of blanks
            parts.append(part)
        rest = rest[cut:].lstrip()
    if rest.strip():
        parts.append(rest)
    return parts


def _rule(channel: str | None) -> tuple[int, Measure]:
    if channel is None:  # the smallest limit, counted the way the strictest channel counts
        return MAX_TEXT, lambda text: max(measure(text, name) for name in LIMITS)
    return LIMITS[channel].text, lambda text: measure(text, channel)


def _fitting(rest: str, limit: int, size: Measure) -> int:
    """How many characters from the start of `rest` fit in `limit` (at least 1)."""
    low, high = 0, min(len(rest), limit)  # every measure counts a character at least once
    while low < high:
        middle = (low + high + 1) // 2
        if size(rest[:middle]) <= limit:
            low = middle
        else:
            high = middle - 1
    return max(low, 1)


def _cut(rest: str, fit: int) -> int:
    """Where the part ends: a break that starts within the first `fit` characters (a late one
    of any strength before an early one), else `fit` itself (a word longer than a message)."""
    found = [rest.rfind(sep, 0, fit + len(sep)) for sep in BREAKS]
    for earliest in (fit // 2, 1):
        for at in found:
            if at >= earliest:
                return at
    return fit
