"""Editing the training data while the bot runs: a good edit goes live, a broken one is rejected
with file:line in the log and the model in use keeps answering."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from supportbot.nlu_setup import ReloadingEngine
from supportbot.settings import Settings
from tests.support import CONTENT

NEW_EXAMPLES = """
- intent: payment_methods
  examples: |
    - зеленый бобер
    - зеленый бобер пришел
    - про зеленого бобра
    - зеленым бобром оплачу
"""


@pytest.fixture
def content(tmp_path: Path) -> Path:
    shutil.copytree(CONTENT, tmp_path / "content")
    return tmp_path / "content"


async def test_edits_go_live_and_broken_edits_are_rejected(
    content: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(content_dir=content, data_dir=tmp_path / "data")
    engine = await ReloadingEngine.start(settings)
    watcher = asyncio.create_task(engine.watch(interval=0.2))
    try:
        before = await engine.parse("зеленый бобер")
        assert before.intent != "payment_methods" or before.confidence < 0.4

        broken = content / "nlu" / "billing.yml"
        good_text = broken.read_text(encoding="utf-8")
        broken.write_text(good_text.replace("- intent: balance", "- intent: [balance"), "utf-8")
        with caplog.at_level(logging.ERROR):
            await asyncio.sleep(1.5)
        assert f"{broken}:" in caplog.text and "current model stays in use" in caplog.text
        assert (await engine.parse("где оплатить")).intent == "payment_methods"  # still answering

        broken.write_text(good_text + NEW_EXAMPLES, "utf-8")
        for _ in range(40):  # goes live within 2 s (training takes about one)
            await asyncio.sleep(0.1)
            after = await engine.parse("зеленый бобер")
            if after.intent == "payment_methods":
                break
        assert after.intent == "payment_methods" and after.confidence >= 0.4
    finally:
        watcher.cancel()
        await engine.close()
