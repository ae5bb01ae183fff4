"""The conversation tests of a content folder (a draft in the console studio), run through the
whole product as `supportbot dialogs test` runs them, one JSON-able result per story and
channel. Kept apart from supportbot/app.py: the story driver starts an App of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dialogs.storytests import load_stories, story_files
from supportbot.settings import Settings
from supportbot.storydriver import run_stories


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
