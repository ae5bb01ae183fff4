"""Content versions: the content tree kept in the database, so every app process serves the
same published version and editors work on a draft in the console (handoff/console/studio_page.py).

- A *version* is an immutable snapshot of the whole tree (storage/content_store.py); the newest
  one is live. `import_tree` (the CLI's `content import`, and the seed from `content_dir` when the
  database has none), `publish` (the draft) and `restore` (an older version, as a new one) add
  versions, each only when the tree passes the validator of `supportbot dialogs validate`.
- The *draft* is one per deployment, shared by its editors; each file has a revision and a save
  over a revision the editor has not seen is refused (`DraftConflict`).
- `follow` keeps a process on the newest version: a `content_published` event (Redis between
  processes) or, at the latest, a poll of the newest id each `POLL` seconds; the version is laid
  out under the cache folder and handed to `switch` (which loads it like a content folder).

With `mirror` (SUPPORTBOT_CONTENT_STORE=files) versions are still recorded, and each new one is
also written into the content folder, where the on-disk hot reload picks it up.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dialogs.actions import Actions
from dialogs.content_tree import (
    FOLDER,
    Tree,
    fingerprint,
    materialize,
    read_tree,
    summary,
    validate,
    write_tree,
)
from dialogs.yamlsrc import ContentError, Problem
from storage import content_store as store
from storage.db import Database, note_event

log = logging.getLogger(__name__)
KEPT = 5  # versions kept laid out under the cache folder
POLL = 1.0  # seconds between checks of the newest version id (the fallback without events)
EVENT = "content_published"


class PublishRefused(Exception):
    """Why a publish or restore did not happen (Russian, for the editor)."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True, slots=True)
class Draft:
    files: dict[str, store.DraftFile]
    base_id: int | None

    @property
    def tree(self) -> Tree:
        return {path: f.data for path, f in self.files.items()}


