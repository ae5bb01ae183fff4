"""Content against the platforms' limits: a text, a button, a keyboard or a choice that Telegram
or VK would refuse is an editor's error, reported where it is written.

The numbers come from the one table in `dialogs.limits`; this module only knows how each limit
is measured (Telegram's callback data in bytes, VK's payload as the JSON `{"p": P}` the VK
frontend sends) and how each problem is worded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from dialogs.content.model import SLOT_PAYLOAD, ButtonSpec
from dialogs.content.state import Compilation
from dialogs.limits import LIMITS, MAX_TEXT, TELEGRAM, VK
from dialogs.yamlsrc import PathKey, Source

PLATFORM_NAMES = {"telegram": "Telegram", "vk": "VK"}


def check_text(st: Compilation, src: Source, path: PathKey, text: str) -> None:
    """A response's text must fit in one message in every channel."""
    if len(text) > MAX_TEXT:
        st.err(src, path, f"text is {len(text)} characters; Telegram and VK allow {MAX_TEXT}")


def check_buttons(
    st: Compilation,
    src: Source,
    path: PathKey,
    rows: tuple[tuple[ButtonSpec, ...], ...],
    channel: str,
) -> None:
    """The buttons `channel` really gets under a response at `path`."""
    for r, row in enumerate(rows):
        for i, b in enumerate(row):
            for message in _button_problems(b, channel):
                st.err(src, (*path, "buttons", r, i), message)
    if channel == "vk" and (len(rows) > VK.rows or any(len(r) > VK.per_row for r in rows)):
        st.err(
            src,
            (*path, "buttons"),
            f"VK shows at most {VK.rows} rows of {VK.per_row} buttons under a message",
        )


def _button_problems(b: ButtonSpec, channel: str) -> Iterator[str]:
    label = LIMITS[channel].button_label
    if label is not None and len(b.title) > label:
        yield (
            f"button title {b.title!r} is {len(b.title)} characters; "
            f"{PLATFORM_NAMES[channel]} allows {label}"
        )
    if b.payload is None:
        return
    if channel == "telegram":
        size = len(b.payload.encode())
        if size > TELEGRAM.payload_bytes:
            yield (
                f"button {b.title!r}: callback data {b.payload!r} is {size} bytes; "
                f"Telegram allows {TELEGRAM.payload_bytes}"
            )
    elif channel == "vk":
        vk_size = len(json.dumps({"p": b.payload}, ensure_ascii=False))
        if vk_size > VK.payload_bytes:
            yield (
                f"button {b.title!r}: VK payload is {vk_size} characters; "
                f"VK allows {VK.payload_bytes}"
            )


def _too_long_for_vk(title: str) -> bool:
    return VK.button_label is not None and len(title) > VK.button_label


def check_choice(
    st: Compilation, src: Source, path: PathKey, slot: str, value: str, title: str
) -> None:
    """A slot's choice becomes a button: its payload and its title must fit."""
    payload = f"{SLOT_PAYLOAD}{slot}={value}"
    if len(payload.encode()) > TELEGRAM.payload_bytes:
        st.err(
            src,
            path,
            f"choice value makes callback data {payload!r} longer than "
            f"{TELEGRAM.payload_bytes} bytes",
        )
    if _too_long_for_vk(title):
        st.err(
            src,
            (*path, "title"),
            f"choice title is longer than VK's {VK.button_label} characters",
        )


def check_flow_title(st: Compilation, src: Source, path: PathKey, title: str) -> None:
    """A flow's title becomes a button ("did you mean ...")."""
    if _too_long_for_vk(title):
        st.err(
            src,
            path,
            f"title is longer than VK's {VK.button_label} characters (it becomes a button)",
        )
