"""`supportbot subscribers export|erase` and `supportbot retention run` as an administrator uses
them, on a SQLite file: JSON out (stdout or a private file), one clear line and exit 2 for
nobody / two people, an erasure that asks on a terminal and refuses without one, idempotent."""

from __future__ import annotations

import json
import os
import pty
import stat
import subprocess
import sys
from pathlib import Path

from sqlalchemy import select

from storage import migrate
from storage.db import Database
from storage.models import AuditEntry, Subscriber
from tests.privacy.seed import PHONE, Seeded, seed_person
from tests.support import CONTENT, ROOT


async def _seeded(tmp_path: Path) -> tuple[Seeded, dict[str, str]]:
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        await migrate.upgrade(db)
        seeded = await seed_person(db, tmp_path / "var" / "uploads", tmp_path)
    finally:
        await db.dispose()
    env = {
        "SUPPORTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "SUPPORTBOT_DATA_DIR": str(tmp_path / "var"),
        "SUPPORTBOT_CONTENT_DIR": str(CONTENT),
    }
    return seeded, env


def _env(extra: dict[str, str]) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    return {**clean, "PYTHONPATH": str(ROOT), **extra}


def run(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The command with no terminal at all (stdin is /dev/null), as from cron or CI."""
    return subprocess.run(
        [sys.executable, "-m", "supportbot", *args],
        cwd=cwd,
        env=_env(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_on_terminal(*args: str, answer: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """The command with a terminal as stdin, answering its question with `answer`."""
    main, other = pty.openpty()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "supportbot", *args],
            cwd=cwd,
            env=_env(env),
            stdin=other,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        os.write(main, answer.encode() + b"\n")
        out, _ = proc.communicate(timeout=120)
        return proc.returncode, out
    finally:
        os.close(main)
        os.close(other)


async def _subscriber(tmp_path: Path, sub_id: int) -> Subscriber:
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        async with db.session() as s:
            found = await s.get(Subscriber, sub_id)
            assert found is not None
            return found
    finally:
        await db.dispose()


async def _audit(tmp_path: Path) -> list[tuple[str, str, dict[str, object]]]:
    db = Database(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        async with db.session() as s:
            rows = (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()
            return [(e.action, e.actor, e.details) for e in rows]
    finally:
        await db.dispose()


async def test_export_prints_or_writes_a_private_file_and_is_audited(tmp_path: Path) -> None:
    seeded, env = await _seeded(tmp_path)
    out = run("subscribers", "export", "+7 916 123-45-67", cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["person"]["subscriber_ids"] == [seeded.person, seeded.merged]
    assert any(m["text"] == "Здравствуйте!" for c in data["conversations"] for m in c["messages"])

    target = tmp_path / "export.json"
    out = run(
        "subscribers", "export", "telegram:700100", "--out", str(target), cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and f"exported subscriber {seeded.person}" in out.stderr
    written = json.loads(target.read_text("utf-8"))
    for key in ("person", "subscribers", "channel_accounts", "conversations", "tickets"):
        assert written[key] == data[key]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    exports = [e for e in await _audit(tmp_path) if e[0] == "subject_exported"]
    assert [(a, actor, d["to"]) for a, actor, d in exports] == [
        ("subject_exported", "cli", "stdout"),
        ("subject_exported", "cli", "file"),
    ]

    nobody = run("subscribers", "export", "+79000000000", cwd=tmp_path, env=env)
    assert nobody.returncode == 2 and nobody.stdout == ""
    assert nobody.stderr.strip() == "supportbot: nobody found for '+79000000000'"


async def test_erase_asks_on_a_terminal_refuses_without_one_and_is_idempotent(
    tmp_path: Path,
) -> None:
    seeded, env = await _seeded(tmp_path)
    refused = run("subscribers", "erase", PHONE, cwd=tmp_path, env=env)
    assert refused.returncode == 2
    assert "no terminal to ask" in refused.stderr and "--yes" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (await _subscriber(tmp_path, seeded.person)).phone == PHONE  # untouched

    code, out = run_on_terminal("subscribers", "erase", PHONE, answer="no", cwd=tmp_path, env=env)
    assert code == 2 and "not confirmed; nothing erased" in out
    assert f"subscriber {seeded.person} (with merged" in out and "+7 ••• •••-45-67" in out
    assert (await _subscriber(tmp_path, seeded.person)).phone == PHONE

    code, out = run_on_terminal(
        "subscribers", "erase", PHONE, answer=str(seeded.person), cwd=tmp_path, env=env
    )
    assert code == 0, out
    assert f"erased subscriber {seeded.person}: " in out and "messages 52" in out
    erased = await _subscriber(tmp_path, seeded.person)
    assert erased.phone is None and erased.erased_at is not None
    assert not seeded.upload.exists()

    gone = run("subscribers", "erase", PHONE, "--yes", cwd=tmp_path, env=env)
    assert gone.returncode == 2 and "nobody found" in gone.stderr  # the phone was erased
    again = run("subscribers", "erase", f"id:{seeded.merged}", "--yes", cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stderr
    assert "already erased before: nothing was left" in again.stdout
    erasures = [e for e in await _audit(tmp_path) if e[0] == "subject_erased"]
    assert [(actor, d["messages"]) for _, actor, d in erasures] == [("cli", 52), ("cli", 0)]
    assert all(d["by"] for _, _, d in erasures)


async def test_two_people_for_bare_digits_and_a_retention_pass(tmp_path: Path) -> None:
    seeded, env = await _seeded(tmp_path)
    db = Database(env["SUPPORTBOT_DATABASE_URL"])
    try:
        async with db.transaction() as s:
            bystander = await s.get(Subscriber, seeded.bystander)
            assert bystander is not None
            bystander.account_number = str(seeded.person)
    finally:
        await db.dispose()
    two = run("subscribers", "erase", str(seeded.person), "--yes", cwd=tmp_path, env=env)
    assert two.returncode == 2
    assert f"matches several people (id:{seeded.person}, id:{seeded.bystander})" in two.stderr

    out = run("retention", "run", cwd=tmp_path, env={**env, "SUPPORTBOT_RETENTION__MESSAGES": "1d"})
    assert out.returncode == 0, out.stderr
    assert "retention: messages anonymised 52," in out.stdout  # the fixture is from November
    bad = run(
        "retention", "run", cwd=tmp_path, env={**env, "SUPPORTBOT_RETENTION__MESSAGES": "365"}
    )
    assert bad.returncode == 2 and "SUPPORTBOT_RETENTION__MESSAGES" in bad.stderr
    assert "no unit" in bad.stderr
