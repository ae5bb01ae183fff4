"""The NLU improvement loop: examples written into content/nlu/from_console.yml (nlu/learned.py),
the review list (which messages an editor sees), and the console API end to end through the real
App, the Telegram emulator and the hot reload: an editor's verdict makes the bot understand.

Every test works on a temporary copy of content/ (the repository's own is never written)."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from sqlalchemy import select

from dialogs.content import INTENT_PAYLOAD, NONE_OF_THESE
from emulators.telegram import TelegramEmulator
from handoff.auth import add_operator
from handoff.console.training import Training, review_list
from nlu import learned
from nlu.data import load_training_data
from nlu.rasa_project import export_project, scan_training_data, training_files
from storage.db import Database
from storage.models import (
    ChannelAccount,
    Conversation,
    ConversationEvent,
    Message,
    NluReview,
    Subscriber,
)
from supportbot.app import App
from tests.browser.conftest import PASSWORD, Client
from tests.e2e.conftest import start_app, telegram, telegram_settings
from tests.support import CONTENT

__all__ = ["start_app", "telegram"]  # fixtures used here

MISSED = "куда к вам ногами дойти"  # the reference model: number_porting 0.29 -> a miss
OFFICES_ANSWER = "Наши салоны связи в Пушкине"


@pytest.fixture
def content(tmp_path: Path) -> Path:
    copy = tmp_path / "content"
    shutil.copytree(CONTENT, copy, ignore=shutil.ignore_patterns("tests"))
    return copy


def digest(folder: Path, *, skip: str | None = None) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != skip
    }


# -- writing examples (nlu/learned.py) -------------------------------------------------------------


def test_examples_land_in_their_own_file_grouped_by_intent(content: Path) -> None:
    nlu = content / "nlu"
    editors_files = digest(nlu)
    before = load_training_data([nlu])
    target = nlu / learned.FILE_NAME
    assert not target.exists()

    first = learned.add_example(nlu, MISSED, "offices")
    assert first.file == target.resolve() and first.example == MISSED
    learned.add_example(nlu, "скока бабок осталось на трубе у меня", "balance")
    learned.add_example(nlu, "а живьём к вам куда приходить", "offices")

    text = target.read_text(encoding="utf-8")
    doc = yaml.safe_load(text)
    assert doc["version"] == "3.1"
    assert [item["intent"] for item in doc["nlu"]] == ["offices", "balance"]  # one item each
    assert doc["nlu"][0]["examples"] == f"- {MISSED}\n- а живьём к вам куда приходить\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert not [p for p in nlu.iterdir() if p.name.endswith(".tmp")]  # no temp file left
    assert digest(nlu, skip=learned.FILE_NAME) == editors_files  # the editors' files untouched

    # The embedded engine's loader merges the second file into the existing intents ...
    after = load_training_data([nlu])
    assert after.intents == before.intents
    assert len(after.examples) == len(before.examples) + 3
    offices = [e.text for e in after.examples if e.intent == "offices"]
    assert MISSED in offices and len(offices) == 2 + sum(
        e.intent == "offices" for e in before.examples
    )
    assert first.fingerprint != before.fingerprint()
    # ... and so does the Rasa export: the file is copied beside the others, intents stay once.
    assert target.resolve() in [p.resolve() for p in training_files(content)]
    intents, _ = scan_training_data(training_files(content))
    assert intents == before.intents
    project = export_project(content, content.parent / "rasa-project")
    assert (project / "data" / learned.FILE_NAME).read_text(encoding="utf-8") == text
    domain = yaml.safe_load((project / "domain.yml").read_text(encoding="utf-8"))
    assert domain["intents"] == before.intents


TRICKY = [
    ("key: value # not a comment", "key: value # not a comment"),
    ("- \"quoted\" 'single' & *alias ! % @ `tick`", "- \"quoted\" 'single' & *alias ! % @ `tick`"),
    ("line one\nline two\r\n\tthree", "line one line two three"),
    ("\u2028split\x85by\u2029yaml breaks", "split by yaml breaks"),
    ("nul\x00and\x1bescape\ufeffbom", "nul and escape bom"),
    ("[not](an) entity {x} [y]", "(not)(an) entity {x} (y)"),
    ("--- ... ---", "--- ... ---"),
    ("|  > ?", "| > ?"),
    ("null", "null"),
    ("😡😡 верните деньги 🙏", "😡😡 верните деньги 🙏"),
]


@pytest.mark.parametrize(("raw", "expected"), TRICKY)
def test_yaml_special_texts_read_back_as_one_line(content: Path, raw: str, expected: str) -> None:
    nlu = content / "nlu"
    added = learned.add_example(nlu, raw, "complaint")
    assert added.text == expected
    [back] = [e for e in load_training_data([nlu / learned.FILE_NAME]).examples]
    assert (back.intent, back.text, back.entities) == ("complaint", expected, ())
    assert isinstance(yaml.safe_load((nlu / learned.FILE_NAME).read_text("utf-8")), dict)


def test_all_tricky_texts_in_one_file(content: Path) -> None:
    nlu = content / "nlu"
    for raw, _ in TRICKY:
        learned.add_example(nlu, raw, "complaint")
    back = load_training_data([nlu / learned.FILE_NAME]).examples
    assert [e.text for e in back] == [expected for _, expected in TRICKY]


def test_phone_and_account_numbers_are_replaced_and_annotated(content: Path) -> None:
    nlu = content / "nlu"
    added = learned.add_example(nlu, "мой номер +7 916 123-45-67 не ловит сеть", "internet_down")
    assert added.example == "мой номер [+7 900 000-00-00](phone) не ловит сеть"
    added = learned.add_example(nlu, "лс 100234567 почему списали", "call_details")
    assert added.example == "лс [100000000](account) почему списали"
    examples = load_training_data([nlu]).examples
    [phone] = [e for e in examples if e.text == "мой номер +7 900 000-00-00 не ловит сеть"]
    assert phone.entities == (("phone", 10, 26),)
    assert "916" not in (nlu / learned.FILE_NAME).read_text("utf-8")  # no subscriber's number
    # Another number in the same words is the same example.
    with pytest.raises(learned.DuplicateExample):
        learned.add_example(nlu, "мой номер 8 999 555-44-33 не ловит сеть", "internet_down")


def test_refusals_name_the_reason_and_touch_nothing(content: Path) -> None:
    nlu = content / "nlu"
    files = digest(nlu)
    with pytest.raises(learned.UnknownIntent, match=r"unknown intent 'no_such_intent'.*balance"):
        learned.add_example(nlu, "что-то новое", "no_such_intent")
    # already trained: in an editor's file, whatever the case, ё, punctuation and spacing
    with pytest.raises(learned.DuplicateExample) as dup:
        learned.add_example(nlu, "  Где  ОПЛАТИТЬ?! ", "balance")
    assert dup.value.intent == "payment_methods"
    assert "already an example of intent 'payment_methods'" in str(dup.value)
    assert dup.value.source.startswith("content/nlu/billing.yml:")
    # the held-out evaluation set is never trained on
    heldout = load_training_data([content / "nlu_test"]).examples[0]
    with pytest.raises(
        learned.HeldOutExample, match=r"held-out evaluation set \(content/nlu_test/"
    ):
        learned.add_example(nlu, heldout.text, heldout.intent)
    with pytest.raises(learned.EmptyExample):
        learned.add_example(nlu, " \n\t ", "balance")
    assert digest(nlu) == files
    # and a text added once is a duplicate the second time, under any intent
    learned.add_example(nlu, MISSED, "offices")
    with pytest.raises(learned.DuplicateExample, match=r"intent 'offices' \(content/nlu/from_"):
        learned.add_example(nlu, MISSED.upper() + "!", "complaint")


def test_a_hand_edited_file_of_another_shape_is_not_rewritten(content: Path) -> None:
    target = content / "nlu" / learned.FILE_NAME
    odd = (
        'version: "3.1"\nnlu:\n- intent: balance\n  metadata: {source: x}\n'
        "  examples: |\n    - деньги где\n"
    )
    target.write_text(odd, encoding="utf-8")
    with pytest.raises(learned.LearnError, match="move the item to another file"):
        learned.add_example(content / "nlu", MISSED, "offices")
    assert target.read_text(encoding="utf-8") == odd


def test_broken_training_data_is_reported_not_written_around(content: Path) -> None:
    billing = content / "nlu" / "billing.yml"
    billing.write_text(billing.read_text("utf-8") + "\n  oops: [unclosed\n", "utf-8")
    with pytest.raises(learned.BrokenTrainingData, match=r"billing\.yml"):
        learned.add_example(content / "nlu", MISSED, "offices")
    assert not (content / "nlu" / learned.FILE_NAME).exists()


def test_concurrent_writers_lose_nothing(content: Path) -> None:
    nlu = content / "nlu"
    texts = [f"пример номер {word} от редактора" for word in "абвгдежзик"]
    errors: list[BaseException] = []

    def add(text: str) -> None:
        try:
            learned.add_example(nlu, text, "complaint")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(t,)) for t in texts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    back = [e.text for e in load_training_data([nlu / learned.FILE_NAME]).examples]
    assert sorted(back) == sorted(texts)


# -- the review list -------------------------------------------------------------------------------

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@dataclass
class FakeModel:
    fingerprint: str = "f0"

    def intents(self) -> tuple[str, ...]:
        return ("balance", "offices", "operator", "payment_methods", "complaint")


def parsed(intent: str, confidence: float, handled_as: str | None = None) -> dict[str, Any]:
    ranking = [
        {"name": intent, "confidence": confidence},
        {"name": "offices", "confidence": 0.2},
        {"name": "complaint", "confidence": 0.1},
        {"name": "balance", "confidence": 0.05},
    ]
    nlu: dict[str, Any] = {"intent": intent, "confidence": confidence, "ranking": ranking}
    if handled_as:
        nlu["handled_as"] = handled_as
    return nlu


class Seeder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.minute = 0
        self.ids: dict[str, int] = {}

    async def conversation(self, channel: str = "telegram") -> int:
        async with self.db.session() as s, s.begin():
            sub = Subscriber(display_name="Иван", data={})
            s.add(sub)
            await s.flush()
            acc = ChannelAccount(
                subscriber_id=sub.id,
                channel=channel,
                external_user_id=str(sub.id),
                chat_id=str(sub.id),
            )
            s.add(acc)
            await s.flush()
            conv = Conversation(
                subscriber_id=sub.id, channel_account_id=acc.id, channel=channel, slots={}
            )
            s.add(conv)
            await s.flush()
            return conv.id

    async def says(
        self,
        conv: int,
        name: str,
        text: str | None,
        nlu: dict[str, Any] | None = None,
        *,
        payload: str | None = None,
        ago: timedelta | None = None,
    ) -> int:
        self.minute += 1
        at = NOW - (ago or timedelta(hours=5)) + timedelta(minutes=self.minute)
        async with self.db.session() as s, s.begin():
            m = Message(
                conversation_id=conv,
                direction="in",
                author="subscriber",
                text=text,
                payload=payload,
                nlu=nlu,
                created_at=at,
            )
            s.add(m)
            await s.flush()
            self.ids[name] = m.id
            return m.id

    async def escalated_before(self, conv: int, name: str) -> None:
        """The bot's escalation, stored during the turn of message `name` (just before it)."""
        async with self.db.session() as s, s.begin():
            msg = await s.get(Message, self.ids[name])
            assert msg is not None
            s.add(
                ConversationEvent(
                    conversation_id=conv,
                    kind="escalated",
                    from_state="bot",
                    to_state="queued",
                    data={},
                    at=msg.created_at - timedelta(milliseconds=3),
                )
            )


