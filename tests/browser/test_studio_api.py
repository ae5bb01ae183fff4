"""The content studio's API (handoff/console/studio_page.py) on an app serving content versions
from the database: who may use it, a response's form fields, problems as you type at the field
and in Russian, the version check on save (409 naming who saved first), publish refused while
the draft has errors or no passing tests, the diff against the published version."""

from __future__ import annotations

import shutil
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from supportbot.app import App
from tests.browser.conftest import Client, Console, wait_for
from tests.e2e.conftest import telegram_settings
from tests.support import CONTENT

SECOND = "Пока ждёшь, можешь дописать детали сюда."


@pytest.fixture
async def console(
    telegram: TelegramEmulator, vk: VKEmulator, start_app: Callable[..., Awaitable[App]]
) -> Console:
    app = await start_app(telegram=telegram_settings(telegram, "polling"), content_store="database")
    return Console(app, telegram, vk)


async def logged_in(
    console: Console, clients: Callable[[], Client], login: str, role: str
) -> Client:
    await console.operator(login, role=role, groups=())
    client = clients()
    assert (await client.log_in(login)).status == 303
    return client


async def test_editors_use_the_studio_and_operators_cannot(
    console: Console, clients: Callable[[], Client]
) -> None:
    olga = await logged_in(console, clients, "olga", "operator")
    egor = await logged_in(console, clients, "egor", "editor")
    sveta = await logged_in(console, clients, "sveta", "supervisor")
    status, html = await olga.get("/studio")
    assert status == 403 and "Студия контента — для редакторов" in html
    assert (await olga.get("/api/studio/draft"))[0] == 403
    assert (await olga.post("/api/studio/publish", {"comment": "x"}))[0] == 403
    status, html = await egor.get("/studio")
    assert status == 200 and 'id="browse"' in html
    assert (await sveta.get("/studio"))[0] == 200

    status, draft = await egor.get("/api/studio/draft")
    assert status == 200
    assert draft["live_id"] == console.app.versions.live_id  # type: ignore[union-attr]
    assert not [p for p in draft["problems"] if not p["warning"]]
    names = {r["name"] for r in draft["catalogue"]["responses"]}
    assert {"handoff", "welcome", "csat_ask"} <= names
    assert any(f["name"] == "offices" for f in draft["catalogue"]["flows"])
    assert any(
        i["name"] == "payment_methods" and i["examples"] > 5 for i in draft["catalogue"]["intents"]
    )


async def test_problems_at_the_field_version_check_and_publish_refusals(
    console: Console, clients: Callable[[], Client]
) -> None:
    egor = await logged_in(console, clients, "egor", "editor")
    sveta = await logged_in(console, clients, "sveta", "supervisor")
    status, resp = await egor.get("/api/studio/response?name=handoff")
    assert status == 200 and resp["file"] == "dialogs/bot.yml" and resp["no_form"] is None
    fields: dict[str, Any] = resp["fields"]
    assert SECOND in fields["variants"][0]["text"]

    # A broken template: the problem is at the text field, in Russian, with file:line:col.
    fields["variants"][0]["text"] = fields["variants"][0]["text"].replace(SECOND, "Жди, {nobody}!")
    status, checked = await egor.post(
        "/api/studio/response/check", {"name": "handoff", "fields": fields}
    )
    assert status == 200
    errors = [p for p in checked["problems"] if not p["warning"]]
    assert len(errors) == 1
    assert errors[0]["field"] == "v0.text"
    assert errors[0]["message"] == "В шаблоне {nobody} неизвестное поле «nobody»: такого слота нет"
    assert errors[0]["where"].startswith("dialogs/bot.yml:")

    # Saved anyway (a draft may be broken), but it cannot be published.
    status, saved = await egor.post(
        "/api/studio/response", {"name": "handoff", "fields": fields, "revision": resp["revision"]}
    )
    assert status == 200 and saved["revision"] > resp["revision"]
    status, refused = await egor.post("/api/studio/publish", {"comment": "сломано"})
    assert status == 409 and "ошибки" in refused["error"]
    assert any("nobody" in p["message"] for p in refused["problems"])

    # Another editor still holding the old revision is refused, told who saved first.
    status, conflict = await sveta.post(
        "/api/studio/response",
        {"name": "handoff", "fields": resp["fields"], "revision": resp["revision"]},
    )
    assert status == 409 and "уже изменил(а) egor" in conflict["error"]

    # Fixed; the diff shows it; publishing still needs the tests to have passed on this draft.
    fields["variants"][0]["text"] = fields["variants"][0]["text"].replace(
        "Жди, {nobody}!", "Жди 🙂"
    )
    status, saved = await egor.post(
        "/api/studio/response", {"name": "handoff", "fields": fields, "revision": saved["revision"]}
    )
    assert status == 200
    status, diff = await egor.get("/api/studio/diff")
    assert "+    Жди 🙂" in diff["diff"] and f"-    {SECOND}" in diff["diff"]
    status, refused = await egor.post("/api/studio/publish", {"comment": "короче"})
    assert status == 409 and "запустите тесты" in refused["error"]

    # YAML view: a file with a syntax error is reported at its line, once.
    status, file = await egor.get("/api/studio/file?path=dialogs/service.yml")
    broken = file["text"].replace('наличными 🏧"\n', "наличными 🏧\n", 1)  # a missing quote
    assert broken != file["text"]
    status, checked = await egor.post(
        "/api/studio/check", {"path": "dialogs/service.yml", "text": broken}
    )
    errors = [p for p in checked["problems"] if not p["warning"]]
    assert len(errors) == 1 and errors[0]["file"] == "dialogs/service.yml"
    assert errors[0]["message"].startswith("Ошибка разметки YAML")


