"""Configuration mistakes at `supportbot run`: each is one line on stderr naming the setting to
change, exit code 2, never a traceback (a malformed token, a backend that does not import, an
unknown time zone, a webhook without its secret, a token VK refuses in Callback mode, a busy
HTTP port)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from emulators.vk import VKEmulator
from tests.support import CONTENT
from tests.test_cli import supportbot

TG = {"SUPPORTBOT_TELEGRAM__TOKEN": "7000000123:any-token"}
TG_WEBHOOK = {
    **TG,
    "SUPPORTBOT_TELEGRAM__MODE": "webhook",
    "SUPPORTBOT_TELEGRAM__WEBHOOK_URL": "https://bot.example/webhook/telegram",
}
VK_CALLBACK = {
    "SUPPORTBOT_VK__TOKEN": "vk1.a.some-token",
    "SUPPORTBOT_VK__GROUP_ID": "229000555",
    "SUPPORTBOT_VK__MODE": "callback",
    "SUPPORTBOT_VK__CONFIRMATION_CODE": "abc123",
}


def one_line(tmp_path: Path, **env: str) -> str:
    """`supportbot run` fails: exit 2, a single stderr line, which is returned."""
    out = supportbot(
        "run", cwd=tmp_path,
        SUPPORTBOT_CONTENT_DIR=str(CONTENT),
        SUPPORTBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        SUPPORTBOT_LOG_LEVEL="ERROR",
        **env,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    [line] = out.stderr.strip().splitlines()
    return line


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SUPPORTBOT_TELEGRAM__TOKEN": "not-a-token"},
            "supportbot: SUPPORTBOT_TELEGRAM__TOKEN: not a bot token: expected the shape "
            "123456789:AAH... that @BotFather gives",
        ),
        (
            {**TG, "SUPPORTBOT_BACKEND": "billing_nowhere:Billing"},
            "supportbot: SUPPORTBOT_BACKEND: 'billing_nowhere:Billing': cannot import "
            "billing_nowhere: No module named 'billing_nowhere'",
        ),
        (
            {**TG, "SUPPORTBOT_BACKEND": "services.backend.demo:NoSuchBackend"},
            "supportbot: SUPPORTBOT_BACKEND: 'services.backend.demo:NoSuchBackend': "
            "services.backend.demo has no class NoSuchBackend",
        ),
        (
            {**TG, "SUPPORTBOT_HANDOFF__TIMEZONE": "Europe/Moskva"},
            "supportbot: SUPPORTBOT_HANDOFF__TIMEZONE: 'Europe/Moskva' is not a known time zone "
            "(an IANA name such as Europe/Moscow or Asia/Yekaterinburg)",
        ),
        (
            TG_WEBHOOK,
            "supportbot: SUPPORTBOT_TELEGRAM__WEBHOOK_SECRET: webhook mode needs a secret "
            "(anyone who finds the URL could post fake updates); set it, or set "
            "SUPPORTBOT_TELEGRAM__ALLOW_WEBHOOK_WITHOUT_SECRET=true to run without one",
        ),
        (
            VK_CALLBACK,
            "supportbot: SUPPORTBOT_VK__SECRET: Callback API mode needs the secret key (anyone "
            "who finds the URL could post fake events); set it, or set "
            "SUPPORTBOT_VK__ALLOW_CALLBACK_WITHOUT_SECRET=true to run without one",
        ),
    ],
    ids=["token-shape", "backend-module", "backend-class", "timezone", "tg-secret", "vk-secret"],
)
def test_a_setting_mistake_is_one_line_naming_it(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    assert one_line(tmp_path, **env) == expected


async def test_a_token_vk_refuses_in_callback_mode_stops_the_start(tmp_path: Path) -> None:
    """Callback mode used to start without asking VK: /readyz green while every reply failed."""
    emu = VKEmulator("vk1.a.the-right-token", 229000555)
    await emu.start()
    try:
        env = {
            **VK_CALLBACK,
            "SUPPORTBOT_VK__TOKEN": "vk1.a.a-revoked-token",
            "SUPPORTBOT_VK__SECRET": "s3cret",
            "SUPPORTBOT_VK__API_URL": emu.api_url,
            "SUPPORTBOT_HTTP_PORT": "0",
        }
        line = await asyncio.to_thread(one_line, tmp_path, **env)
    finally:
        await emu.stop()
    assert line.startswith("supportbot: SUPPORTBOT_VK__TOKEN / SUPPORTBOT_VK__GROUP_ID: VK refused")
    assert "error 5" in line


def test_a_busy_port_is_named_not_blamed_on_the_database(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line(
            tmp_path, **TG, SUPPORTBOT_HTTP_PORT=str(port),
            SUPPORTBOT_TELEGRAM__API_BASE="http://127.0.0.1:1",
        )  # fmt: skip
    assert line == (
        f"supportbot: SUPPORTBOT_HTTP_PORT: port {port} on 127.0.0.1 is busy (another process "
        "listens there); stop it or choose another port"
    )
