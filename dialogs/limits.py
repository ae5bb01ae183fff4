"""The platforms' limits, in one table: what a message, a button or a keyboard may be per channel.

Content validation refuses what a platform would refuse, the frontends split and shape replies
to fit, the console and the sandbox check operators' texts: all read these numbers. (The
emulators in `emulators/` keep their own copies on purpose: they play the platform, and a test
must fail if our table and the platform disagree.) Sources: Telegram Bot API docs, VK API docs;
see shared/CONTEXT.md, "Platform facts".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChannelLimits:
    text: int  # characters of one message (Telegram counts UTF-16 code units)
    caption: int  # characters of a photo's caption; a longer text goes as its own message
    button_label: int | None  # characters of a button's title (None: no documented limit)
    payload_bytes: int  # a button's payload (Telegram callback_data, VK JSON payload)
    rows: int  # rows of an inline keyboard under a message
    per_row: int  # buttons in one row
    utf16: bool = False  # lengths counted in UTF-16 code units, not characters


TELEGRAM = ChannelLimits(
    text=4096, caption=1024, button_label=None, payload_bytes=64, rows=100, per_row=8, utf16=True
)
VK = ChannelLimits(text=4096, caption=4096, button_label=40, payload_bytes=255, rows=6, per_row=5)
LIMITS: dict[str, ChannelLimits] = {"telegram": TELEGRAM, "vk": VK}
MAX_TEXT = min(limit.text for limit in LIMITS.values())  # what fits in every channel


def measure(text: str, channel: str) -> int:
    """The length of `text` as `channel` counts it."""
    if LIMITS[channel].utf16:
        return len(text.encode("utf-16-le")) // 2
    return len(text)
