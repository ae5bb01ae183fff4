"""The console studio's ways to try a draft before it is published, through the whole product:
the conversation tests of a content folder as `supportbot dialogs test` runs them (one JSON-able
result per story and channel), and chats with the draft (`DraftTrials`). Kept apart from
supportbot/app.py: the story driver starts an App of its own."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from dialogs.storytests import Reply, load_stories, story_files
from supportbot.settings import Settings
from supportbot.storydriver import AppDriver, Harness, run_stories, start_harness, stop_harness


async def run_content_tests(settings: Settings, folder: Path) -> list[dict[str, Any]]:
    stories = load_stories(story_files(folder), folder.parent)
    run_settings = settings.model_copy(update={"content_dir": folder, "content_store": "files"})
    outcomes = await run_stories(run_settings, stories)
    return [
        {
            "name": o.story.name,
            "file": f"{o.story.file}:{o.story.line}",
            "channel": o.channel,
            "ok": o.ok,
            "failure": o.failure or "",
            "transcript": list(o.transcript[-8:]),
        }
        for o in outcomes
    ]


class DraftTrials:
    """Chats with a draft before it is published (the studio's «Попробовать черновик»): the
    draft runs in an app of its own, as the conversation tests do (the emulators, both real
    bots, a fresh SQLite database, the demo backend), one per draft fingerprint, restarted when
    the draft changes and stopped after `IDLE` seconds unused. Each editor is one Telegram
    subscriber of it; `say` writes, `press` presses a button of the latest message showing it."""

    IDLE = 600.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = asyncio.Lock()
        self._key: str | None = None
        self._harness: Harness | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._drivers: dict[str, AppDriver] = {}
        self._shown: dict[str, list[Reply]] = {}
        self._used = 0.0
        self._reaper: asyncio.Task[None] | None = None

    async def act(
        self, tree: dict[str, bytes], who: str, *, text: str | None = None, press: str | None = None
    ) -> dict[str, Any]:
        async with self._lock:
            driver = await self._driver(tree, who)
            if press is not None:
                shown = self._shown.get(who, [])
                owner = next((r for r in reversed(shown) if press in r.buttons), None)
                if owner is None:
                    raise ValueError(f"нет кнопки «{press}» в последних сообщениях")
                turn = await driver.press(owner, press)
            else:
                turn = await driver.say(text or "")
            self._shown.setdefault(who, []).extend(turn.replies)
            self._shown[who] = self._shown[who][-10:]
            self._used = asyncio.get_running_loop().time()
        return {
            "intent": turn.intent,
            "replies": [
                {"text": r.text, "buttons": list(r.buttons), "image": r.image, "sticker": r.sticker}
                for r in turn.replies
            ],
        }

    async def reset(self, who: str) -> None:
        """A new subscriber for `who`: the conversation starts over."""
        async with self._lock:
            self._drivers.pop(who, None)
            self._shown.pop(who, None)

    async def _driver(self, tree: dict[str, bytes], who: str) -> AppDriver:
        from dialogs.content_tree import FOLDER, fingerprint, write_tree

        key = fingerprint(tree)
        if key != self._key or self._harness is None:
            await self._stop()
            self._tmp = tempfile.TemporaryDirectory(prefix="supportbot-draft-")
            root = Path(self._tmp.name)
            await asyncio.to_thread(write_tree, tree, root / FOLDER)
            settings = self.settings.model_copy(
                update={"content_dir": root / FOLDER, "content_store": "files"}
            )
            (root / "data").mkdir()
            self._harness = await start_harness(settings, root / "data")
            self._key = key
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.create_task(self._reap(), name="draft-trials")
        driver = self._drivers.get(who)
        if driver is None:
            driver = self._drivers[who] = AppDriver(self._harness, "telegram")
        return driver

    async def _reap(self) -> None:
        loop = asyncio.get_running_loop()
        while self._harness is not None:
            await asyncio.sleep(30)
            async with self._lock:
                if self._harness is not None and loop.time() - self._used > self.IDLE:
                    await self._stop()

    async def _stop(self) -> None:
        if self._harness is not None:
            await stop_harness(self._harness)
        self._harness, self._key = None, None
        self._drivers.clear()
        self._shown.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        async with self._lock:
            await self._stop()