async def test_the_review_list(db: Database, tmp_path: Path) -> None:
    seed = Seeder(db)
    a = await seed.conversation()
    await seed.says(a, "missed", MISSED, parsed("number_porting", 0.29, "miss"))
    await seed.says(a, "other", None, payload=NONE_OF_THESE)  # «🤷 Другое»
    b = await seed.conversation("vk")
    await seed.says(b, "unsure_then_human", "ваша контора где находится", parsed("offices", 0.52))
    await seed.says(b, "human", "позовите оператора", parsed("operator", 0.97))
    await seed.escalated_before(b, "human")
    c = await seed.conversation()
    await seed.says(c, "picked", "вы где сидите живьём", parsed("offices", 0.39, "miss"))
    await seed.says(c, "pick", None, payload=INTENT_PAYLOAD + "offices")
    await seed.says(c, "form", "89161234567", parsed("balance", 0.1, "form:contract"))
    await seed.says(c, "cancel", "отмена", parsed("deny", 0.2, "cancel"))
    await seed.says(c, "sure", "сколько денег на счету", parsed("balance", 0.97))
    await seed.says(c, "confident_but_wrong", "а у вас есть жёлтые сим", parsed("sim_card", 0.8))
    await seed.says(c, "then_human", "оператора позовите", parsed("operator", 0.95))
    await seed.escalated_before(c, "then_human")
    d = await seed.conversation()
    await seed.says(d, "missed_again", "Куда к вам   ногами дойти!", parsed("deny", 0.3, "miss"))
    await seed.says(d, "trained", "где оплатить?", parsed("payment_methods", 0.3, "miss"))
    await seed.says(
        d, "old", "давнее сообщение", parsed("balance", 0.2, "miss"), ago=timedelta(days=20)
    )
    await seed.says(d, "reviewed", "уже разобрано", parsed("balance", 0.2, "miss"))
    await seed.says(d, "skipped_text", "спам спам спам", parsed("balance", 0.2, "miss"))
    await seed.says(d, "skipped_again", "Спам, спам, спам", parsed("balance", 0.2, "miss"))
    e = await seed.conversation()  # a flow handing off by itself is not a misroute
    await seed.says(e, "fine", "хочу пожаловаться на мастера", parsed("complaint", 0.9))
    await seed.says(e, "complaint_handoff", "он нахамил", parsed("complaint", 0.9))
    await seed.escalated_before(e, "complaint_handoff")
    async with db.session() as s, s.begin():
        for name, text in [("reviewed", "уже разобрано"), ("skipped_text", "спам спам спам")]:
            s.add(NluReview(message_id=seed.ids[name], intent=None, text=text, operator_id=None))

    training = Training(tmp_path, FakeModel(), review_below=0.65)
    known = {learned.example_key("где оплатить")}
    async with db.session() as s:
        items = await review_list(s, training, known=known, tz=UTC, now=NOW)
    by_text = {i["text"]: i for i in items}
    ids = seed.ids
    assert [i["message_id"] for i in items] == [
        ids["missed_again"],
        ids["confident_but_wrong"],
        ids["picked"],
        ids["unsure_then_human"],
    ]  # newest first; nothing else is listed

    grouped = by_text["Куда к вам ногами дойти!"]
    assert grouped["count"] == 2 and grouped["message_ids"] == [ids["missed"], ids["missed_again"]]
    assert [r["code"] for r in grouped["reasons"]] == ["miss", "none"]
    assert grouped["guess"]["intent"] == "deny" and grouped["guess"]["percent"] == "30%"
    assert [r["intent"] for r in grouped["ranking"]] == ["deny", "offices", "complaint"]

    human = by_text["ваша контора где находится"]
    assert [r["code"] for r in human["reasons"]] == ["unsure", "human"]
    assert human["channel"] == "vk" and human["channel_label"] == "VK"
    assert human["preselect"] == "offices"

    assert [r["code"] for r in by_text["а у вас есть жёлтые сим"]["reasons"]] == ["human"]

    picked = by_text["вы где сидите живьём"]
    assert picked["picked"] == "offices" and picked["preselect"] == "offices"

    # A shorter window and a lower cap
    training.limit = 1
    async with db.session() as s:
        assert len(await review_list(s, training, known=known, tz=UTC, now=NOW)) == 1
        training.days = 30
        training.limit = 100
        older = await review_list(s, training, known=known, tz=UTC, now=NOW)
    assert "давнее сообщение" in {i["text"] for i in older}