async def test_an_image_for_a_response_is_checked_and_kept_in_the_draft(
    console: Console, clients: Callable[[], Client]
) -> None:
    egor = await logged_in(console, clients, "egor", "editor")
    png = (CONTENT / "media" / "sbp.png").read_bytes()

    async def upload(data: bytes, name: str) -> tuple[int, Any]:
        form = aiohttp.FormData()
        form.add_field("image", data, filename=name, content_type="image/png")
        async with egor.http.post(
            f"{egor.base}/api/studio/media", data=form, headers={"X-CSRF-Token": egor.csrf}
        ) as resp:
            return resp.status, await resp.json()

    status, body = await upload(b"<svg onload=alert(1)>", "evil.png")  # the bytes decide
    assert status == 400 and body["error"] == "можно только PNG, JPEG или GIF"
    status, body = await upload(png + b"\0" * (5 * 1024 * 1024), "big.png")
    assert status == 413 and "5 МБ" in body["error"]
    status, body = await upload(png, "Оплата СБП.png")
    assert status == 200 and body["path"].startswith("media/") and body["path"].endswith(".png")
    path = body["path"]
    async with egor.http.get(f"{egor.base}/api/studio/media?path={path}") as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        assert await resp.read() == png

    # The response's image points at it; the validator finds the file in the draft.
    status, resp_ = await egor.get("/api/studio/response?name=handoff")
    fields = resp_["fields"]
    fields["variants"][0]["image"] = path
    status, checked = await egor.post(
        "/api/studio/response/check", {"name": "handoff", "fields": fields}
    )
    assert not [p for p in checked["problems"] if not p["warning"]]
    fields["variants"][0]["image"] = "media/no_such.png"
    status, checked = await egor.post(
        "/api/studio/response/check", {"name": "handoff", "fields": fields}
    )
    errors = [p for p in checked["problems"] if not p["warning"]]
    assert errors and errors[0]["field"] == "v0.image"
    assert errors[0]["message"] == "Картинки «media/no_such.png» нет среди файлов контента"


async def test_an_intents_examples_are_edited_and_checked(
    console: Console, clients: Callable[[], Client]
) -> None:
    egor = await logged_in(console, clients, "egor", "editor")
    status, intent = await egor.get("/api/studio/intent?name=payment_methods")
    assert status == 200 and intent["file"] == "nlu/billing.yml"
    examples = [*intent["examples"], "куда платить за связь"]
    status, checked = await egor.post(
        "/api/studio/intent/check", {"name": "payment_methods", "examples": examples}
    )
    assert not [p for p in checked["problems"] if not p["warning"]]
    status, _saved = await egor.post(
        "/api/studio/intent",
        {"name": "payment_methods", "examples": examples, "revision": intent["revision"]},
    )
    assert status == 200
    status, diff = await egor.get("/api/studio/diff")
    assert "+    - куда платить за связь" in diff["diff"]
    # an empty example in the YAML view is reported in the NLU file, at its line
    status, file = await egor.get("/api/studio/file?path=nlu/billing.yml")
    text = file["text"].replace("    - где оплатить\n", "    - где оплатить\n    -\n", 1)
    status, checked = await egor.post(
        "/api/studio/check", {"path": "nlu/billing.yml", "text": text}
    )
    errors = [p for p in checked["problems"] if not p["warning"]]
    assert len(errors) == 1 and errors[0]["file"] == "nlu/billing.yml", errors
    assert errors[0]["line"] == 7 and errors[0]["message"] == "Пустой пример фразы"
    # and the form refuses an intent without examples
    status, refused = await egor.post(
        "/api/studio/intent/check", {"name": "payment_methods", "examples": ["", " "]}
    )
    assert status == 400 and refused["error"] == "у интента должен быть хотя бы один пример"


