"""Hot reload of the dialogs: edits to content/dialogs/ go live while the bot runs.

`ReloadingContent.current` is the version every new turn uses. `watch()` polls the files'
times and sizes; a change is loaded and checked in a worker thread, and only content without
errors replaces the live version (one attribute swap: a turn in progress keeps the version it
started with). A broken edit is logged with the same `file:line:col: message` lines that
`supportbot dialogs validate` prints, and the last good version stays live.

With content versions in the database (SUPPORTBOT_CONTENT_STORE=database), the folder is the
published version laid out by dialogs/versions.py, and `switch()` moves to the next one.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from dialogs.actions import Actions
from dialogs.content import Content, content_files, load_content
from dialogs.yamlsrc import ContentError

log = logging.getLogger(__name__)

Stamp = tuple[tuple[str, float, int], ...]


class ReloadingContent:
    def __init__(
        self,
        content_dir: Path,
        intents: Callable[[], Iterable[str]],
        *,
        actions: Actions,
        groups: Iterable[str] | None = None,
    ) -> None:
        """`intents` gives the NLU's current intent names (they change when the NLU data does);
        `actions` is the flow-action registry the content is checked against."""
        self.content_dir = content_dir
        self.intents = intents
        self.actions = actions
        self.groups = list(groups) if groups is not None else None
        self._stamp = (stamp(content_dir), tuple(intents()))
        self.current: Content = load_content(
            content_dir, intents(), actions=actions, groups=self.groups
        )
        self.last_error: str | None = None

    async def watch(self, interval: float = 0.5) -> None:
        """Reload when a file or the NLU's set of intents changes (until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            now = (await asyncio.to_thread(stamp, self.content_dir), tuple(self.intents()))
            if now != self._stamp:
                self._stamp = now
                await self.reload()

    async def switch(self, content_dir: Path) -> bool:
        """Serve the content in `content_dir` from now on (a new published version laid out by
        dialogs/versions.py); True if it went live (it keeps the last good one otherwise)."""
        self.content_dir = content_dir
        self._stamp = (await asyncio.to_thread(stamp, content_dir), tuple(self.intents()))
        return await self.reload()

    async def reload(self) -> bool:
        """True if a new version went live."""
        try:
            content = await asyncio.to_thread(
                functools.partial(
                    load_content,
                    self.content_dir,
                    list(self.intents()),
                    actions=self.actions,
                    groups=self.groups,
                )
            )
        except ContentError as exc:
            self.last_error = str(exc)
            log.error("dialogs: edit rejected, the previous version stays live:\n%s", exc)
            return False
        if content.fingerprint == self.current.fingerprint:
            self.last_error = None  # the live version is what is on disk again
            return False
        self.current, self.last_error = content, None
        for warning in content.warnings:
            log.warning("dialogs: %s", warning)
        log.info(
            "dialogs: new version live (%s, %d flows)", content.fingerprint, len(content.flows)
        )
        return True


def stamp(content_dir: Path) -> Stamp:
    out = []
    for path in content_files(content_dir):
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((path.name, st.st_mtime, st.st_size))
    return tuple(out)
