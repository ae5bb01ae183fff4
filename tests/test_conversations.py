"""The content's conversation tests (content/tests/*.yml) on both channels, through the real bots,
emulators, pipeline, NLU and demo backend; plus the `supportbot dialogs test` command itself."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dialogs.storytests import load_stories, story_files
from supportbot.settings import Settings
from supportbot.storydriver import report, run_stories
from tests.support import CONTENT, ROOT


@pytest.mark.parametrize("channel", ["telegram", "vk"])
async def test_every_conversation_story_passes(channel: str, tmp_path: Path) -> None:
    stories = load_stories(story_files(CONTENT), ROOT)
    assert len(stories) >= 30  # every flow of the reference assistant has a story
    settings = Settings(content_dir=CONTENT, data_dir=tmp_path)
    outcomes = await run_stories(settings, stories, channels=(channel,))
    assert len(outcomes) == sum(channel in s.channels for s in stories)
    assert all(o.ok for o in outcomes), report(outcomes)


def _cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "supportbot", "dialogs", "test", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_cli_reports_a_failing_story_with_its_file_and_line(tmp_path: Path) -> None:
    story = tmp_path / "wrong.yml"
    story.write_text(
        "tests:\n"
        "  - name: ожидание не сбылось\n"
        "    channels: [telegram]\n"
        "    steps:\n"
        "      - user: где оплатить?\n"
        "      - bot: {contains: 'этого текста в ответе нет'}\n",
        encoding="utf-8",
    )
    result = _cli(str(story), "--content", str(CONTENT))
    assert result.returncode == 1, result.stderr[-2000:]
    assert f"{story}:6: expected the reply to contain 'этого текста в ответе нет'" in result.stdout
    assert "0/1 conversation tests passed" in result.stdout


def test_cli_runs_selected_stories_and_exits_zero() -> None:
    result = _cli("-k", "офисы и терминалы", "--channel", "vk")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "ok   [vk] офисы и терминалы" in result.stdout
    assert "1/1 conversation tests passed" in result.stdout
