"""The content studio's check as you type: `POST /console/api/studio/response/check` on an app
serving content versions from SQLite, 10 edits that validate and 10 with a broken template.
Run: `.venv/bin/python bench/studio.py` (prints p50 and max)."""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp

from handoff.auth import add_operator
from supportbot.app import App
from supportbot.settings import Settings
from tests.e2e.conftest import free_port


async def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    app = App(
        Settings(
            database_url=f"sqlite:///{tmp / 'b.db'}",
            data_dir=tmp,
            http_port=free_port(),
            content_store="database",
        )
    )
    await app.start()
    async with app.db.session() as s, s.begin():
        await add_operator(
            s, login="ed", name="Ed", password="correct-horse-battery", role="editor", groups=[]
        )
    base = f"{app.url}/console"
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        t = re.search(
            r'name="csrf" value="([^"]+)"', await (await http.get(base + "/login")).text()
        ).group(1)
        await http.post(
            base + "/login", data={"login": "ed", "password": "correct-horse-battery", "csrf": t}
        )
        csrf = re.search(
            r'csrf-token" content="([^"]*)"', await (await http.get(base + "/studio")).text()
        ).group(1)
        resp = await (await http.get(base + "/api/studio/response?name=handoff")).json()
        times = {"ok": [], "error": []}
        for i in range(20):
            fields = resp["fields"]
            kind = "error" if i % 2 else "ok"
            fields["variants"][0]["text"] = f"Передаю чат специалисту {i}" + (
                " {nobody}" if i % 2 else ""
            )
            t0 = time.perf_counter()
            async with http.post(
                base + "/api/studio/response/check",
                json={"name": "handoff", "fields": fields},
                headers={"X-CSRF-Token": csrf},
            ) as r:
                await r.json()
            times[kind].append((time.perf_counter() - t0) * 1000)
        for k, v in times.items():
            print(
                f"check as you type ({k}): p50 {statistics.median(v):.0f} ms, max {max(v):.0f} ms, n={len(v)}"
            )
    await app.stop()


asyncio.run(main())
