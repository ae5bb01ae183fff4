"""VKSender: Outbound -> messages.send through the real vkbottle API, against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from vkbottle import API

from bots.text import split_text
from bots.vk import VKSender, build_bot, make_api
from delivery.errors import Blocked, PartialSend, PermanentError, RetryAfter, TransientError
from dialogs.messages import Button, Outbound
from emulators.vk import VKEmulator
from tests.vk.conftest import USER, RecordingHandler, start_polling, stop

LONG = " ".join(f"слово{i}" for i in range(2000))[:10_000]
MENU = (
    (Button("Баланс", payload="intent:balance"), Button("Оплатить", url="https://pay.example.org")),
)


@pytest.fixture
def sender(api: API) -> VKSender:
    return VKSender(api)


async def test_long_text_split_in_three_with_keyboard_on_last(
    emu: VKEmulator, sender: VKSender
) -> None:
    ids = await sender.send(str(USER), Outbound(text=LONG, buttons=MENU), key=42)
    sent = emu.sent(USER)
    assert ids == [str(m["message_id"]) for m in sent] and len(sent) == 3
    assert all(len(m["text"]) <= 4096 for m in sent)
    assert " ".join(m["text"] for m in sent) == LONG  # cut at spaces, nothing lost
    assert [m["keyboard"] is not None for m in sent] == [False, False, True]
    assert [m["random_id"] for m in sent] == [42 * 16, 42 * 16 + 1, 42 * 16 + 2]


async def test_keyboard_is_inline_callback_and_link(emu: VKEmulator, sender: VKSender) -> None:
    rows = ((Button("Очень длинное название кнопки, больше сорока символов", payload="p1"),), *MENU)
    await sender.send(str(USER), Outbound(text="Меню", buttons=rows), key=1)
    keyboard = emu.sent(USER)[0]["keyboard"]
    assert keyboard["inline"] is True
    actions = [[b["action"] for b in row] for row in keyboard["buttons"]]
    assert actions[0][0]["type"] == "callback" and len(actions[0][0]["label"]) == 40
    assert actions[1][0] == {
        "type": "callback",
        "label": "Баланс",
        "payload": json.dumps({"p": "intent:balance"}, ensure_ascii=False),
    }
    assert actions[1][1] == {
        "type": "open_link",
        "link": "https://pay.example.org",
        "label": "Оплатить",
    }


async def test_contact_button_is_left_out_in_vk(emu: VKEmulator, sender: VKSender) -> None:
    """VK has no «Поделиться номером»: the button is dropped (with a row it leaves empty), the
    rest of the keyboard is as always, and a message of only that button has no keyboard."""
    share = Button("📱 Поделиться номером", request="contact")
    rows = ((share,), (Button("Ввести вручную", payload="manual"), share), *MENU)
    await sender.send(str(USER), Outbound(text="Номер?", buttons=rows), key=11)
    keyboard = emu.sent(USER)[0]["keyboard"]
    labels = [[b["action"]["label"] for b in row] for row in keyboard["buttons"]]
    assert labels == [["Ввести вручную"], ["Баланс", "Оплатить"]]
    await sender.send(str(USER), Outbound(text="Номер?", buttons=((share,),)), key=12)
    alone = emu.sent(USER)[1]
    assert alone["text"] == "Номер?" and alone["keyboard"] is None
    # dropped before VK's limits are counted: 6 rows plus the contact row still fit
    six = tuple((Button(f"Кнопка {i}", payload=f"b{i}"),) for i in range(6))
    await sender.send(str(USER), Outbound(text="Много", buttons=((share,), *six)), key=13)
    assert len(emu.sent(USER)[2]["keyboard"]["buttons"]) == 6


async def test_pressed_button_comes_back_as_our_payload(emu: VKEmulator, sender: VKSender) -> None:
    handler = RecordingHandler()
    bot = build_bot(emu.token, emu.group_id, handler, api_url=emu.api_url)
    task = await start_polling(bot, emu)
    try:
        await sender.send(str(USER), Outbound(text="Что показать?", buttons=MENU), key=7)
        message = emu.sent(USER)[0]
        button = message["keyboard"]["buttons"][0][0]["action"]
        emu.press_callback(USER, button["payload"], message["conversation_message_id"])
        [inbound] = await handler.wait(1)
    finally:
        await stop(task)
        await bot.api.http_client.close()
    assert inbound.payload == "intent:balance"


async def test_photo_from_path_and_url_and_sticker(
    emu: VKEmulator, sender: VKSender, tmp_path: Path
) -> None:
    image = tmp_path / "terminal-map.jpg"
    image.write_bytes(b"\xff\xd8 map \xff\xd9")
    await sender.send(str(USER), Outbound(text="Терминалы на карте", image=str(image)), key=1)
    await sender.send(str(USER), Outbound(image=str(image)), key=2)  # cached: uploaded once
    photo = emu.send_photo(USER)["object"]["message"]["attachments"][0]["photo"]
    await sender.send(str(USER), Outbound(image=photo["sizes"][-1]["url"].split("?")[0]), key=3)
    await sender.send(str(USER), Outbound(sticker="9014"), key=4)
    first, second, third, fourth = emu.sent(USER)
    assert first["text"] == "Терминалы на карте" and first["attachment"][0].startswith(
        f"photo-{emu.group_id}_"
    )
    assert second["attachment"] == first["attachment"]
    assert third["attachment"] != first["attachment"]
    assert fourth["sticker_id"] == 9014 and fourth["text"] == ""
    assert sum(c["method"] == "photos.saveMessagesPhoto" for c in emu.calls) == 2


async def test_same_key_is_not_delivered_twice(emu: VKEmulator, sender: VKSender) -> None:
    first = await sender.send(str(USER), Outbound(text="Ваш тариф: Смарт"), key=5)
    again = await sender.send(str(USER), Outbound(text="Ваш тариф: Смарт"), key=5)
    assert first == again
    assert len(emu.sent(USER)) == 1


@pytest.mark.parametrize(
    ("code", "expected", "delay"),
    [(6, RetryAfter, 1.0), (9, RetryAfter, 5.0), (901, Blocked, None), (902, Blocked, None),
     (100, PermanentError, None), (10, TransientError, None)],
)  # fmt: skip
async def test_error_mapping(
    emu: VKEmulator, sender: VKSender, code: int, expected: type, delay: float | None
) -> None:
    emu.fail("messages.send", error_code=code)
    with pytest.raises(expected) as info:
        await sender.send(str(USER), Outbound(text="привет"), key=1)
    if delay is not None:
        assert info.value.seconds == delay
    assert emu.sent() == []


async def test_blocked_subscriber(emu: VKEmulator, sender: VKSender) -> None:
    emu.block(USER)
    with pytest.raises(Blocked):
        await sender.send(str(USER), Outbound(text="привет"), key=1)


async def test_network_error_is_transient() -> None:
    emu = VKEmulator()
    await emu.start()
    api = make_api(emu.token, api_url=emu.api_url, timeout=2)
    await emu.stop()  # nothing listens on that port any more
    try:
        with pytest.raises(TransientError):
            await VKSender(api).send(str(USER), Outbound(text="привет"), key=1)
    finally:
        await api.http_client.close()


async def test_partial_send_then_resume(emu: VKEmulator, sender: VKSender) -> None:
    emu.fail("messages.send", error_code=10, times=1, after=1)
    with pytest.raises(PartialSend) as info:
        await sender.send(str(USER), Outbound(text=LONG, buttons=MENU), key=9)
    assert info.value.done == 1 and isinstance(info.value.cause, TransientError)
    assert info.value.sent_ids == [str(emu.sent(USER)[0]["message_id"])]
    rest = await sender.send(str(USER), Outbound(text=LONG, buttons=MENU), key=9, skip_parts=1)
    assert len(rest) == 2
    assert " ".join(m["text"] for m in emu.sent(USER)) == LONG  # each part exactly once


@pytest.mark.parametrize(
    "message",
    [
        Outbound(text="x", buttons=((Button("a", payload="p" * 250),),)),
        Outbound(text="x", buttons=tuple((Button("a", payload="p"),) for _ in range(7))),
        Outbound(text="x", buttons=(tuple(Button(str(i), payload="p") for i in range(6)),)),
        Outbound(sticker="not-a-number"),
        Outbound(image="/nonexistent/picture.jpg"),
        Outbound(),
    ],
)
async def test_messages_vk_cannot_show_are_permanent_errors(
    emu: VKEmulator, sender: VKSender, message: Outbound
) -> None:
    with pytest.raises(PermanentError):
        await sender.send(str(USER), message, key=1)
    assert emu.sent() == []


def test_split_prefers_paragraphs_then_lines() -> None:
    text = "А" * 3000 + "\n\n" + "Б" * 2000 + "\n" + "В" * 3000
    assert split_text(text) == ["А" * 3000, "Б" * 2000, "В" * 3000]
    assert split_text("x" * 5000) == ["x" * 4096, "x" * 904]
    assert split_text("коротко") == ["коротко"]