# -- the console API, end to end ---------------------------------------------------------------------


@dataclass
class Env:
    app: App
    telegram: TelegramEmulator
    content: Path
    clients: Callable[[], Client]

    @property
    def url(self) -> str:
        return f"{self.app.url}/console"

    async def operator(self, login: str, role: str) -> int:
        async with self.app.db.session() as s, s.begin():
            op = await add_operator(
                s, login=login, name=login.capitalize(), password=PASSWORD, role=role,
                groups=["consult"],
            )  # fmt: skip
            return op.id

    async def client(self, login: str, role: str) -> Client:
        await self.operator(login, role)
        client = self.clients()
        assert (await client.log_in(login)).status == 303
        return client

    async def says(self, user: int, text: str) -> list[dict[str, Any]]:
        before = len(self.telegram.sent(user))
        self.telegram.send_text(user, text)
        return await self.telegram.wait_sent(user, before + 1)

    async def message_id(self, text: str) -> int:
        async def find() -> int | None:
            async with self.app.db.session() as s:
                return await s.scalar(
                    select(Message.id)
                    .where(Message.text == text, Message.author == "subscriber")
                    .order_by(Message.id.desc())
                )

        for _ in range(100):
            found = await find()
            if found is not None:
                return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no stored message {text!r}")


@pytest.fixture
async def env(
    start_app: Callable[..., Awaitable[App]], telegram: TelegramEmulator, content: Path
) -> AsyncIterator[Env]:
    app = await start_app(telegram=telegram_settings(telegram, "polling"), content_dir=content)
    sessions: list[aiohttp.ClientSession] = []

    def make() -> Client:
        http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        sessions.append(http)
        return Client(http, f"{app.url}/console")

    yield Env(app, telegram, content, make)
    for http in sessions:
        await http.close()


