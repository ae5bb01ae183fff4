"""NLU improvement loop benchmark: from an editor's "Добавить пример" to the new model answering.

Starts the real App (embedded NLU, SQLite, no channels) on a temporary copy of content/, stores N
subscriber messages the bot missed, logs an editor in to the console and, for each message:
POST /console/api/training/{id} {"intent": ...}, then polls GET /console/api/training/model every
20 ms until the model trained on the new data is live. The path is the app's own: the console
writes content/nlu/from_console.yml, `ReloadingEngine.watch` (1 s poll) notices and retrains.
The last model is then asked the texts it learned.

    .venv/bin/python bench/nlu_learn.py [--examples 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from handoff.auth import add_operator  # noqa: E402
from handoff.config import HandoffSettings  # noqa: E402
from storage.models import ChannelAccount, Conversation, Message, Subscriber  # noqa: E402
from supportbot.app import App  # noqa: E402
from supportbot.settings import Settings  # noqa: E402

CONTENT = ROOT / "content"
TEXTS = [
    ("куда к вам ногами дойти", "offices"),
    ("чё за фигня с инетом опять", "internet_down"),
    ("абракадабра шмяк", "out_of_scope"),
    ("шуруп в розетке", "out_of_scope"),
    ("зеленый бобер", "payment_methods"),
    ("в какое окошко идти с паспортом", "offices"),
    ("телек рябит полосами", "tv_down"),
    ("денежка куда утекает", "call_details"),
    ("трубу увели в метро", "block_number"),
    ("а с симкой в турцию можно", "roaming"),
    ("мастера когда пришлёте", "technician_visit"),
    ("хочу чтобы и у мамы был ваш инет", "connect_home"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(app: App, texts: list[str]) -> list[int]:
    async with app.db.session() as s, s.begin():
        await add_operator(
            s, login="bench", name="Bench", password="bench-password-1", role="editor", groups=[]
        )
        sub = Subscriber(display_name="Bench", data={})
        s.add(sub)
        await s.flush()
        acc = ChannelAccount(
            subscriber_id=sub.id, channel="telegram", external_user_id="1", chat_id="1"
        )
        s.add(acc)
        await s.flush()
        conv = Conversation(
            subscriber_id=sub.id, channel_account_id=acc.id, channel="telegram", slots={}
        )
        s.add(conv)
        await s.flush()
        ids = []
        for text in texts:
            m = Message(
                conversation_id=conv.id,
                direction="in",
                author="subscriber",
                text=text,
                nlu={"intent": "out_of_scope", "confidence": 0.2, "handled_as": "miss"},
            )
            s.add(m)
            await s.flush()
            ids.append(m.id)
        return ids


async def log_in(http: aiohttp.ClientSession, base: str) -> str:
    async with http.get(f"{base}/login") as resp:
        token = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert token is not None
    form = {"login": "bench", "password": "bench-password-1", "csrf": token.group(1)}
    async with http.post(f"{base}/login", data=form, allow_redirects=False) as resp:
        assert resp.status == 303, resp.status
    async with http.get(f"{base}/") as resp:
        csrf = re.search(r'<meta name="csrf-token" content="([^"]*)"', await resp.text())
    assert csrf is not None
    return csrf.group(1)


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        content = Path(tmp) / "content"
        shutil.copytree(CONTENT, content, ignore=shutil.ignore_patterns("tests"))
        settings = Settings(
            database_url=f"sqlite:///{Path(tmp) / 'bench.db'}",
            content_dir=content,
            data_dir=Path(tmp),
            http_port=free_port(),
            handoff=HandoffSettings(hours={}),
        )
        app = App(settings)
        await app.start()
        try:
            pairs = TEXTS[:count]
            ids = await seed(app, [t for t, _ in pairs])
            base = f"{app.url}/console"
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                csrf = await log_in(http, base)
                posts, lives = [], []
                for (text, intent), mid in zip(pairs, ids, strict=True):
                    started = time.perf_counter()
                    async with http.post(
                        f"{base}/api/training/{mid}",
                        json={"intent": intent},
                        headers={"X-CSRF-Token": csrf},
                    ) as resp:
                        done = await resp.json()
                        assert resp.status == 200, done
                    posts.append(time.perf_counter() - started)
                    expected = done["model"]["expected"]
                    while True:
                        async with http.get(f"{base}/api/training/model") as resp:
                            model = await resp.json()
                        if model["fingerprint"] == expected:
                            break
                        await asyncio.sleep(0.02)
                    lives.append(time.perf_counter() - started)
                    print(f"  {text!r} -> {intent}: POST {posts[-1] * 1000:.0f} ms, live after "
                          f"{lives[-1]:.2f} s")  # fmt: skip
            engine = app.service.engine
            assert engine is not None
            right = 0
            for text, intent in pairs:
                right += (await engine.parse(text)).intent == intent
        finally:
            await app.stop()
    print(
        f"\n{count} examples: POST p50 {statistics.median(posts) * 1000:.0f} ms; add -> new model "
        f"live p50 {statistics.median(lives):.2f} s, max {max(lives):.2f} s "
        f"(watcher poll 1 s + embedded training); learned texts now parsed right: {right}/{count}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=10, choices=range(1, len(TEXTS) + 1))
    asyncio.run(main(parser.parse_args().examples))
