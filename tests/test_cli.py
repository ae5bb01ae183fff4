"""The `supportbot` command as a person uses it: JSON parses, evaluation reports, and one clear
line (never a traceback) for the mistakes a person can make."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from tests.support import CONTENT, ROOT


def supportbot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "supportbot", *args],
        cwd=cwd,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_nlu_parse_prints_the_parse_as_json(tmp_path: Path) -> None:
    out = supportbot(
        "nlu", "parse", "баланс на 89161234567", cwd=tmp_path, SUPPORTBOT_CONTENT_DIR=str(CONTENT)
    )
    assert out.returncode == 0, out.stderr
    parse = json.loads(out.stdout)
    assert parse["intent"] == "balance" and parse["engine"] == "embedded"
    assert parse["entities"][0]["value"] == "+79161234567"


def test_nlu_evaluate_prints_the_table_and_writes_rasas_report(tmp_path: Path) -> None:
    out = supportbot(
        "nlu", "evaluate", "--test", str(CONTENT / "nlu_test" / "heldout.yml"),
        cwd=tmp_path, SUPPORTBOT_CONTENT_DIR=str(CONTENT),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    last = out.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"accuracy=0\.\d{3} macro_f1=0\.\d{3}", last)
    assert "top confusions" in out.stdout and "payment_methods" in out.stdout
    report = json.loads((tmp_path / "intent_report.json").read_text())
    assert {"precision", "recall", "f1-score", "support", "confused_with"} <= set(report["balance"])
    assert "macro avg" in report and "accuracy" in report


def test_broken_training_file_is_one_line_naming_file_and_line(tmp_path: Path) -> None:
    content = tmp_path / "content"
    shutil.copytree(CONTENT, content)
    broken = content / "nlu" / "billing.yml"
    broken.write_text(broken.read_text("utf-8").replace("examples: |", "examples: [", 1), "utf-8")
    out = supportbot("nlu", "parse", "привет", cwd=tmp_path, SUPPORTBOT_CONTENT_DIR=str(content))
    assert out.returncode == 2
    assert re.search(rf"{re.escape(str(broken))}:\d+:\d+: invalid YAML", out.stderr)
    assert "Traceback" not in out.stderr


def test_configuration_mistakes_are_one_clear_line(tmp_path: Path) -> None:
    no_token = supportbot("run", cwd=tmp_path)
    assert no_token.returncode == 2
    assert "SUPPORTBOT_TELEGRAM__TOKEN" in no_token.stderr and "Traceback" not in no_token.stderr
    bad_db = supportbot("db", "upgrade", cwd=tmp_path, SUPPORTBOT_DATABASE_URL="mysql://x/y")
    assert bad_db.returncode == 2 and "SUPPORTBOT_DATABASE_URL" in bad_db.stderr
    webhook = supportbot(
        "run", cwd=tmp_path, SUPPORTBOT_TELEGRAM__TOKEN="1:x", SUPPORTBOT_TELEGRAM__MODE="webhook"
    )
    assert webhook.returncode == 2 and "SUPPORTBOT_TELEGRAM__WEBHOOK_URL" in webhook.stderr


def test_a_misspelt_variable_is_an_error_naming_the_setting_it_meant(tmp_path: Path) -> None:
    """SUPPORTBOT_DATABSE_URL used to be ignored: the app ran on a local SQLite file instead."""
    typo = supportbot(
        "db", "upgrade", cwd=tmp_path, SUPPORTBOT_DATABSE_URL="postgresql://db/supportbot"
    )
    assert typo.returncode == 2 and "Traceback" not in typo.stderr
    assert "SUPPORTBOT_DATABSE_URL" in typo.stderr
    assert "did you mean SUPPORTBOT_DATABASE_URL?" in typo.stderr
    assert not (tmp_path / "supportbot.db").exists()  # nothing ran on the default database
    nested = supportbot("db", "upgrade", cwd=tmp_path, SUPPORTBOT_HANDOFF__REDIS="redis://x")
    assert nested.returncode == 2 and "SUPPORTBOT_HANDOFF__REDIS_URL?" in nested.stderr
    # Every real setting, a mapping's free keys and the variables read elsewhere are accepted.
    fine = supportbot(
        "db", "upgrade", cwd=tmp_path,
        SUPPORTBOT_HANDOFF__REDIS_URL="", SUPPORTBOT_HANDOFF__HOURS__CONSULT="mon-fri 09:00-21:00",
        SUPPORTBOT_RASA_HOME=str(tmp_path / "rasa"), SUPPORTBOT_LOG_LEVEL="WARNING",
    )  # fmt: skip
    assert fine.returncode == 0, fine.stderr[-2000:]


def test_unreachable_database_and_refused_token_are_one_line_each(tmp_path: Path) -> None:
    down = supportbot(
        "run", cwd=tmp_path,
        SUPPORTBOT_TELEGRAM__TOKEN="1:x",
        SUPPORTBOT_DATABASE_URL="postgresql://nobody@127.0.0.1:1/nowhere",
    )  # fmt: skip
    assert down.returncode == 2, down.stderr
    [line] = down.stderr.strip().splitlines()
    assert line.startswith("supportbot: SUPPORTBOT_DATABASE_URL: cannot use the database")
    assert "refused" in line.lower()


def run_until_refused(tmp_path: Path, **env: str) -> str:
    """`supportbot run` with a token the emulator refuses: exit 2 and no traceback; the last line."""
    out = supportbot(
        "run", cwd=tmp_path,
        SUPPORTBOT_CONTENT_DIR=str(CONTENT),
        SUPPORTBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        SUPPORTBOT_HTTP_PORT="0",
        **env,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    return out.stderr.strip().splitlines()[-1]


async def test_a_token_telegram_refuses_is_one_line(tmp_path: Path) -> None:
    emu = TelegramEmulator("7000000123:the-right-token")
    await emu.start()
    try:
        last = await asyncio.to_thread(
            run_until_refused,
            tmp_path,
            SUPPORTBOT_TELEGRAM__TOKEN="7000000123:a-wrong-token",
            SUPPORTBOT_TELEGRAM__API_BASE=emu.base_url,
        )
    finally:
        await emu.stop()
    assert last.startswith("supportbot: SUPPORTBOT_TELEGRAM__TOKEN: Telegram refused the bot token")


def test_unreachable_rasa_is_one_line_naming_the_setting_and_the_bot_still_answers(
    tmp_path: Path,
) -> None:
    out = supportbot(
        "nlu", "parse", "где оплатить?", cwd=tmp_path,
        SUPPORTBOT_CONTENT_DIR=str(CONTENT),
        SUPPORTBOT_NLU__ENGINE="rasa",
        SUPPORTBOT_NLU__RASA_URL="http://127.0.0.1:1",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    named = [line for line in out.stderr.splitlines() if "SUPPORTBOT_NLU__RASA_URL" in line]
    assert len(named) == 1 and "is not answering" in named[0]
    assert json.loads(out.stdout)["intent"] == "payment_methods"  # the embedded engine answered
    assert "Unclosed client session" not in out.stderr


async def test_a_token_vk_refuses_is_one_line(tmp_path: Path) -> None:
    emu = VKEmulator("vk1.a.the-right-token", 229000555)
    await emu.start()
    try:
        last = await asyncio.to_thread(
            run_until_refused,
            tmp_path,
            SUPPORTBOT_VK__TOKEN="vk1.a.a-wrong-token",
            SUPPORTBOT_VK__GROUP_ID="229000555",
            SUPPORTBOT_VK__API_URL=emu.api_url,
        )
    finally:
        await emu.stop()
    assert last.startswith("supportbot: SUPPORTBOT_VK__TOKEN / SUPPORTBOT_VK__GROUP_ID: VK refused")


async def test_sigterm_drains_like_ctrl_c(tmp_path: Path) -> None:
    """Docker, systemd and Kubernetes stop a process with SIGTERM: `supportbot run` used to die
    at once (rows left `sending`, a reply doubled after the restart); now it drains and exits 0."""
    from sqlalchemy import create_engine, text

    from tests.e2e.conftest import free_port

    emu = TelegramEmulator("7000000124:token")
    await emu.start()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env = {
        **clean,
        "PYTHONPATH": str(ROOT),
        "SUPPORTBOT_TELEGRAM__TOKEN": "7000000124:token",
        "SUPPORTBOT_TELEGRAM__API_BASE": emu.base_url,
        "SUPPORTBOT_CONTENT_DIR": str(CONTENT),
        "SUPPORTBOT_HTTP_PORT": str(free_port()),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "supportbot", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        emu.send_text(555, "где оплатить?")
        await emu.wait_sent(555, 1, timeout=60)  # up, polling and answering
        for i in range(5):  # replies in flight when the signal comes
            emu.send_text(555 + i, "привет")
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    finally:
        if process.returncode is None:
            process.kill()
        await emu.stop()
    output = (await process.stdout.read()).decode() if process.stdout else ""
    assert code == 0, output[-3000:]
    assert "draining" in output
    engine = create_engine(f"sqlite:///{tmp_path / 'supportbot.db'}")
    with engine.connect() as conn:
        sending = conn.execute(text("select count(*) from outbox where status = 'sending'"))
        assert sending.scalar() == 0
    engine.dispose()
