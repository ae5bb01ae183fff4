"""Content versions in the database (dialogs/versions.py, storage/content_store.py), on SQLite and
PostgreSQL: the reference content round-trips byte for byte through `supportbot content import`
and `export`; a broken tree is refused with `file:line:col` and changes nothing; a publish needs
a clean draft with passing tests; a save over someone else's change is refused; a restore is a
new version; a follower switches to each new version."""

from __future__ import annotations

import asyncio
import filecmp
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dialogs.content_tree import fingerprint, read_tree
from dialogs.versions import ContentVersions, PublishRefused
from dialogs.yamlsrc import ContentError
from storage import content_store
from storage.content_store import DraftConflict
from storage.db import Database
from tests.support import CONTENT, REFERENCE_ACTIONS, ROOT

GROUPS = ["consult", "tech", "finance", "complaints"]
OLD = "Наши салоны связи в Пушкине 📍"
NEW = "Мы переехали! Новый салон — Оранжерейная, 40 🎉"
SERVICE = "dialogs/service.yml"


def versions_of(db: Database, tmp_path: Path) -> ContentVersions:
    return ContentVersions(db, REFERENCE_ACTIONS, GROUPS, tmp_path / "cache")


def supportbot(*args: str, cwd: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env.update(
        PYTHONPATH=str(ROOT), SUPPORTBOT_DATABASE_URL=db_url, SUPPORTBOT_DATA_DIR=str(cwd / "var")
    )
    return subprocess.run(
        [sys.executable, "-m", "supportbot", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_reference_content_round_trips_byte_for_byte_through_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rt.db'}"
    done = supportbot("content", "import", str(CONTENT), "-m", "из git", cwd=tmp_path, db_url=url)
    assert done.returncode == 0, done.stderr
    assert "version 1 published" in done.stdout
    again = supportbot("content", "import", str(CONTENT), cwd=tmp_path, db_url=url)
    assert "unchanged" in again.stdout  # the same tree is no new version

    out = tmp_path / "exported"
    done = supportbot("content", "export", str(out), cwd=tmp_path, db_url=url)
    assert done.returncode == 0, done.stderr
    assert read_tree(out) == read_tree(CONTENT)
    compare = filecmp.dircmp(out, CONTENT)
    assert not compare.left_only and not compare.right_only and not compare.diff_files
    binary = [p for p in read_tree(CONTENT) if p.endswith(".png")]
    assert binary and all((out / p).read_bytes() == (CONTENT / p).read_bytes() for p in binary)

    listing = supportbot("content", "versions", cwd=tmp_path, db_url=url)
    assert "из git" in listing.stdout


def test_a_broken_folder_is_refused_with_positions_and_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    assert supportbot("content", "import", str(CONTENT), cwd=tmp_path, db_url=url).returncode == 0
    broken = tmp_path / "broken"
    shutil.copytree(CONTENT, broken)
    text = (broken / SERVICE).read_text("utf-8")
    quoted = f'text: "{OLD} Во всех есть терминалы для оплаты наличными 🏧"'
    assert text.count(quoted) == 1
    (broken / SERVICE).write_text(text.replace(quoted, quoted[:-1]), "utf-8")  # a missing quote
    line = text[: text.index(quoted)].count("\n") + 1

    done = supportbot("content", "import", str(broken), cwd=tmp_path, db_url=url)
    assert done.returncode == 1
    problems = [ln for ln in done.stderr.splitlines() if ":" in ln and "problem(s)" not in ln]
    # One missing quote is one problem, where it is: not dozens in other files.
    assert len(problems) == 1, done.stderr
    # (the parser notices the unclosed quote on the next line, where its key is missing)
    assert problems[0].startswith(
        (f"{broken}/{SERVICE}:{line}:", f"{broken}/{SERVICE}:{line + 1}:")
    )
    assert "YAML syntax" in problems[0]
    assert "nothing imported" in done.stderr
    listing = supportbot("content", "versions", cwd=tmp_path, db_url=url)
    assert len(listing.stdout.strip().splitlines()) == 1


async def test_publish_needs_a_clean_draft_with_passing_tests(db: Database, tmp_path: Path) -> None:
    versions = versions_of(db, tmp_path)
    first = await versions.seed(CONTENT)
    assert await versions.seed(CONTENT) == first  # seeded once
    draft = await versions.draft()
    assert draft.tree == read_tree(CONTENT)
    revision = draft.files[SERVICE].revision

    # A broken template: refused at publish with the problem's position.
    text = draft.files[SERVICE].data.decode()
    broken = text.replace(OLD, OLD + " {no_such_slot}", 1)
    revision = await versions.save(SERVICE, broken.encode(), revision=revision, author="ed")
    with pytest.raises(PublishRefused) as refused:
        await versions.publish(author="ed", comment="сломано")
    assert any(
        p.file == f"content/{SERVICE}" and "no_such_slot" in p.message
        for p in refused.value.problems
    )

    # Fixed, but no tests were run on this draft; then a failing run; then a passing one.
    fixed = text.replace(OLD, NEW, 1)
    revision = await versions.save(SERVICE, fixed.encode(), revision=revision, author="ed")
    with pytest.raises(PublishRefused, match="запустите тесты"):
        await versions.publish(author="ed", comment="новый адрес")
    tree = (await versions.draft()).tree
    await versions.record_tests(tree, [{"ok": False}, {"ok": True}], author="ed")
    with pytest.raises(PublishRefused, match="Тесты не проходят"):
        await versions.publish(author="ed", comment="новый адрес")
    await versions.record_tests(tree, [{"ok": True}, {"ok": True}], author="ed")
    second = await versions.publish(author="ed", comment="новый адрес")
    assert second > first

    listed = await versions.versions()
    assert [v["id"] for v in listed] == [second, first]
    assert listed[0]["author"] == "ed" and listed[0]["comment"] == "новый адрес"
    assert listed[0]["changed"] == [SERVICE]
    diff = await versions.version_diff(second)
    assert (
        diff is not None
        and f'+              text: "{NEW}' in diff
        and f'-              text: "{OLD}' in diff
    )

    # Another editor saving over the change they have not seen is refused.
    with pytest.raises(DraftConflict) as conflict:
        await versions.save(SERVICE, text.encode(), revision=1, author="other")
    assert conflict.value.updated_by == "ed"

    # A restore of the first version is a new version with the old text; the draft follows.
    third = await versions.restore(first, author="sup")
    assert third > second
    vid, live = await versions.latest()
    assert vid == third and live == read_tree(CONTENT)
    assert (await versions.draft()).tree == read_tree(CONTENT)
    assert (await versions.versions())[0]["restored_from"] == first


async def test_a_follower_switches_to_each_new_version(db: Database, tmp_path: Path) -> None:
    versions = versions_of(db, tmp_path)
    await versions.seed(CONTENT)
    seen: list[Path] = []
    switched = asyncio.Event()

    async def switch(folder: Path) -> bool:
        seen.append(folder)
        switched.set()
        return True

    following = asyncio.create_task(versions.follow(switch, interval=0.1))
    try:
        async with asyncio.timeout(10):
            await switched.wait()
        assert read_tree(seen[-1]) == read_tree(CONTENT)
        tree = read_tree(CONTENT)
        tree[SERVICE] = tree[SERVICE].replace(OLD.encode(), NEW.encode())
        second = await versions.import_tree(tree, author="t", comment="new")
        switched.clear()
        async with asyncio.timeout(10):
            await switched.wait()
        assert NEW in (seen[-1] / SERVICE).read_text("utf-8")
        assert seen[-1].name == "content"  # problems read content/dialogs/...
        assert seen[-1].parent.name == fingerprint(tree)
    finally:
        following.cancel()
    async with db.session() as s:
        assert await content_store.latest_version_id(s) == second


async def test_import_refuses_errors_without_a_new_version(db: Database, tmp_path: Path) -> None:
    versions = versions_of(db, tmp_path)
    await versions.seed(CONTENT)
    tree = read_tree(CONTENT)
    tree[SERVICE] = tree[SERVICE].replace(b"      - call: offices\n", b"      - say: nope\n", 1)
    with pytest.raises(ContentError) as caught:
        await versions.import_tree(tree, author="t", comment="bad")
    assert any("unknown response 'nope'" in str(p) for p in caught.value.problems)
    assert len(await versions.versions()) == 1