def listed(body: dict[str, Any], text: str) -> dict[str, Any] | None:
    return next((i for i in body["items"] if i["text"] == text), None)


async def test_an_editor_teaches_the_bot_a_message_it_missed(env: Env) -> None:
    user = 7701
    first = await env.says(user, MISSED)
    assert OFFICES_ANSWER not in (first[-1]["text"] or "")  # the bot did not understand
    editor = await env.client("elena", "editor")

    status, page = await editor.get("/training")
    assert status == 200 and "Обучение NLU" in page and MISSED in page
    status, body = await editor.get("/api/training")
    assert status == 200
    item = listed(body, MISSED)
    assert item is not None and [r["code"] for r in item["reasons"]] == ["miss"]
    assert item["guess"]["intent"] == "number_porting" and len(item["ranking"]) == 3
    assert "offices" in {i["name"] for i in body["intents"]} and len(body["intents"]) == 24
    assert body["review_below"] == 0.65

    started = time.perf_counter()
    status, done = await editor.post(f"/api/training/{item['message_id']}", {"intent": "offices"})
    assert status == 200, done
    assert done["file"] == "content/nlu/from_console.yml" and done["example"] == MISSED
    expected = done["model"]["expected"]
    assert done["model"]["fingerprint"] != expected  # not live yet: the reload does it

    target = env.content / "nlu" / learned.FILE_NAME
    doc = yaml.safe_load(target.read_text(encoding="utf-8"))
    assert doc["nlu"] == [{"intent": "offices", "examples": f"- {MISSED}\n"}]
    assert load_training_data([env.content / "nlu"]).fingerprint() == expected
    async with env.app.db.session() as s:
        review = await s.get(NluReview, item["message_id"])
    assert review is not None and review.intent == "offices" and review.text == MISSED
    status, body = await editor.get("/api/training")
    assert listed(body, MISSED) is None  # reviewed and trained: gone from the list

    for _ in range(600):  # the watcher polls every second; training takes one or two
        status, model = await editor.get("/api/training/model")
        if model["fingerprint"] == expected:
            break
        await asyncio.sleep(0.05)
    took = time.perf_counter() - started
    assert model["fingerprint"] == expected, "the new model never went live"
    assert model["engine"] == "embedded"
    print(f"\nadd -> new model live: {took:.2f} s")
    assert datetime.fromisoformat(model["live_since"]) > datetime.now(UTC) - timedelta(seconds=60)

    engine = env.app.service.engine
    assert engine is not None
    parse = await engine.parse(MISSED)
    assert parse.intent == "offices" and parse.confidence >= 0.4
    again = await env.says(user, MISSED)  # the subscriber asks the same again
    assert again[-1]["text"].startswith(OFFICES_ANSWER)