class ContentVersions:
    def __init__(
        self,
        db: Database,
        actions: Actions,
        groups: Iterable[str] | None,
        cache: Path,
        *,
        mirror: Path | None = None,
    ) -> None:
        self.db = db
        self.actions = actions
        self.groups = list(groups) if groups is not None else None
        self.cache = cache
        self.mirror = mirror
        self.live_id: int | None = None  # the version this process serves
        self._checking = threading.Lock()  # checks share one folder (`_check`)
        self._check_dir: Path | None = None

    # -- checking ---------------------------------------------------------------------------

    async def check(self, tree: Tree) -> list[Problem]:
        """Every problem (errors first, then warnings) the validator finds in `tree`."""
        return await asyncio.to_thread(self._check, tree)

    def _check(self, tree: Tree) -> list[Problem]:
        """In one folder kept for checks (per process): only the files that differ from the
        previous check are written, so unchanged NLU data and articles are not parsed again."""
        with self._checking:
            if self._check_dir is None:
                self.cache.mkdir(parents=True, exist_ok=True)
                self._check_dir = Path(tempfile.mkdtemp(prefix=".check-", dir=self.cache))
                atexit.register(shutil.rmtree, self._check_dir, ignore_errors=True)
            folder = self._check_dir / FOLDER
            write_tree(tree, folder, prune=True)
            return validate(folder, self.actions, self.groups)[1]

    async def _errors(self, tree: Tree) -> list[Problem]:
        return [p for p in await self.check(tree) if not p.warning]

    # -- versions ---------------------------------------------------------------------------

    async def latest(self) -> tuple[int | None, Tree]:
        async with self.db.session() as s:
            vid = await store.latest_version_id(s)
            return vid, (await store.version_tree(s, vid) if vid is not None else {})

    async def import_tree(
        self, tree: Tree, *, author: str, comment: str, kind: str = "import"
    ) -> int | None:
        """A new version from `tree` (ContentError when it has errors); None when it is what is
        live already. The draft becomes the tree."""
        errors = await self._errors(tree)
        if errors:
            raise ContentError(errors)
        return await self._add(tree, author=author, comment=comment, kind=kind, reset=True)

    async def seed(self, content_dir: Path) -> int:
        """The live version id; with none yet, `content_dir` becomes the first (a deployment that
        used files so far keeps its content). With a mirror, changes made on disk since the last
        version become a new version."""
        vid, tree = await self.latest()
        if vid is not None and self.mirror is None:
            return vid
        disk = await asyncio.to_thread(read_tree, content_dir)
        if vid is not None and disk == tree:
            return vid
        errors = await self._errors(disk)
        if errors:
            raise ContentError(errors)
        new = await self._add(
            disk,
            author="content/",
            comment=f"из папки {content_dir}",
            kind="seed",
            reset=True,
            first_only=self.mirror is None,
        )
        result = new if new is not None else vid
        assert result is not None
        return result

    async def _add(
        self,
        tree: Tree,
        *,
        author: str,
        comment: str,
        kind: str,
        reset: bool,
        restored_from: int | None = None,
        first_only: bool = False,
    ) -> int | None:
        async with self.db.transaction() as s:
            await store.lock(s)
            parent = await store.latest_version_id(s)
            if first_only and parent is not None:
                return parent  # another process seeded meanwhile
            old = await store.version_tree(s, parent) if parent is not None else {}
            if old == tree and kind != "restore":
                if reset:
                    await store.reset_draft(s, tree, author)
                return None
            version = await store.add_version(
                s,
                tree,
                author=author,
                comment=comment,
                kind=kind,
                parent_id=parent,
                summary=summary(old, tree),
                restored_from=restored_from,
            )
            if reset:
                await store.reset_draft(s, tree, author)
            note_event(s, {"type": EVENT, "version": version.id})
            vid = version.id
        log.info("content: version %d (%s) by %s: %s", vid, kind, author, comment)
        if self.mirror is not None:
            await asyncio.to_thread(write_tree, tree, self.mirror, prune=True)
        return vid

    async def publish(self, *, author: str, comment: str, require_tests: bool = True) -> int:
        """The draft as the new live version: refused while it has errors, its tests have not
        passed, or it is what is live already."""
        draft = await self.draft()
        tree = draft.tree
        errors = await self._errors(tree)
        if errors:
            raise PublishRefused(
                f"В черновике ошибки ({len(errors)}): исправьте их перед публикацией", errors
            )
        if require_tests:
            async with self.db.session() as s:
                run = await store.get_test_run(s, fingerprint(tree))
            if run is None:
                raise PublishRefused(
                    "Сначала запустите тесты: этот черновик ещё не проверялся тестами"
                )
            if run.failed:
                raise PublishRefused(
                    f"Тесты не проходят ({run.failed} из {run.passed + run.failed}): "
                    "исправьте черновик или тесты"
                )
        vid = await self._add(tree, author=author, comment=comment, kind="publish", reset=False)
        if vid is None:
            raise PublishRefused("Черновик не отличается от опубликованной версии")
        return vid

    async def restore(self, version_id: int, *, author: str, comment: str = "") -> int:
        """Version `version_id` live again, as a new version; the draft becomes it."""
        async with self.db.session() as s:
            if await store.get_version(s, version_id) is None:
                raise PublishRefused(f"Версии {version_id} нет")
            tree = await store.version_tree(s, version_id)
        errors = await self._errors(tree)
        if errors:
            raise PublishRefused(
                f"Версию {version_id} нельзя вернуть: с нынешними настройками в ней ошибки",
                errors,
            )
        vid = await self._add(
            tree,
            author=author,
            comment=comment or f"возврат к версии {version_id}",
            kind="restore",
            reset=True,
            restored_from=version_id,
        )
        assert vid is not None
        return vid

    async def versions(self, limit: int = 100) -> list[dict[str, Any]]:
        async with self.db.session() as s:
            rows = await store.list_versions(s, limit)
        return [
            {
                "id": v.id,
                "created_at": v.created_at.isoformat(),
                "author": v.author,
                "comment": v.comment,
                "kind": v.kind,
                "restored_from": v.restored_from,
                "added": v.summary.get("added", []),
                "changed": v.summary.get("changed", []),
                "removed": v.summary.get("removed", []),
            }
            for v in rows
        ]

    async def version_diff(self, version_id: int) -> str | None:
        async with self.db.session() as s:
            v = await store.get_version(s, version_id)
            return None if v is None else str(v.summary.get("diff", ""))

    # -- the draft --------------------------------------------------------------------------

    async def draft(self) -> Draft:
        async with self.db.session() as s:
            files = await store.draft(s)
            base = await store.latest_version_id(s)
            if not files and base is not None:  # never edited: the live version
                tree = await store.version_tree(s, base)
                files = {p: store.DraftFile(d, 1, None, store.utcnow()) for p, d in tree.items()}
        return Draft(files, base)

    async def save(self, path: str, data: bytes | None, *, revision: int, author: str) -> int:
        """Save one draft file (None deletes it); DraftConflict when someone saved it since
        `revision`."""
        async with self.db.transaction() as s:
            if not await store.draft(s):  # the first edit: the draft starts as the live version
                base = await store.latest_version_id(s)
                if base is not None:
                    await store.reset_draft(s, await store.version_tree(s, base), None)
            return await store.save_draft_file(s, path, data, revision=revision, author=author)

    async def record_tests(self, tree: Tree, results: list[dict[str, Any]], *, author: str) -> None:
        failed = sum(not r["ok"] for r in results)
        async with self.db.transaction() as s:
            await store.record_test_run(
                s,
                fingerprint(tree),
                passed=len(results) - failed,
                failed=failed,
                results=results,
                run_by=author,
            )

    async def test_run(self, tree: Tree) -> dict[str, Any] | None:
        """The recorded test run of this exact tree, if any."""
        async with self.db.session() as s:
            run = await store.get_test_run(s, fingerprint(tree))
        if run is None:
            return None
        return {
            "passed": run.passed,
            "failed": run.failed,
            "results": run.results,
            "run_by": run.run_by,
            "run_at": run.run_at.isoformat(),
        }

    # -- following the newest version --------------------------------------------------------

    async def layout(self, version_id: int) -> Path:
        """The version's tree as a content folder under the cache."""
        async with self.db.session() as s:
            tree = await store.version_tree(s, version_id)
        return await asyncio.to_thread(materialize, tree, self.cache)

    async def follow(
        self,
        switch: Callable[[Path], Awaitable[bool]],
        events: AsyncIterator[dict[str, Any]] | None = None,
        interval: float = POLL,
    ) -> None:
        """Serve the newest version (until cancelled): on each `content_published` event and
        every `interval` seconds, a newer id than the live one is laid out and `switch`ed to."""
        wake = asyncio.Event()

        async def listen() -> None:
            assert events is not None
            async for event in events:
                if event.get("type") == EVENT:
                    wake.set()

        listener = asyncio.create_task(listen()) if events is not None else None
        try:
            while True:
                try:
                    await self._catch_up(switch)
                except Exception:  # the database away for a moment: next round
                    log.exception("content: checking for a new version failed")
                try:
                    await asyncio.wait_for(wake.wait(), interval)
                except TimeoutError:
                    pass
                wake.clear()
        finally:
            if listener is not None:
                listener.cancel()

    async def _catch_up(self, switch: Callable[[Path], Awaitable[bool]]) -> None:
        async with self.db.session() as s:
            newest = await store.latest_version_id(s)
        if newest is None or newest == self.live_id:
            return
        folder = await self.layout(newest)
        await switch(folder)
        self.live_id = newest  # what /healthz reports: only once it answers
        log.info("content: version %d live", newest)
        await asyncio.to_thread(self._prune, folder.parent)

    def _prune(self, live: Path, keep: int = KEPT) -> None:
        """Versions laid out before stay for a restore to be quick; beyond `keep`, the oldest go
        (never the live one: images are sent from its folder)."""
        laid = sorted(
            (d for d in self.cache.iterdir() if d.is_dir() and not d.name.startswith(".")),
            key=lambda d: d.stat().st_mtime,
            reverse=True,
        )
        for old in laid[keep:]:
            if old != live:
                shutil.rmtree(old, ignore_errors=True)
