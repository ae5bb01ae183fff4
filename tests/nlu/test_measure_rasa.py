"""`--engine rasa` measures the Rasa server or nothing: never the embedded failover under Rasa's
name. No real Rasa is needed: an unreachable URL and a small aiohttp app answering like Rasa 3.6
(`GET /status`, `POST /model/parse`) that can have no model or break part-way."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from nlu.data import Example
from nlu.evaluate import MeasurementError, evaluate
from nlu.types import IntentScore, Parse
from tests.support import CONTENT, ROOT

HELD_OUT = CONTENT / "nlu_test" / "heldout.yml"
DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1


def supportbot(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SUPPORTBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "supportbot", *args],
        cwd=cwd,
        env={
            **clean,
            "PYTHONPATH": str(ROOT),
            "SUPPORTBOT_CONTENT_DIR": str(CONTENT),
            "SUPPORTBOT_DATA_DIR": str(cwd / "var"),
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def one_line_naming_the_setting(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 2, (out.returncode, out.stdout[-500:], out.stderr[-2000:])
    assert "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("supportbot: SUPPORTBOT_NLU__RASA_URL: "), line
    return line


def test_evaluate_with_rasa_unreachable_exits_2_and_measures_nothing(tmp_path: Path) -> None:
    """Before: the failover engine answered every message from the embedded model, exit 0, and
    intent_report.json described the embedded engine as if it were Rasa."""
    out = supportbot(
        "nlu", "evaluate", "--engine", "rasa", "--test", str(HELD_OUT), cwd=tmp_path,
        SUPPORTBOT_NLU__RASA_URL=DEAD_URL,
    )  # fmt: skip
    line = one_line_naming_the_setting(out)
    assert "cannot connect" in line and DEAD_URL in line
    assert "accuracy=" not in out.stdout
    assert not (tmp_path / "intent_report.json").exists()


def test_parse_with_rasa_unreachable_exits_2(tmp_path: Path) -> None:
    out = supportbot(
        "nlu", "parse", "--engine", "rasa", "где оплатить?", cwd=tmp_path,
        SUPPORTBOT_NLU__RASA_URL=DEAD_URL,
    )  # fmt: skip
    assert "cannot connect" in one_line_naming_the_setting(out)
    assert out.stdout == ""  # no parse from the embedded engine under Rasa's name


def test_evaluate_with_rasa_configured_never_counts_fallback_answers(tmp_path: Path) -> None:
    """`SUPPORTBOT_NLU__ENGINE=rasa` without `--engine`: an evaluation measures one engine too."""
    out = supportbot(
        "nlu", "evaluate", "--test", str(HELD_OUT), cwd=tmp_path,
        SUPPORTBOT_NLU__ENGINE="rasa", SUPPORTBOT_NLU__RASA_URL=DEAD_URL,
    )  # fmt: skip
    one_line_naming_the_setting(out)


def test_cross_validation_of_rasa_is_refused_not_replaced(tmp_path: Path) -> None:
    out = supportbot("nlu", "evaluate", "--engine", "rasa", "--cross-validation", "3", cwd=tmp_path)
    assert out.returncode == 2
    assert "embedded engine only" in out.stderr and "Traceback" not in out.stderr


# --- a server that answers like Rasa 3.6 ------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class FakeRasa:
    """`/status` and `/model/parse` like Rasa 3.6; `model=False` answers 409 "No agent loaded";
    `fail_after=N` answers N parses, then HTTP 500."""

    def __init__(self, *, model: bool = True, fail_after: int | None = None) -> None:
        self.model = model
        self.fail_after = fail_after
        self.parses = 0
        self.port = _free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        app.router.add_post("/model/parse", self._parse)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _no_agent(self) -> web.Response:
        return web.json_response(
            {
                "version": "3.6.21",
                "status": "failure",
                "message": "No agent loaded. To continue processing, a model of a trained agent "
                "needs to be loaded.",
                "reason": "NoAgent",
                "details": {},
                "help": None,
                "code": 409,
            },
            status=409,
        )

    async def _status(self, _request: web.Request) -> web.Response:
        if not self.model:
            return self._no_agent()
        return web.json_response(
            {
                "model_file": "models/nlu-20250101-000000.tar.gz",
                "model_id": "0123456789abcdef",
                "num_active_training_jobs": 0,
            }
        )

    async def _parse(self, request: web.Request) -> web.Response:
        if not self.model:
            return self._no_agent()
        self.parses += 1
        if self.fail_after is not None and self.parses > self.fail_after:
            return web.json_response({"status": "failure", "code": 500}, status=500)
        text = (await request.json())["text"]
        ranking = [
            {"name": "greet", "confidence": 0.9},
            {"name": "goodbye", "confidence": 0.06},
            {"name": "thanks", "confidence": 0.04},
        ]
        return web.json_response(
            {"text": text, "intent": ranking[0], "entities": [], "intent_ranking": ranking}
        )


@pytest.fixture
async def fake_rasa(request: pytest.FixtureRequest) -> AsyncIterator[FakeRasa]:
    server = FakeRasa(**getattr(request, "param", {}))
    await server.start()
    yield server
    await server.stop()


@pytest.mark.parametrize("fake_rasa", [{"model": False}], indirect=True)
async def test_rasa_without_a_model_exits_2_naming_it(fake_rasa: FakeRasa, tmp_path: Path) -> None:
    out = await asyncio.to_thread(
        supportbot, "nlu", "evaluate", "--engine", "rasa", "--test", str(HELD_OUT), cwd=tmp_path,
        SUPPORTBOT_NLU__RASA_URL=fake_rasa.url,
    )  # fmt: skip
    assert "no model loaded" in one_line_naming_the_setting(out)
    assert fake_rasa.parses == 0


@pytest.mark.parametrize("fake_rasa", [{"fail_after": 40}], indirect=True)
async def test_rasa_failing_mid_evaluation_voids_it(fake_rasa: FakeRasa, tmp_path: Path) -> None:
    out = await asyncio.to_thread(
        supportbot, "nlu", "evaluate", "--engine", "rasa", "--test", str(HELD_OUT), cwd=tmp_path,
        SUPPORTBOT_NLU__RASA_URL=fake_rasa.url,
    )  # fmt: skip
    line = one_line_naming_the_setting(out)
    assert "failed 41 messages into the evaluation of 314" in line and "HTTP 500" in line
    assert fake_rasa.parses == 41  # it stopped at the first failure
    assert not (tmp_path / "intent_report.json").exists()


async def test_a_ready_rasa_is_measured_and_labelled(fake_rasa: FakeRasa, tmp_path: Path) -> None:
    out = await asyncio.to_thread(
        supportbot, "nlu", "evaluate", "--engine", "rasa", "--test", str(HELD_OUT), "--json",
        cwd=tmp_path, SUPPORTBOT_NLU__RASA_URL=fake_rasa.url,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert report["engine"] == "rasa" and report["engines"] == {"rasa": 314}
    assert fake_rasa.parses == 314
    assert report == json.loads((tmp_path / "intent_report.json").read_text("utf-8"))


async def test_evaluate_refuses_answers_from_another_engine() -> None:
    """The library guard: a failover engine's stand-in answers void the measurement."""

    async def failover_parse(text: str) -> Parse:
        engine = "rasa" if text != "b" else "embedded (rasa unavailable)"
        return Parse(text, "greet", 0.9, (IntentScore("greet", 0.9),), engine=engine)

    examples = [Example(t, "greet") for t in ("a", "b", "c")]
    with pytest.raises(MeasurementError, match=r"after 1 of 3 .*embedded \(rasa unavailable\)"):
        await evaluate(failover_parse, examples, engine="rasa")
    report = await evaluate(failover_parse, examples)  # unchecked: labelled with both engines
    assert report.engine == "rasa x2, embedded (rasa unavailable) x1"
