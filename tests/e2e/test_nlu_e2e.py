"""Subscribers ask in their own words; the embedded NLU engine picks the answer, and when it is
not sure the bot says so, offers likely topics, and after two misses offers a human."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from nlu.knowledge import KnowledgeIndex
from storage.models import Message
from tests.e2e.conftest import telegram_settings, vk_settings

USER = 4004


def titles(sent: dict[str, Any]) -> list[str]:
    markup = sent.get("reply_markup") or {}
    return [b["text"] for row in markup.get("inline_keyboard", []) for b in row]


async def test_questions_in_own_words_get_their_answers(
    start_app: Callable[..., Any], telegram: TelegramEmulator
) -> None:
    app = await start_app(telegram=telegram_settings(telegram, "polling"))
    telegram.send_text(USER, "где оплатить?")
    assert (
        "Оплатить связь можно разными способами" in (await telegram.wait_sent(USER, 1))[-1]["text"]
    )
    telegram.send_text(USER, "не работает инет дома третий день")
    answer = (await telegram.wait_sent(USER, 2))[-1]
    assert "адрес подключения" in answer["text"]  # first: is there an outage at the address?
    async with app.db.session() as s:
        nlu = (await s.execute(select(Message.nlu).where(Message.direction == "in"))).scalars()
        intents = [n["intent"] for n in nlu]
    assert intents == ["payment_methods", "internet_down"]  # the operator will see these

    async with aiohttp.ClientSession() as http, http.get(f"{app.url}/healthz") as resp:
        health = await resp.json()
    assert health["ok"] and health["channels"] == ["telegram"]
    assert health["nlu"]["engine"] == "embedded" and health["outbox_pending"] == {"telegram": 0}


async def test_unsure_then_offers_topics_then_a_human(
    start_app: Callable[..., Any], vk: VKEmulator
) -> None:
    await start_app(vk=vk_settings(vk, "longpoll"))
    await vk.wait_listening()
    vk.send_text(USER, "хочу узнать про номер")  # 0.37: in the calibrated "did you mean" band
    unsure = (await vk.wait_sent(USER, 1))[-1]
    assert "уверен, что понял" in unsure["text"]
    labels = [b["action"]["label"] for row in unsure["keyboard"]["buttons"] for b in row]
    assert 2 <= len(labels) <= 4 and labels[-1] == "🤷 Другое"
    vk.send_text(USER, "фыва олдж")
    give_up = (await vk.wait_sent(USER, 2))[-1]
    assert "Зову живого специалиста" in give_up["text"]  # after two misses: a human, at once
    queued = await vk.wait_sent(USER, 4)
    assert "Передаю чат специалисту" in queued[2]["text"]
    assert "в очереди" in queued[3]["text"]


async def test_messages_are_read_by_the_helper_process_and_answered_the_same(
    start_app: Callable[..., Any], telegram: TelegramEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`supportbot run` parses and searches the knowledge base in its helper process
    (nlu/offload.py): the answers are the ones this process gives, and the turn uses the
    helper's search instead of searching again."""
    app = await start_app(telegram=telegram_settings(telegram, "polling"))
    offload = app.nlu.offload
    assert offload is not None
    deadline = time.monotonic() + 30
    while not offload.ready:  # up in the background; messages are read here meanwhile
        assert time.monotonic() < deadline, "the helper did not start"
        await asyncio.sleep(0.05)
    telegram.send_text(USER, "где оплатить?")  # the first also sends the helper the model
    first = (await telegram.wait_sent(USER, 1))[-1]["text"]
    index, engine = app.content.current.knowledge, app.nlu.current
    while offload.submit(index, "__len__") is None or offload.submit(engine, "__len__") is None:
        assert time.monotonic() < deadline, "the helper did not load the model and the index"
        await asyncio.sleep(0.05)
    searched_here: list[str] = []
    search = KnowledgeIndex.search

    def counted(self: KnowledgeIndex, text: str, k: int = 3) -> list[Any]:
        searched_here.append(text)
        return search(self, text, k)

    monkeypatch.setattr(KnowledgeIndex, "search", counted)
    there = offload.stats["there"]
    telegram.send_text(USER, "где оплатить?")
    telegram.send_text(USER, "как подключить антивирус")  # an article's question
    sent = await telegram.wait_sent(USER, 3)
    assert sent[1]["text"] == first
    assert "антивирус" in sent[2]["text"].lower()
    assert searched_here == [] and offload.stats["there"] - there >= 4  # 2 parses, 2 searches
