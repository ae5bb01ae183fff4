"""The VK emulator as the real vkbottle API client sees it (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from vkbottle import API, Callback, Keyboard, OpenLink, Text, VKAPIError
from vkbottle.tools import PhotoMessageUploader

from bots.vk import make_api
from emulators.vk import VKEmulator
from tests.vk.conftest import USER


async def test_send_with_keyboard_is_parsed(emu: VKEmulator, api: API) -> None:
    keyboard = (
        Keyboard(inline=True)
        .add(Text("Баланс", payload={"p": "balance"}))
        .add(Callback("Тарифы", payload={"p": "tariffs"}))
        .row()
        .add(OpenLink("https://example.org/pay", "Оплатить"))
        .get_json()
    )
    answer = await api.messages.send(
        peer_id=USER, random_id=1, message="Чем помочь?", keyboard=keyboard
    )
    sent = emu.sent(USER)
    assert answer == sent[0]["message_id"]
    assert sent[0]["text"] == "Чем помочь?"
    rows = sent[0]["keyboard"]["buttons"]
    assert [[b["action"]["type"] for b in row] for row in rows] == [
        ["text", "callback"],
        ["open_link"],
    ]
    payload = rows[0][1]["action"]["payload"]  # vkbottle sends it as an object, VK allows both
    assert (json.loads(payload) if isinstance(payload, str) else payload) == {"p": "tariffs"}


async def test_random_id_dedupes_like_vk(emu: VKEmulator, api: API) -> None:
    first = await api.request("messages.send", {"peer_id": USER, "random_id": 77, "message": "раз"})
    again = await api.request("messages.send", {"peer_id": USER, "random_id": 77, "message": "раз"})
    other = await api.request("messages.send", {"peer_id": USER, "random_id": 78, "message": "два"})
    assert first["response"] == again["response"] != other["response"]
    assert [m["text"] for m in emu.sent(USER)] == ["раз", "два"]


async def test_peer_ids_answer_a_list(emu: VKEmulator, api: API) -> None:
    emu.block(2002)
    result = (
        await api.request(
            "messages.send", {"peer_ids": [USER, 2002], "random_id": 5, "message": "всем"}
        )
    )["response"]
    assert (
        result[0]["peer_id"] == USER and result[0]["message_id"] == emu.sent(USER)[0]["message_id"]
    )
    assert result[0]["conversation_message_id"] == 1
    assert result[1]["peer_id"] == 2002 and result[1]["error"]["code"] == 901
    assert emu.sent(2002) == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"message": "x" * 4097}, 914),
        ({"message": "x", "keyboard": json.dumps({"inline": True, "buttons": [[{"action": {"type": "text", "label": "a"}}]] * 7})}, 911),
        ({"message": "x", "keyboard": json.dumps({"buttons": [[{"action": {"type": "text", "label": "a" * 41}}]]})}, 911),
        ({"message": "x", "keyboard": json.dumps({"buttons": [[{"action": {"type": "callback", "label": "a", "payload": json.dumps({"p": "x" * 300})}}]]})}, 911),
        ({"message": "x", "attachment": "photo-1_123"}, 100),
        ({"message": ""}, 100),
    ],
)  # fmt: skip
async def test_invalid_sends_get_vk_errors(
    emu: VKEmulator, api: API, params: dict, code: int
) -> None:
    with pytest.raises(VKAPIError) as info:
        await api.request("messages.send", {"peer_id": USER, "random_id": 9, **params})
    assert info.value.code == code
    assert emu.sent() == []
    assert emu.calls[-1]["error"] == code


async def test_wrong_token_and_unknown_method(emu: VKEmulator, api: API) -> None:
    stranger = make_api("vk1.a.someone-else", api_url=emu.api_url)
    try:
        with pytest.raises(VKAPIError[5]):
            await stranger.request("groups.getById", {})
    finally:
        await stranger.http_client.close()
    with pytest.raises(VKAPIError[3]):
        await api.request("messages.teleport", {})


async def test_typed_methods_parse_emulator_answers(emu: VKEmulator, api: API) -> None:
    emu.set_user(USER, "Анна", "Петрова")
    group = await api.groups.get_by_id()
    users = await api.users.get(user_ids=[USER])
    server = await api.groups.get_long_poll_server(group_id=emu.group_id)
    assert group.groups[0].id == emu.group_id
    assert (users[0].first_name, users[0].last_name) == ("Анна", "Петрова")
    assert server.server == f"{emu.base_url}/longpoll/{emu.group_id}"


async def test_photo_upload_chain_with_vkbottle_uploader(
    emu: VKEmulator, api: API, tmp_path: Path
) -> None:
    image = tmp_path / "map.jpg"
    image.write_bytes(b"\xff\xd8jpeg bytes\xff\xd9")
    attachment = await PhotoMessageUploader(api).upload(str(image), peer_id=USER)
    assert attachment.startswith(f"photo-{emu.group_id}_")
    await api.request("messages.send", {"peer_id": USER, "random_id": 3, "attachment": attachment})
    assert emu.sent(USER)[0]["attachment"] == [attachment]
    owner_id = attachment.removeprefix("photo").rsplit("_", 1)[0]
    async with aiohttp.ClientSession() as s, s.get(f"{emu.base_url}/photos/{owner_id}.jpg") as r:
        assert await r.read() == image.read_bytes()


async def test_long_poll_wire_protocol(emu: VKEmulator, api: API) -> None:
    server = (await api.request("groups.getLongPollServer", {"group_id": emu.group_id}))["response"]
    url = server["server"]
    async with aiohttp.ClientSession() as s:

        async def check(**params: str | int) -> dict:
            query = {
                "act": "a_check",
                "key": server["key"],
                "ts": server["ts"],
                "wait": 25,
                **params,
            }
            async with s.get(url, params={k: str(v) for k, v in query.items()}) as r:
                return await r.json()

        # The request waits for an event and returns as soon as it arrives (not after 25 s).
        poll = asyncio.create_task(check())
        await asyncio.sleep(0.1)
        event = emu.send_text(USER, "алло")
        async with asyncio.timeout(5):
            answer = await poll
        assert answer["updates"] == [event]
        assert int(answer["ts"]) == int(server["ts"]) + 1
        assert (
            event["type"] == "message_new"
            and event["v"] == "5.199"
            and len(event["event_id"]) == 40
        )
        # Asking again from the old ts returns the event again (at-least-once), from the new ts nothing.
        assert (await check(wait=0))["updates"] == [event]
        assert (await check(ts=answer["ts"], wait=0))["updates"] == []
        assert await check(ts=int(answer["ts"]) + 100) == {"failed": 1, "ts": answer["ts"]}
        assert await check(key="wrong") == {"failed": 2}
        emu.expire_longpoll_key()
        assert await check() == {"failed": 2}


async def test_faults_times_block_and_clear(emu: VKEmulator, api: API) -> None:
    emu.fail("messages.send", error_code=9, times=1)
    with pytest.raises(VKAPIError[9]):
        await api.request("messages.send", {"peer_id": USER, "random_id": 1, "message": "a"})
    await api.request("messages.send", {"peer_id": USER, "random_id": 1, "message": "a"})
    emu.block(USER)
    with pytest.raises(VKAPIError[901]):
        await api.request("messages.send", {"peer_id": USER, "random_id": 2, "message": "b"})
    emu.clear_faults()
    await api.request("messages.send", {"peer_id": USER, "random_id": 2, "message": "b"})
    assert [m["text"] for m in emu.sent(USER)] == ["a", "b"]


async def test_enforced_rate_limit_answers_error_6() -> None:
    emu = VKEmulator(enforce_limits=True)
    await emu.start()
    api = make_api(emu.token, api_url=emu.api_url)
    try:
        results = await asyncio.gather(
            *(api.request("users.get", {"user_ids": USER}) for _ in range(30)),
            return_exceptions=True,
        )
    finally:
        await api.http_client.close()
        await emu.stop()
    errors = [r for r in results if isinstance(r, Exception)]
    assert len(errors) == 10 and all(isinstance(e, VKAPIError[6]) for e in errors)
    assert emu.max_rate_per_second() == 30


async def test_control_api_mirrors_python_methods(emu: VKEmulator, api: API) -> None:
    async with aiohttp.ClientSession(base_url=emu.base_url) as s:
        async with s.post(
            "/_control/send_text", json={"user_id": USER, "text": "где оплатить?"}
        ) as r:
            event = await r.json()
        assert event["object"]["message"]["text"] == "где оплатить?"
        await api.request(
            "messages.send", {"peer_id": USER, "random_id": 1, "message": "В терминале"}
        )
        async with s.get("/_control/history", params={"peer_id": str(USER)}) as r:
            history = await r.json()
        assert [(h["from"], h["text"]) for h in history] == [
            ("subscriber", "где оплатить?"),
            ("bot", "В терминале"),
        ]
        async with s.post(
            "/_control/fail", json={"method": "*", "error_code": 10, "times": 1}
        ) as r:
            assert r.status == 200
        with pytest.raises(VKAPIError[10]):
            await api.request("users.get", {"user_ids": USER})
        async with s.post("/_control/send_text", json={"nobody": 1}) as r:
            assert r.status == 400
        async with s.get("/_control/calls") as r:
            assert [c["error"] for c in await r.json()] == [None, 10]


async def test_wait_sent_times_out_with_what_was_sent(emu: VKEmulator, api: API) -> None:
    await api.request("messages.send", {"peer_id": USER, "random_id": 1, "message": "только одно"})
    with pytest.raises(TimeoutError, match="только одно"):
        await emu.wait_sent(USER, 2, timeout=0.2)
