"""Against a real Rasa 3.6.21 server: venv (cached), export, train (cached by data hash), serve.

Run with `pytest -m rasa` (make test-rasa). The first run installs Rasa (~2-3 min, 2.7 GB under
SUPPORTBOT_RASA_HOME or ~/.cache/supportbot/rasa) and trains; later runs reuse both.
Uses `content/` when `content/nlu/` has training files, else the fixture in tests/rasa/data/.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from nlu import rasa_runtime
from nlu.failover import FAILOVER_ENGINE_LABEL, FailoverEngine
from nlu.rasa_project import data_hash, export_project, project_hash
from nlu.rasa_server import RasaServerEngine, RasaUnavailable
from nlu.types import FALLBACK_INTENT, IntentScore, Parse

pytestmark = pytest.mark.rasa

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = Path(__file__).resolve().parent / "data"


def _content() -> Path:
    nlu = ROOT / "content" / "nlu"
    if nlu.is_dir() and any(nlu.glob("*.yml")):
        return ROOT / "content"
    return FIXTURE


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rasa_runtime.RasaServer]:
    home = rasa_runtime.default_home()
    timings: list[str] = []
    started = time.monotonic()
    try:
        rasa_runtime.ensure_venv(home)
    except rasa_runtime.RasaSetupError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"{exc} (CI must run the Rasa tests)")
        pytest.skip(str(exc))
    timings.append(f"venv {time.monotonic() - started:.1f}s")
    content = _content()
    project = export_project(content, tmp_path_factory.mktemp("rasa-project"))
    assert project_hash(project) == data_hash(content)
    t = time.monotonic()
    model = rasa_runtime.train(home, project, quiet=True)
    timings.append(f"train {time.monotonic() - t:.1f}s")
    t = time.monotonic()
    srv = rasa_runtime.serve(home, model, token=secrets.token_urlsafe(16), project=project)
    timings.append(f"start {time.monotonic() - t:.1f}s")
    print(f"\nreal Rasa ({content}): {', '.join(timings)}", file=sys.stderr)
    try:
        yield srv
    finally:
        srv.stop()
        assert not srv.alive()


@pytest.fixture
async def engine(server: rasa_runtime.RasaServer) -> AsyncIterator[RasaServerEngine]:
    eng = RasaServerEngine(server.url, token=server.token, timeout=5.0)
    yield eng
    await eng.close()


async def test_payment_question(engine: RasaServerEngine) -> None:
    parse = await engine.parse("где можно оплатить связь")
    assert parse.engine == "rasa"
    assert parse.intent == "payment_methods", parse.ranking
    assert 0 < parse.confidence <= 1
    assert 1 < len(parse.ranking) <= 10
    assert parse.ranking[0].name == parse.intent
    assert FALLBACK_INTENT not in {r.name for r in parse.ranking}
    confidences = [r.confidence for r in parse.ranking]
    assert confidences == sorted(confidences, reverse=True)


async def test_ready_reports_the_loaded_model(server: rasa_runtime.RasaServer) -> None:
    """What `nlu parse/evaluate --engine rasa` check first: GET /status with a model loaded."""
    eng = RasaServerEngine(server.url, token=server.token, timeout=5.0)
    try:
        status = await eng.ready()
    finally:
        await eng.close()
    assert status["model_file"] or status["model_id"]
    wrong = RasaServerEngine(server.url, token="wrong", timeout=5.0)
    try:
        with pytest.raises(RasaUnavailable, match="wrong or missing token"):
            await wrong.ready()
    finally:
        await wrong.close()


async def test_phone_entity(engine: RasaServerEngine) -> None:
    parse = await engine.parse("заблокируйте номер +7 (912) 111-22-33")
    phones = [e for e in parse.entities if e.entity == "phone"]
    assert [e.value for e in phones] == ["+79121112233"], parse.entities
    assert phones[0].extractor == "RegexEntityExtractor"


async def test_gibberish_is_low_confidence(engine: RasaServerEngine) -> None:
    parse = await engine.parse("ываыва пролдж")
    assert parse.intent != FALLBACK_INTENT
    assert parse.ranking and parse.ranking[0].name == parse.intent


async def test_wrong_token_is_refused(server: rasa_runtime.RasaServer) -> None:
    eng = RasaServerEngine(server.url, token="wrong", timeout=5.0)
    try:
        with pytest.raises(RasaUnavailable, match="HTTP 401"):
            await eng.parse("где можно оплатить связь")
    finally:
        await eng.close()
    no_token = RasaServerEngine(server.url, timeout=5.0)
    try:
        with pytest.raises(RasaUnavailable, match="HTTP 401"):
            await no_token.parse("где можно оплатить связь")
    finally:
        await no_token.close()


class _Embedded:
    name = "embedded"

    async def parse(self, text: str) -> Parse:
        return Parse(text, "operator", 0.5, (IntentScore("operator", 0.5),), engine="embedded")


async def test_failover_with_the_real_server(engine: RasaServerEngine) -> None:
    eng = FailoverEngine(engine, _Embedded())
    parse = await eng.parse("где можно оплатить связь")
    assert (parse.engine, parse.intent, eng.state) == ("rasa", "payment_methods", "closed")
    down = FailoverEngine(
        RasaServerEngine(f"http://127.0.0.1:{rasa_runtime.free_port()}", timeout=1.0), _Embedded()
    )
    parse = await down.parse("где можно оплатить связь")
    assert (parse.engine, down.state) == (FAILOVER_ENGINE_LABEL, "open")
    await down.close()


async def test_telegram_conversation_is_answered_via_rasa(
    server: rasa_runtime.RasaServer, tmp_path: Path
) -> None:
    """The whole path: aiogram polling -> pipeline -> Rasa server -> answer in the emulator."""
    from pydantic import SecretStr
    from sqlalchemy import select

    from emulators.telegram import TelegramEmulator
    from storage.models import Message
    from supportbot.app import App
    from supportbot.settings import NLUSettings, Settings, TelegramSettings

    token = "7000000003:rasa-e2e"
    emu = TelegramEmulator(token)
    await emu.start()
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'rasa.db'}",
        content_dir=ROOT / "content",
        data_dir=tmp_path,
        http_port=rasa_runtime.free_port(),
        telegram=TelegramSettings(token=SecretStr(token), api_base=emu.base_url),
        nlu=NLUSettings(engine="rasa", rasa_url=server.url, rasa_token=SecretStr(server.token)),
    )
    app = App(settings)
    await app.start()
    try:
        emu.send_text(1001, "где можно оплатить связь")
        [reply] = await emu.wait_sent(1001, 1, timeout=20)
        assert "Оплатить связь можно разными способами" in reply["text"]
        async with app.db.session() as s:
            nlu = await s.scalar(select(Message.nlu).where(Message.direction == "in"))
        assert nlu is not None and nlu["engine"] == "rasa" and nlu["intent"] == "payment_methods"
    finally:
        await app.stop()
        await emu.stop()
