"""Queries for content versions and the editors' draft (the tables `content_blobs`,
`content_versions`, `content_version_files`, `content_draft_files`).

A file tree is a `dict[str, bytes]` from a path relative to the content folder (`dialogs/bot.yml`)
to the file's bytes. Bytes are stored once per distinct content (`content_blobs`, by SHA-256);
versions and the draft refer to them. What a version means (validation, diff, which one is live)
is dialogs/versions.py's business; this module only reads and writes rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    ContentBlob,
    ContentDraftFile,
    ContentTestRun,
    ContentVersion,
    ContentVersionFile,
    utcnow,
)

Tree = dict[str, bytes]


class DraftConflict(Exception):
    """The draft file changed since the editor loaded it (someone else saved it)."""

    def __init__(self, path: str, revision: int, updated_by: str | None, at: datetime) -> None:
        super().__init__(path)
        self.path, self.revision, self.updated_by, self.at = path, revision, updated_by, at


@dataclass(frozen=True, slots=True)
class DraftFile:
    data: bytes
    revision: int
    updated_by: str | None
    updated_at: datetime


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _put_blobs(session: AsyncSession, tree: Tree) -> dict[str, str]:
    """Store the bytes not stored yet; {path: sha256}."""
    shas = {path: sha(data) for path, data in tree.items()}
    wanted = set(shas.values())
    have: set[str] = set()
    listed = sorted(wanted)
    for start in range(0, len(listed), 500):
        chunk = listed[start : start + 500]
        have |= set(
            (
                await session.scalars(
                    select(ContentBlob.sha256).where(ContentBlob.sha256.in_(chunk))
                )
            ).all()
        )
    missing: dict[str, bytes] = {}
    for path, digest in shas.items():
        if digest not in have:
            missing[digest] = tree[path]
    if missing:
        # Another process may store the same bytes meanwhile: theirs are the same, keep either.
        dialect = session.get_bind().dialect.name
        module = postgresql if dialect == "postgresql" else sqlite
        rows = [{"sha256": d, "data": data} for d, data in missing.items()]
        for start in range(0, len(rows), 200):
            stmt = module.insert(ContentBlob).values(rows[start : start + 200])
            await session.execute(stmt.on_conflict_do_nothing(index_elements=["sha256"]))
    return shas


async def lock(session: AsyncSession) -> None:
    """Serialize writers of versions until the transaction ends (PostgreSQL: an advisory lock;
    SQLite: the database's one writer)."""
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})


_LOCK_KEY = 0x5C0_17E4  # "content versions"


async def _blobs(session: AsyncSession, shas: set[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    listed = sorted(shas)
    for start in range(0, len(listed), 500):
        rows = await session.execute(
            select(ContentBlob.sha256, ContentBlob.data).where(
                ContentBlob.sha256.in_(listed[start : start + 500])
            )
        )
        out.update({digest: bytes(data) for digest, data in rows})
    return out


async def latest_version_id(session: AsyncSession) -> int | None:
    """The live version: the newest one (a restore is a new version too)."""
    return await session.scalar(select(func.max(ContentVersion.id)))


async def get_version(session: AsyncSession, version_id: int) -> ContentVersion | None:
    return await session.get(ContentVersion, version_id)


async def list_versions(session: AsyncSession, limit: int = 100) -> list[ContentVersion]:
    rows = await session.scalars(
        select(ContentVersion).order_by(ContentVersion.id.desc()).limit(limit)
    )
    return list(rows)


async def version_tree(session: AsyncSession, version_id: int) -> Tree:
    rows = (
        await session.execute(
            select(ContentVersionFile.path, ContentVersionFile.sha256).where(
                ContentVersionFile.version_id == version_id
            )
        )
    ).all()
    blobs = await _blobs(session, {digest for _p, digest in rows})
    return {path: blobs[digest] for path, digest in sorted(rows)}


async def add_version(
    session: AsyncSession,
    tree: Tree,
    *,
    author: str,
    comment: str,
    kind: str,
    parent_id: int | None,
    summary: dict[str, Any],
    restored_from: int | None = None,
) -> ContentVersion:
    shas = await _put_blobs(session, tree)
    version = ContentVersion(
        author=author[:64],
        comment=comment,
        kind=kind,
        parent_id=parent_id,
        restored_from=restored_from,
        summary=summary,
        created_at=utcnow(),
    )
    session.add(version)
    await session.flush()
    session.add_all(
        ContentVersionFile(version_id=version.id, path=path, sha256=digest)
        for path, digest in shas.items()
    )
    await session.flush()
    return version


async def draft(session: AsyncSession) -> dict[str, DraftFile]:
    rows = (await session.scalars(select(ContentDraftFile))).all()
    blobs = await _blobs(session, {row.sha256 for row in rows})
    return {
        row.path: DraftFile(blobs[row.sha256], row.revision, row.updated_by, row.updated_at)
        for row in sorted(rows, key=lambda r: r.path)
    }


async def reset_draft(session: AsyncSession, tree: Tree, author: str | None) -> None:
    """The draft becomes `tree` (after a publish or a restore); revisions keep growing so an
    editor holding an older page is still told."""
    shas = await _put_blobs(session, tree)
    rows = {row.path: row for row in (await session.scalars(select(ContentDraftFile))).all()}
    now = utcnow()
    for path, row in rows.items():
        if path not in shas:
            await session.delete(row)
        elif row.sha256 != shas[path]:
            row.sha256, row.revision, row.updated_by, row.updated_at = (
                shas[path],
                row.revision + 1,
                author,
                now,
            )
    for path, digest in shas.items():
        if path not in rows:
            session.add(ContentDraftFile(path=path, sha256=digest, revision=1, updated_by=author))
    await session.flush()


async def save_draft_file(
    session: AsyncSession,
    path: str,
    data: bytes | None,
    *,
    revision: int,
    author: str,
) -> int:
    """Save one draft file (None deletes it) if its revision is still `revision` (0: a new
    file); its new revision, or DraftConflict. The row is locked while checked."""
    row = await session.scalar(
        select(ContentDraftFile).where(ContentDraftFile.path == path).with_for_update()
    )
    current = row.revision if row is not None else 0
    if current != revision:
        assert row is not None or revision != 0
        raise DraftConflict(
            path,
            current,
            row.updated_by if row is not None else None,
            row.updated_at if row is not None else utcnow(),
        )
    if data is None:
        if row is not None:
            await session.execute(delete(ContentDraftFile).where(ContentDraftFile.path == path))
        return 0
    digest = (await _put_blobs(session, {path: data}))[path]
    if row is None:
        session.add(ContentDraftFile(path=path, sha256=digest, revision=1, updated_by=author))
        await session.flush()
        return 1
    if row.sha256 != digest:
        row.sha256, row.revision, row.updated_by, row.updated_at = (
            digest,
            row.revision + 1,
            author,
            utcnow(),
        )
        await session.flush()
    return row.revision


async def record_test_run(
    session: AsyncSession,
    fingerprint: str,
    *,
    passed: int,
    failed: int,
    results: list[Any],
    run_by: str,
) -> None:
    row = await session.get(ContentTestRun, fingerprint)
    if row is None:
        row = ContentTestRun(fingerprint=fingerprint)
        session.add(row)
    row.passed, row.failed, row.results, row.run_by, row.run_at = (
        passed,
        failed,
        results,
        run_by[:64],
        utcnow(),
    )
    await session.flush()


async def get_test_run(session: AsyncSession, fingerprint: str) -> ContentTestRun | None:
    return await session.get(ContentTestRun, fingerprint)