async def test_with_content_in_files_a_restore_is_written_to_the_folder(
    telegram: TelegramEmulator,
    start_app: Callable[..., Awaitable[App]],
    tmp_path: Any,
) -> None:
    """SUPPORTBOT_CONTENT_STORE=files: the folder is live (hot reload); an edit made on disk
    becomes a version when the studio opens, and a restore is written back into the folder."""
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content)
    app = await start_app(telegram=telegram_settings(telegram, "polling"), content_dir=content)
    console = Console(app, telegram, None)  # type: ignore[arg-type]
    await console.operator("egor", role="editor", groups=())
    http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    egor = Client(http, console.url)
    assert (await egor.log_in("egor")).status == 303
    try:
        await _files_mode(egor, app, content)
    finally:
        await http.close()


async def _files_mode(egor: Client, app: App, content: Any) -> None:
    status, draft = await egor.get("/api/studio/draft")
    first = draft["live_id"]
    bot = content / "dialogs" / "bot.yml"
    old = bot.read_text("utf-8")
    bot.write_text(old.replace(SECOND, "Пока ждёшь, расскажи подробнее."), "utf-8")
    status, draft = await egor.get("/api/studio/draft")
    assert draft["live_id"] == first + 1  # the edit on disk, recorded
    status, listed = await egor.get("/api/studio/versions")
    assert listed["versions"][0]["kind"] == "seed" and listed["versions"][0]["changed"] == [
        "dialogs/bot.yml"
    ]
    status, restored = await egor.post(f"/api/studio/versions/{first}/restore")
    assert status == 200 and restored["version"] == first + 2
    assert bot.read_text("utf-8") == old  # written back; the hot reload serves it

    async def served() -> bool:
        assert app.content is not None
        return SECOND in str(app.content.current.responses["handoff"])

    await wait_for(served, 10, "the restored text to be served")


async def test_a_flow_is_edited_as_steps_with_problems_at_the_step(
    console: Console, clients: Callable[[], Client]
) -> None:
    egor = await logged_in(console, clients, "egor", "editor")
    status, flow = await egor.get("/api/studio/flow?name=block_number")
    assert status == 200 and flow["file"] == "dialogs/service.yml" and flow["no_form"] is None
    steps = flow["fields"]["steps"]
    assert [s["kind"] for s in steps][:3] == ["say", "verify", "ask"]
    # moved: the question first; and a goto to a step that does not exist
    steps.insert(0, steps.pop(2))
    steps.append({"kind": "goto", "id": "", "fields": [{"key": "goto", "value": "nowhere"}]})
    status, checked = await egor.post(
        "/api/studio/flow/check", {"name": "block_number", "fields": flow["fields"]}
    )
    errors = [p for p in checked["problems"] if not p["warning"]]
    assert errors and errors[0]["field"] == f"step{len(steps) - 1}", errors
    assert "nowhere" in errors[0]["message"]
    steps.pop()
    status, checked = await egor.post(
        "/api/studio/flow/check", {"name": "block_number", "fields": flow["fields"]}
    )
    assert not [p for p in checked["problems"] if not p["warning"]]
    status, _saved = await egor.post(
        "/api/studio/flow",
        {"name": "block_number", "fields": flow["fields"], "revision": flow["revision"]},
    )
    assert status == 200
    status, again = await egor.get("/api/studio/flow?name=block_number")
    assert [s["kind"] for s in again["fields"]["steps"]][:3] == ["ask", "say", "verify"]
    status, no_form = await egor.get("/api/studio/flow?name=offices")
    assert no_form["fields"] is None and "якоря" in no_form["no_form"]
