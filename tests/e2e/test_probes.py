"""What an integrator's orchestrator and on-call engineer see: `/healthz` (alive) stays quick and
truthful while the database is down, `/readyz` (send traffic?) says 503 with the reason, and the
start-up log names the database, events, NLU, channels and content in use (secrets masked)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from emulators.telegram import TelegramEmulator
from tests.e2e.conftest import telegram_settings


async def probe(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, await resp.json()


async def test_probes_with_the_database_up_and_down(
    start_app: Callable[..., Any],
    telegram: TelegramEmulator,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.INFO, logger="supportbot")
    app = await start_app(telegram=telegram_settings(telegram, "polling"))
    described = [r.getMessage() for r in caplog.records if r.getMessage().startswith("database ")]
    assert described, "the start-up log names what the process runs on"
    assert "nlu embedded" in described[0] and "channels telegram (polling)" in described[0]
    assert "articles)" in described[0] and "events in-process" in described[0]

    status, ready = await probe(f"{app.url}/readyz")
    assert (status, ready) == (200, {"ready": True, "problems": []})

    def down() -> Any:
        raise OSError("connection refused")

    monkeypatch.setattr(app.db, "session", down)  # the database stops answering
    status, health = await probe(f"{app.url}/healthz")
    assert status == 200 and health["ok"] and health["database"] == "unavailable"
    assert health["outbox_pending"] is None
    status, ready = await probe(f"{app.url}/readyz")
    assert status == 503 and not ready["ready"]
    assert ready["problems"] == ["database: not answering (SUPPORTBOT_DATABASE_URL)"]


def test_the_description_never_shows_a_password() -> None:
    from supportbot.app import _masked

    assert _masked("redis://:s3cret@redis:6379/2") == "redis://:***@redis:6379/2"
    assert "s3cret" not in _masked("postgresql://bot:s3cret@db/supportbot")
    assert _masked("not a url at all") == "not a url at all"
