"""One `split_text` for both channels (bots/text.py): each channel's limit, measured its own way.

The first cases are where the two frontends' former splitters disagreed: Telegram's counted UTF-16
code units but cut inside a word when the last boundary came early; VK's counted characters (an
emoji-heavy text could go to Telegram too long) and kept whitespace at the cuts but the break.
"""

from __future__ import annotations

import random

import pytest

from bots.telegram import TelegramSender
from bots.text import split_text
from dialogs.limits import LIMITS, MAX_TEXT, measure
from dialogs.messages import Outbound

EMOJI_HEAVY = ("Ок 🙂 " * 700).strip()  # 3,499 characters, 4,199 UTF-16 code units


def test_emoji_count_twice_in_telegram_once_in_vk() -> None:
    assert len(EMOJI_HEAVY) <= MAX_TEXT < measure(EMOJI_HEAVY, "telegram")
    assert split_text(EMOJI_HEAVY, "vk") == [EMOJI_HEAVY]
    parts = split_text(EMOJI_HEAVY, "telegram")
    assert len(parts) == 2
    assert all(measure(p, "telegram") <= LIMITS["telegram"].text for p in parts)
    assert " ".join(parts).split() == EMOJI_HEAVY.split()  # cut at a space, no word lost
    assert split_text(EMOJI_HEAVY) == parts  # no channel: what fits every channel
    sent = TelegramSender.plan(Outbound(text=EMOJI_HEAVY))
    assert [p.text for p in sent] == parts


def test_an_early_boundary_beats_cutting_a_word_that_fits_a_message() -> None:
    text = "а" * 1000 + " " + "б" * 4000
    for channel in ("telegram", "vk"):
        assert split_text(text, channel) == ["а" * 1000, "б" * 4000]


def test_whitespace_at_a_cut_is_dropped_the_rest_kept() -> None:
    text = "  " + "А" * 3000 + "\n\n\n  " + "Б" * 2000 + " \n"
    for channel in ("telegram", "vk"):
        assert split_text(text, channel) == ["  " + "А" * 3000, "Б" * 2000 + " \n"]
        assert split_text("  привет  ", channel) == ["  привет  "]
        assert split_text(" \n\n ", channel) == []
        assert split_text(" " * 5000 + "привет", channel) == ["привет"]


@pytest.mark.parametrize("channel", ["telegram", "vk", None])
def test_parts_fit_are_never_empty_and_keep_every_word(channel: str | None) -> None:
    pieces = [
        "а",
        "b",
        "🙂",
        "👨‍👩‍👧",
        " ",
        "\n",
        "\n\n",
        "слово ",
        "длинноеслово" * 60,
        "x" * 3000,
    ]
    rng = random.Random(7)
    for _ in range(60):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 300)))
        parts = split_text(text, channel)
        for name in LIMITS if channel is None else [channel]:
            assert all(measure(p, name) <= LIMITS[name].text for p in parts)
        assert all(p.strip() for p in parts)
        assert all(p == p.lstrip() for p in parts[1:]) and all(p == p.rstrip() for p in parts[:-1])
        assert "".join("".join(p.split()) for p in parts) == "".join(text.split())
