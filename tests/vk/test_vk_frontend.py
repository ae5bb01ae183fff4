"""The vkbottle frontend: VK events (Long Poll and Callback API) become the right `Inbound`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from vkbottle import Bot
from vkbottle.bot import Message, MessageEvent
from vkbottle.polling import BotPolling
from vkbottle_types.events import GroupEventType

from bots.retry import RetryingHandler
from bots.vk import build_bot, callback_handler, make_api
from dialogs.messages import Attachment, Channel
from emulators.vk import VKEmulator
from tests.vk.conftest import USER, RecordingHandler, WebApp, eventually, start_polling, stop


async def test_text_message_becomes_inbound(
    emu: VKEmulator, polling: Bot, handler: RecordingHandler
) -> None:
    event = emu.send_text(USER, "Не работает интернет")
    [inbound] = await handler.wait(1)
    assert inbound.channel is Channel.VK
    assert (inbound.chat_id, inbound.user_id) == (str(USER), str(USER))
    assert inbound.update_id == event["event_id"]
    assert inbound.text == "Не работает интернет" and inbound.payload is None
    assert inbound.platform_message_id == str(event["object"]["message"]["conversation_message_id"])


async def test_text_button_and_start_button_payloads(
    emu: VKEmulator, polling: Bot, handler: RecordingHandler
) -> None:
    emu.send_text(USER, "Баланс", payload=json.dumps({"p": "intent:balance"}))
    emu.send_text(USER, "Начать", payload=json.dumps({"command": "start"}))
    first, second = await handler.wait(2)
    assert (first.text, first.payload) == ("Баланс", "intent:balance")
    assert second.payload == "/start"


async def test_callback_press_is_handled_and_answered(
    emu: VKEmulator, polling: Bot, handler: RecordingHandler
) -> None:
    event = emu.press_callback(USER, json.dumps({"p": "tariff:smart"}), conversation_message_id=7)
    [inbound] = await handler.wait(1)
    assert inbound.payload == "tariff:smart" and inbound.text is None
    assert inbound.update_id == event["event_id"] and inbound.platform_message_id == "7"
    await eventually(lambda: bool(emu.event_answers))
    [answer] = emu.event_answers
    assert (answer["event_id"], answer["user_id"], answer["peer_id"]) == (
        event["object"]["event_id"],
        USER,
        USER,
    )
    assert answer["event_data"] is None


async def test_attachments(emu: VKEmulator, polling: Bot, handler: RecordingHandler) -> None:
    photo = emu.send_photo(USER, "вот скрин")
    emu.send_sticker(USER, 9014)
    emu.send_other(USER, "audio_message")
    emu.send_other(USER, "doc")
    emu.send_other(USER, "video")
    photo_in, sticker_in, voice_in, doc_in, video_in = await handler.wait(5)
    body = photo["object"]["message"]["attachments"][0]["photo"]
    assert photo_in.text == "вот скрин"
    assert photo_in.attachments == (
        Attachment(
            "photo",
            ref=f"photo{USER}_{body['id']}_{body['access_key']}",
            url=body["sizes"][-1]["url"],
        ),
    )
    assert sticker_in.text is None
    assert [(a.kind, a.ref) for a in sticker_in.attachments] == [("sticker", "9014")]
    assert voice_in.attachments[0].kind == "voice" and voice_in.attachments[0].url.endswith(".ogg")
    assert doc_in.attachments[0].kind == "document" and doc_in.attachments[0].ref.startswith(
        f"doc{USER}_"
    )
    assert video_in.attachments[0].kind == "video"


@pytest.mark.parametrize("code", [1, 2, 3])
async def test_long_poll_recovers_from_failures(
    emu: VKEmulator, polling: Bot, handler: RecordingHandler, code: int
) -> None:
    emu.force_longpoll_failure(code)
    await asyncio.sleep(0.2)
    emu.send_text(USER, "после сбоя")
    [inbound] = await handler.wait(1)
    assert inbound.text == "после сбоя"
    servers = [c for c in emu.calls if c["method"] == "groups.getLongPollServer"]
    assert len(servers) == (1 if code == 1 else 2)  # 2 and 3 need a new key


async def test_expired_key_keeps_pending_events(
    emu: VKEmulator, polling: Bot, handler: RecordingHandler
) -> None:
    emu.expire_longpoll_key()
    emu.send_text(USER, "раз")
    emu.send_text(USER, "два")
    assert [i.text for i in await handler.wait(2)] == ["раз", "два"]


async def test_long_poll_holds_an_event_while_the_pipeline_fails(emu: VKEmulator, bot: Bot) -> None:
    flaky = RecordingHandler(fail_times=1)
    vk_bot = build_bot(emu.token, emu.group_id, RetryingHandler(flaky), api_url=emu.api_url)
    task = await start_polling(vk_bot, emu)
    try:
        emu.send_text(USER, "первое")
        emu.send_text(USER, "второе")
        inbounds = await flaky.wait(2)
    finally:
        await stop(task)
        await vk_bot.api.http_client.close()
    assert [i.text for i in inbounds] == ["первое", "второе"]  # order kept, nothing lost
    assert flaky.calls == 3


async def test_event_without_event_id_gets_a_stable_key(
    emu: VKEmulator, polling: Bot, handler: RecordingHandler
) -> None:
    event = emu.send_text(USER, "x")
    raw = json.loads(json.dumps(event))
    del raw["event_id"]
    emu.inject_event(raw)
    first, second = await handler.wait(2)
    cmid = event["object"]["message"]["conversation_message_id"]
    assert second.update_id == f"msg:{USER}:{cmid}" and first.update_id == event["event_id"]


class NoStatePolling(BotPolling):
    def save_server_ts(self, server: dict[str, Any]) -> None:
        """vkbottle would write .vkbottle/bot-polling/{group}.json into the cwd."""


async def test_emulator_events_parse_into_vkbottle_typed_models(emu: VKEmulator) -> None:
    api = make_api(emu.token, api_url=emu.api_url)
    typed = Bot(api=api, polling=NoStatePolling(api))  # no group_id: it asks groups.getById
    seen: list[Any] = []

    @typed.on.message()
    async def on_message(message: Message) -> None:
        seen.append((message.text, message.payload, message.from_id, message.client_info.keyboard))

    @typed.on.raw_event(GroupEventType.MESSAGE_EVENT, MessageEvent)
    async def on_press(event: MessageEvent) -> None:
        seen.append((event.payload, event.user_id))

    task = await start_polling(typed, emu)
    try:
        emu.send_text(USER, "hi", payload='{"p":"x"}')
        emu.press_callback(USER, '{"p":"y"}', 1)
        await eventually(lambda: len(seen) >= 2)
    finally:
        await stop(task)
        await typed.api.http_client.close()
    assert seen == [("hi", '{"p":"x"}', USER, True), ({"p": "y"}, USER)]


# ---------------------------------------------------------------- Callback API
async def test_callback_api_end_to_end(
    emu: VKEmulator, webhook: WebApp, handler: RecordingHandler
) -> None:
    assert await emu.set_callback_server(webhook.url, secret="s3cret") is True
    assert emu.callback_confirmation["body"] == emu.confirmation_code
    event = emu.send_text(USER, "привет")
    press = emu.press_callback(USER, '{"p":"menu"}', 1)
    await emu.wait_callback_idle()
    assert [(i.update_id, i.text, i.payload) for i in handler.inbounds] == [
        (event["event_id"], "привет", None),
        (press["event_id"], None, "menu"),
    ]
    assert [(a["status"], a["body"]) for a in emu.callback_attempts] == [(200, "ok"), (200, "ok")]
    assert len(emu.event_answers) == 1


async def test_callback_retried_until_handler_succeeds(emu: VKEmulator, bot: Bot) -> None:
    flaky = RecordingHandler(fail_times=2)
    vk_bot = build_bot(emu.token, emu.group_id, flaky, api_url=emu.api_url)
    app = WebApp(callback_handler(vk_bot, confirmation_code=emu.confirmation_code, secret=None))
    await app.start()
    try:
        assert await emu.set_callback_server(app.url)
        event = emu.send_text(USER, "мой тариф?")
        await emu.wait_callback_idle()
    finally:
        await app.runner.cleanup()
        await vk_bot.api.http_client.close()
    assert [a["status"] for a in emu.callback_attempts] == [500, 500, 200]
    assert {a["event_id"] for a in emu.callback_attempts} == {event["event_id"]}
    assert [i.text for i in flaky.inbounds] == ["мой тариф?"]


async def test_callback_rejects_bad_requests(
    emu: VKEmulator, webhook: WebApp, handler: RecordingHandler
) -> None:
    event = emu.send_text(USER, "не должен дойти")
    async with aiohttp.ClientSession() as s:
        async with s.post(webhook.url, json={**event, "secret": "wrong"}) as r:
            assert r.status == 403
        async with s.post(webhook.url, json=event) as r:  # no secret at all
            assert r.status == 403
        async with s.post(webhook.url, data=b"{not json") as r:
            assert r.status == 400
        confirm = {"type": "confirmation", "group_id": emu.group_id}
        async with s.post(webhook.url, json=confirm) as r:  # the code only with the secret
            assert (r.status, await r.text()) == (403, "wrong secret")
        async with s.post(webhook.url, json={**confirm, "secret": "s3cret"}) as r:
            assert (r.status, r.content_type, await r.text()) == (
                200,
                "text/plain",
                emu.confirmation_code,
            )
        async with s.post(webhook.url, json={**event, "secret": "s3cret"}) as r:
            assert (r.status, await r.text()) == (200, "ok")
    assert [i.text for i in handler.inbounds] == ["не должен дойти"]  # only the good one


async def test_callback_unknown_event_type_is_acknowledged(
    emu: VKEmulator, webhook: WebApp, handler: RecordingHandler
) -> None:
    async with aiohttp.ClientSession() as s:
        body = {
            "type": "message_typing_state",
            "object": {},
            "group_id": emu.group_id,
            "secret": "s3cret",
        }
        async with s.post(webhook.url, json=body) as r:
            assert (r.status, await r.text()) == (200, "ok")
    assert handler.inbounds == []


async def test_wrong_confirmation_is_not_registered(emu: VKEmulator) -> None:
    assert await emu.set_callback_server("http://127.0.0.1:9/webhook/vk") is False
    emu.send_text(USER, "x")
    assert emu.callback_attempts == []


async def test_long_poll_resumes_after_a_restart_without_skipping_messages(
    emu: VKEmulator, tmp_path: Path
) -> None:
    first = RecordingHandler()
    bot_a = build_bot(emu.token, emu.group_id, first, api_url=emu.api_url, state_dir=tmp_path)
    task = await start_polling(bot_a, emu)
    emu.send_text(USER, "до перезапуска")
    await first.wait(1)
    await asyncio.sleep(0.2)  # the position is saved after the batch was handled
    await stop(task)
    await bot_a.api.http_client.close()

    emu.send_text(USER, "пока бот лежал")  # VK keeps it; a bot that starts from "now" skips it

    second = RecordingHandler()
    bot_b = build_bot(emu.token, emu.group_id, second, api_url=emu.api_url, state_dir=tmp_path)
    task = await start_polling(bot_b, emu)
    try:
        got = await second.wait(1)
    finally:
        await stop(task)
        await bot_b.api.http_client.close()
    assert [i.text for i in got] == ["пока бот лежал"]
