"""Start-up of `supportbot run` as its own process in webhook mode: it answers /healthz and takes
a message through the webhook soon after start, and it never imports the library of a channel
that is not configured (vkbottle costs ~1 s of every start, aiogram ~1 s), nor, on a restart,
the training libraries (scikit-learn, scipy). Which modules were
imported is read from Python's own import log (`PYTHONPROFILEIMPORTTIME`). The time bound is
generous (a shared CI machine); bench/ceiling.py --startup measures the real figure.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

from emulators.telegram import TelegramEmulator
from emulators.vk import VKEmulator
from tests.e2e.conftest import (
    TG_SECRET,
    TG_TOKEN,
    VK_CONFIRM,
    VK_GROUP,
    VK_SECRET,
    VK_TOKEN,
    free_port,
)

ROOT = Path(__file__).resolve().parents[2]
GENEROUS = 60.0  # seconds; typically 3-8 on the 2-CPU development machine


async def start(env: dict[str, str], port: int, workdir: Path) -> tuple[object, float, Path]:
    """`supportbot run` with `env`; returns the process, seconds to /healthz 200, its stderr."""
    err = workdir / "stderr.log"
    full = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONPROFILEIMPORTTIME": "1",  # every import, one line each, on stderr
        "SUPPORTBOT_DATABASE_URL": f"sqlite:///{workdir / 'app.db'}",
        "SUPPORTBOT_CONTENT_DIR": str(ROOT / "content"),
        "SUPPORTBOT_DATA_DIR": str(workdir),
        "SUPPORTBOT_HTTP_PORT": str(port),
        **env,
    }
    with err.open("wb") as out:
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "supportbot", "run", cwd=workdir, env=full, stderr=out
        )
    async with aiohttp.ClientSession() as http:
        while time.monotonic() - t0 < GENEROUS:
            assert proc.returncode is None, err.read_text(errors="replace")[-3000:]
            try:
                async with http.get(f"http://127.0.0.1:{port}/healthz") as resp:
                    if resp.status == 200:
                        return proc, time.monotonic() - t0, err
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError(f"no /healthz within {GENEROUS} s")


def imported(err: Path) -> set[str]:
    """Top-level packages in the process's import log."""
    names = set()
    for line in err.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


async def stop(proc: object) -> None:
    assert isinstance(proc, asyncio.subprocess.Process)
    proc.terminate()
    await asyncio.wait_for(proc.wait(), 30)


async def test_telegram_webhook_process_is_up_fast_without_vkbottle(tmp_path: Path) -> None:
    emu = TelegramEmulator(TG_TOKEN, webhook_retry_delay=0.1)
    await emu.start()
    port = free_port()
    env = {
        "SUPPORTBOT_TELEGRAM__TOKEN": TG_TOKEN,
        "SUPPORTBOT_TELEGRAM__API_BASE": emu.base_url,
        "SUPPORTBOT_TELEGRAM__MODE": "webhook",
        "SUPPORTBOT_TELEGRAM__WEBHOOK_URL": f"http://127.0.0.1:{port}/webhook/telegram",
        "SUPPORTBOT_TELEGRAM__WEBHOOK_SECRET": TG_SECRET,
    }
    try:
        proc, ready, err = await start(env, port, tmp_path)
        try:
            emu.send_text(4242, "где оплатить?")  # the webhook works, not just /healthz
            sent = await emu.wait_sent(4242, 1, timeout=30)
            assert sent and sent[0]["text"]
        finally:
            await stop(proc)
    finally:
        await emu.stop()
    modules = imported(err)
    assert "aiogram" in modules  # the log is read right: the configured channel's library is in
    assert "vkbottle" not in modules and "vkbottle_types" not in modules
    assert ready < GENEROUS
    # A restart on the same data dir loads the NLU model and the knowledge index it cached:
    # scikit-learn and scipy (~1.5 s of imports) are for training only.
    assert "sklearn" in modules  # the first start trained
    proc, _ready, err = await start(env, port, tmp_path)
    await stop(proc)
    again = imported(err)
    assert "aiogram" in again
    assert "sklearn" not in again and "scipy" not in again


async def test_vk_only_process_does_not_import_aiogram(tmp_path: Path) -> None:
    emu = VKEmulator(VK_TOKEN, VK_GROUP, confirmation_code=VK_CONFIRM, callback_retry_delay=0.1)
    await emu.start()
    port = free_port()
    env = {
        "SUPPORTBOT_VK__TOKEN": VK_TOKEN,
        "SUPPORTBOT_VK__GROUP_ID": str(VK_GROUP),
        "SUPPORTBOT_VK__API_URL": emu.api_url,
        "SUPPORTBOT_VK__MODE": "callback",
        "SUPPORTBOT_VK__CONFIRMATION_CODE": VK_CONFIRM,
        "SUPPORTBOT_VK__SECRET": VK_SECRET,
    }
    try:
        proc, _ready, err = await start(env, port, tmp_path)
        await stop(proc)
    finally:
        await emu.stop()
    modules = imported(err)
    assert "vkbottle" in modules
    assert "aiogram" not in modules
