"""`SUPPORTBOT_LOG_FORMAT=json`: `supportbot run` writes one JSON object per line, and a line
written while a subscriber's message is handled names its channel, update and conversation, so a
log search finds everything about one chat; phone numbers stay masked, tracebacks are a field."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import sys
from datetime import datetime
from pathlib import Path

from sqlalchemy import create_engine, text

from dialogs import logcontext
from emulators.telegram import TelegramEmulator
from supportbot.logs import JsonFormatter
from tests.e2e.conftest import free_port
from tests.support import CONTENT, ROOT

TOKEN = "7000000131:json-logs-token"
PHONE = "+7 916 123-45-67"


async def test_supportbot_run_writes_json_lines_with_the_conversation(tmp_path: Path) -> None:
    emu = TelegramEmulator(TOKEN)
    await emu.start()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    env = {
        **clean,
        "PYTHONPATH": str(ROOT),
        "SUPPORTBOT_TELEGRAM__TOKEN": TOKEN,
        "SUPPORTBOT_TELEGRAM__API_BASE": emu.base_url,
        "SUPPORTBOT_CONTENT_DIR": str(CONTENT),
        "SUPPORTBOT_HTTP_PORT": str(free_port()),
        "SUPPORTBOT_LOG_FORMAT": "json",
        "SUPPORTBOT_LOG_LEVEL": "DEBUG",
        "SUPPORTBOT_DATA_DIR": str(ROOT / "var"),  # the trained NLU cached by tests/support.py
    }
    log_path = tmp_path / "stderr.log"
    with log_path.open("w") as log_file:  # a pipe nobody reads would block the app
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supportbot", "run", cwd=tmp_path, env=env,
            stdout=log_file, stderr=log_file,
        )  # fmt: skip
        try:
            update = emu.send_text(561, f"мой номер {PHONE}, не работает интернет")
            await emu.wait_sent(561, 1, timeout=60)
            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), timeout=30)
        finally:
            if process.returncode is None:
                process.kill()
            await emu.stop()
    output = log_path.read_text()
    assert code == 0, output[-3000:]

    lines = [json.loads(line) for line in output.splitlines()]  # every line is one object
    assert len(lines) > 5
    for entry in lines:
        assert {"time", "level", "logger", "message"} <= entry.keys()
        assert datetime.fromisoformat(entry["time"]).utcoffset() is not None
    assert "916 123-45-67" not in output and "9161234567" not in output
    engine = create_engine(f"sqlite:///{tmp_path / 'supportbot.db'}")
    with engine.connect() as conn:
        conversation = conn.execute(text("select id from conversations")).scalar_one()
    engine.dispose()
    about_it = [e for e in lines if e.get("update_id") == str(update["update_id"])]
    assert about_it, "no line names the update"
    assert {e["channel"] for e in about_it} == {"telegram"}
    assert any(e.get("conversation_id") == conversation for e in about_it)
    assert any(e["message"].startswith("update handled") for e in about_it)
    started = [e for e in lines if e["message"].startswith("supportbot listening on")]
    assert started and "update_id" not in started[0]  # outside an update: no ids


def test_a_traceback_is_one_field_of_one_line_masked() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("test.json_logs")
    log.addHandler(handler)
    log.propagate = False
    conversation = logcontext.conversation_id.set(42)
    try:
        try:
            raise ValueError(f"no customer with phone {PHONE}")
        except ValueError:
            log.exception("lookup failed")
    finally:
        logcontext.conversation_id.reset(conversation)
        log.removeHandler(handler)
    [line] = out.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "ERROR" and entry["message"] == "lookup failed"
    assert entry["conversation_id"] == 42 and "channel" not in entry
    assert entry["exception"].startswith("Traceback (most recent call last):")
    assert "ValueError: no customer with phone +7 ••• •••-45-67" in entry["exception"]