async def test_roles_csrf_and_refusals(env: Env) -> None:
    await env.says(7702, MISSED)
    await env.says(7703, "где оплатить")  # understood, and already a training example
    # «🤷 Другое» under the bot's suggestions: the list says so
    tips = await env.says(7704, "вы где сидите живьём")
    env.telegram.press_button(7704, tips[-1]["message_id"], NONE_OF_THESE)
    await env.telegram.wait_sent(7704, len(tips) + 1)
    missed_id = await env.message_id(MISSED)
    known_id = await env.message_id("где оплатить")
    files = digest(env.content / "nlu")

    operator = await env.client("oleg", "operator")
    assert (await operator.get("/training"))[0] == 403
    status, body = await operator.get("/api/training")
    assert status == 403 and "editors and supervisors" in body["error"]
    status, _ = await operator.post(f"/api/training/{missed_id}", {"intent": "offices"})
    assert status == 403
    for role in ("supervisor", "admin"):
        boss = await env.client(f"boss-{role}", role)
        assert (await boss.get("/training"))[0] == 200
        assert (await boss.get("/api/training"))[0] == 200

    editor = await env.client("elena", "editor")
    status, body = await editor.get("/api/training")
    other = listed(body, "вы где сидите живьём")
    assert other is not None and [r["code"] for r in other["reasons"]] == ["miss", "none"]
    path = f"/api/training/{missed_id}"
    status, body = await editor.post(path, {"intent": "offices"}, csrf=None)
    assert status == 403 and "CSRF" in body["error"]
    status, body = await editor.post(path, {"intent": "offices"}, csrf="wrong")
    assert status == 403
    status, body = await editor.post(path, {"intent": "no_such_intent"})
    assert status == 400 and "unknown intent 'no_such_intent'" in body["error"]
    status, body = await editor.post(path, {})
    assert status == 400 and "ignore" in body["error"]
    status, body = await editor.post(path, {"intent": "offices", "ignore": True})
    assert status == 400
    status, body = await editor.post(f"/api/training/{known_id}", {"intent": "balance"})
    assert status == 409
    assert "already an example of intent 'payment_methods'" in body["error"]
    status, body = await editor.post("/api/training/999999", {"intent": "offices"})
    assert status == 404
    assert digest(env.content / "nlu") == files  # nothing written by any refusal

    # Skipping: the row leaves the list, no file changes, the verdict is stored.
    status, body = await editor.post(path, {"ignore": True})
    assert status == 200 and body == {"ok": True, "ignored": missed_id}
    assert digest(env.content / "nlu") == files
    async with env.app.db.session() as s:
        review = await s.get(NluReview, missed_id)
    assert review is not None and review.intent is None
    status, body = await editor.get("/api/training")
    assert listed(body, MISSED) is None and listed(body, "вы где сидите живьём") is not None
    status, body = await editor.post(path, {"intent": "offices"})
    assert status == 409 and "already skipped by Elena" in body["error"]
