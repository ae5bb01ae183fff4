"""Content editors change the dialogs while the bot runs: a good edit is live within 2 s, a broken
edit is refused with `file:line:col` in the log and the previous version keeps answering."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from emulators.telegram import TelegramEmulator
from tests.e2e.conftest import telegram_settings
from tests.support import CONTENT

USER = 5005
OLD = "Наши салоны связи в Пушкине 📍"
NEW = "Мы переехали! Новый салон — Оранжерейная, 40 🎉"


async def until(check: Callable[[], bool], failure: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Poll `check` (the reload interval is 0.5 s; bench/dialogs.py measures the latency)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, failure
        await asyncio.sleep(0.05)


async def ask_offices(telegram: TelegramEmulator, n: int) -> str:
    telegram.send_text(USER, "где ближайший офис?")
    return str((await telegram.wait_sent(USER, n))[-1]["text"])


async def test_edits_go_live_and_broken_edits_are_refused(
    start_app: Callable[..., Any],
    telegram: TelegramEmulator,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content, ignore=shutil.ignore_patterns("tests"))
    app = await start_app(telegram=telegram_settings(telegram, "polling"), content_dir=content)
    assert (await ask_offices(telegram, 1)).startswith(OLD)

    service = content / "dialogs" / "service.yml"
    good = service.read_text(encoding="utf-8")
    assert OLD in good
    before = app.content.current.fingerprint
    service.write_text(good.replace(OLD, NEW), encoding="utf-8")
    await until(lambda: app.content.current.fingerprint != before, "the edit never went live")
    assert (await ask_offices(telegram, 2)).startswith(NEW)

    # A broken edit: a response name nobody defined. The bot keeps the last good version.
    caplog.set_level(logging.ERROR, logger="dialogs.reload")
    broken = good.replace(OLD, NEW).replace(
        "      - call: offices\n", "      - say: no_such_response\n      - call: offices\n", 1
    )
    assert broken != good.replace(OLD, NEW)
    service.write_text(broken, encoding="utf-8")
    bad_line = broken.splitlines().index("      - say: no_such_response") + 1
    await until(lambda: "no_such_response" in caplog.text, "the broken edit was not reported")
    assert f"service.yml:{bad_line}:" in caplog.text
    assert "unknown response 'no_such_response'" in caplog.text
    assert (await ask_offices(telegram, 3)).startswith(NEW)  # still the last good version

    async with aiohttp.ClientSession() as http, http.get(f"{app.url}/healthz") as resp:
        health = await resp.json()
    assert any("no_such_response" in line for line in health["dialogs"]["rejected_edit"])

    # Broken YAML is refused the same way; fixing the file clears the error.
    service.write_text(good.replace(OLD, NEW) + "\n  oops: [unclosed\n", encoding="utf-8")
    await until(lambda: "YAML syntax" in caplog.text, "broken YAML was not reported")
    assert (await ask_offices(telegram, 4)).startswith(NEW)
    service.write_text(good, encoding="utf-8")
    await until(lambda: app.content.last_error is None, "the fixed file was not reloaded")
    assert (await ask_offices(telegram, 5)).startswith(OLD)
