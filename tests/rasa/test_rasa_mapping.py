"""RasaServerEngine and FailoverEngine against a small aiohttp app that answers like Rasa 3.6.

The JSON bodies are shaped like real `rasa run --enable-api` 3.6.21 answers to
`POST /model/parse` (DIETClassifier + RegexEntityExtractor + FallbackClassifier pipeline).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from nlu.failover import FAILOVER_ENGINE_LABEL, FailoverEngine
from nlu.rasa_server import (
    RasaServerEngine,
    RasaUnavailable,
    normalise_account,
    normalise_phone,
    parse_answer,
)
from nlu.types import FALLBACK_INTENT, IntentScore, Parse

TOKEN = "s3cret-t0ken"

_RESPONSE_SELECTOR = {
    "all_retrieval_intents": [],
    "default": {
        "response": {
            "responses": None,
            "confidence": 0.0,
            "intent_response_key": None,
            "utter_action": "utter_None",
        },
        "ranking": [],
    },
}

# "эээ ну это" -> below the FallbackClassifier threshold (0.4): nlu_fallback on top.
FALLBACK_ANSWER: dict[str, Any] = {
    "text": "эээ ну это",
    "intent": {"name": "nlu_fallback", "confidence": 0.4},
    "entities": [],
    "text_tokens": [[0, 3], [4, 6], [7, 10]],
    "intent_ranking": [
        {"name": "nlu_fallback", "confidence": 0.4},
        {"name": "out_of_scope", "confidence": 0.2313},
        {"name": "complaint", "confidence": 0.2101},
        {"name": "deny", "confidence": 0.1187},
        {"name": "operator", "confidence": 0.0958},
        {"name": "greet", "confidence": 0.0811},
        {"name": "thanks", "confidence": 0.0702},
        {"name": "affirm", "confidence": 0.0611},
        {"name": "balance", "confidence": 0.0522},
        {"name": "goodbye", "confidence": 0.0431},
        {"name": "offices", "confidence": 0.0364},
    ],
    "response_selector": _RESPONSE_SELECTOR,
}

# A phone and an account found by the RegexEntityExtractor; DIET found the phone too (a shorter,
# overlapping span) and a half phone that cannot be normalised.
ENTITIES_ANSWER: dict[str, Any] = {
    "text": "баланс номера 8 (912) 345-67-89, лс 0012345678",
    "intent": {"name": "balance", "confidence": 0.9614},
    "entities": [
        {
            "entity": "phone",
            "start": 16,
            "end": 31,
            "confidence_entity": 0.8812,
            "value": "(912) 345-67-89",
            "extractor": "DIETClassifier",
        },
        {
            "entity": "phone",
            "start": 14,
            "end": 31,
            "value": "8 (912) 345-67-89",
            "extractor": "RegexEntityExtractor",
        },
        {
            "entity": "account",
            "start": 36,
            "end": 46,
            "value": "0012345678",
            "extractor": "RegexEntityExtractor",
        },
        {
            "entity": "phone",
            "start": 40,
            "end": 46,
            "confidence_entity": 0.41,
            "value": "345678",
            "extractor": "DIETClassifier",
        },
    ],
    "text_tokens": [[0, 6], [7, 13], [14, 15], [16, 21], [22, 31], [33, 35], [36, 46]],
    "intent_ranking": [
        {"name": "balance", "confidence": 0.9614},
        {"name": "block_number", "confidence": 0.0152},
        {"name": "call_details", "confidence": 0.0093},
        {"name": "promised_payment", "confidence": 0.0061},
    ],
    "response_selector": _RESPONSE_SELECTOR,
}

# Recorded verbatim (ranking cut to 4) from `supportbot rasa serve` on content/: both regex
# patterns of `phone` matched (the second inside the first) and DIET found it too.
RECORDED_ANSWER: dict[str, Any] = {
    "text": "где можно оплатить связь, мой номер 8 912 111 22 33",
    "intent": {"name": "payment_methods", "confidence": 0.9661923050880432},
    "entities": [
        {
            "entity": "phone",
            "start": 36,
            "end": 51,
            "confidence_entity": 0.9668186902999878,
            "value": "8 912 111 22 33",
            "extractor": "DIETClassifier",
        },
        {
            "entity": "phone",
            "start": 36,
            "end": 51,
            "value": "8 912 111 22 33",
            "extractor": "RegexEntityExtractor",
        },
        {
            "entity": "phone",
            "start": 38,
            "end": 51,
            "value": "912 111 22 33",
            "extractor": "RegexEntityExtractor",
        },
    ],
    "text_tokens": [
        [0, 3],
        [4, 9],
        [10, 18],
        [19, 24],
        [26, 29],
        [30, 35],
        [36, 37],
        [38, 41],
        [42, 45],
        [46, 48],
        [49, 51],
    ],
    "intent_ranking": [
        {"name": "payment_methods", "confidence": 0.9661923050880432},
        {"name": "promised_payment", "confidence": 0.011089065112173557},
        {"name": "roaming", "confidence": 0.007655720},
        {"name": "balance", "confidence": 0.0051},
    ],
    "response_selector": _RESPONSE_SELECTOR,
}

PAYMENT_ANSWER: dict[str, Any] = {
    "text": "где можно оплатить связь",
    "intent": {"name": "payment_methods", "confidence": 0.9921},
    "entities": [],
    "text_tokens": [[0, 3], [4, 9], [10, 18], [19, 24]],
    "intent_ranking": [
        {"name": "payment_methods", "confidence": 0.9921},
        {"name": "balance", "confidence": 0.0042},
        {"name": "promised_payment", "confidence": 0.0021},
    ],
    "response_selector": _RESPONSE_SELECTOR,
}

UNAUTHORIZED = {
    "version": "3.6.21",
    "status": "failure",
    "message": "User is not authenticated.",
    "reason": "NotAuthenticated",
    "details": {},
    "help": None,
    "code": 401,
}

SERVER_ERROR = {
    "version": "3.6.21",
    "status": "failure",
    "message": "An unexpected error occurred. Error: 'NoneType' object is not subscriptable",
    "reason": "ParsingError",
    "details": {},
    "help": None,
    "code": 500,
}


class FakeRasa:
    """An aiohttp app on 127.0.0.1 answering POST /model/parse like Rasa; can go down and up."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.hits = 0
        self.slow = 5.0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/model/parse", self._parse)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _parse(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if request.query.get("token") != TOKEN:
            return web.json_response(UNAUTHORIZED, status=401)
        text = (await request.json())["text"]
        if text == "boom":
            return web.json_response(SERVER_ERROR, status=500)
        if text == "slow":
            await asyncio.sleep(self.slow)
        if text == "garbage":
            return web.Response(
                text='{"text": "garbage", "intent": {', content_type="application/json"
            )
        if text == "not an object":
            return web.json_response(["payment_methods"])
        if text == FALLBACK_ANSWER["text"]:
            return web.json_response(FALLBACK_ANSWER)
        if text == RECORDED_ANSWER["text"]:
            return web.json_response(RECORDED_ANSWER)
        if text == ENTITIES_ANSWER["text"]:
            return web.json_response(ENTITIES_ANSWER)
        return web.json_response({**PAYMENT_ANSWER, "text": text})


class Embedded:
    """A tiny deterministic stand-in for the embedded engine."""

    name = "embedded"

    def __init__(self) -> None:
        self.calls = 0

    async def parse(self, text: str) -> Parse:
        self.calls += 1
        return Parse(
            text=text,
            intent="payment_methods",
            confidence=0.75,
            ranking=(IntentScore("payment_methods", 0.75),),
            engine="embedded",
        )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def rasa() -> AsyncIterator[FakeRasa]:
    server = FakeRasa()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def engine(rasa: FakeRasa) -> AsyncIterator[RasaServerEngine]:
    eng = RasaServerEngine(rasa.url, token=TOKEN, timeout=0.5)
    yield eng
    await eng.close()


# --- RasaServerEngine: mapping ----------------------------------------------------------------


async def test_plain_answer(engine: RasaServerEngine) -> None:
    parse = await engine.parse("где можно оплатить связь")
    assert parse.intent == "payment_methods"
    assert parse.confidence == pytest.approx(0.9921)
    assert parse.engine == "rasa"
    assert [r.name for r in parse.ranking] == ["payment_methods", "balance", "promised_payment"]
    assert parse.entities == ()
    assert parse.extra == {}


async def test_nlu_fallback_on_top_gives_best_real_intent(engine: RasaServerEngine) -> None:
    parse = await engine.parse("эээ ну это")
    assert parse.intent == "out_of_scope"
    assert parse.confidence == pytest.approx(0.2313)  # its own, not the fallback threshold
    assert parse.extra == {"rasa_fallback": True}
    assert FALLBACK_INTENT not in {r.name for r in parse.ranking}
    assert len(parse.ranking) == 10
    assert parse.ranking[0] == IntentScore("out_of_scope", 0.2313)
    confidences = [r.confidence for r in parse.ranking]
    assert confidences == sorted(confidences, reverse=True)


async def test_entities_normalised_and_deduplicated(engine: RasaServerEngine) -> None:
    parse = await engine.parse(ENTITIES_ANSWER["text"])
    assert parse.intent == "balance"
    found = [(e.entity, e.value, e.start, e.end, e.extractor) for e in parse.entities]
    assert found == [
        ("phone", "+79123456789", 14, 31, "RegexEntityExtractor"),
        ("account", "0012345678", 36, 46, "RegexEntityExtractor"),
    ]
    assert ENTITIES_ANSWER["text"][14:31] == "8 (912) 345-67-89"


async def test_recorded_answer_two_regex_matches(engine: RasaServerEngine) -> None:
    parse = await engine.parse(RECORDED_ANSWER["text"])
    assert (parse.intent, round(parse.confidence, 3)) == ("payment_methods", 0.966)
    assert [(e.value, e.start, e.end, e.extractor) for e in parse.entities] == [
        ("+79121112233", 36, 51, "RegexEntityExtractor")
    ]


def test_normalisers() -> None:
    assert normalise_phone("+7 (912) 345-67-89") == "+79123456789"
    assert normalise_phone("8-912-345-67-89") == "+79123456789"
    assert normalise_phone("9123456789") == "+79123456789"
    assert normalise_phone("345-67-89") is None
    assert normalise_account("л/с 12 345-678") == "12345678"
    assert normalise_account("нет") is None


def test_ranking_without_top_intent_and_empty_answers() -> None:
    body = {"text": "x", "intent": {"name": "greet", "confidence": 0.9}, "entities": []}
    parse = parse_answer("x", body)
    assert parse.intent == "greet" and parse.ranking == (IntentScore("greet", 0.9),)
    empty = parse_answer("", {"text": "", "intent": {"name": None, "confidence": 0.0}})
    assert empty.intent == "out_of_scope" and empty.confidence == 0.0
    with pytest.raises(RasaUnavailable, match="malformed"):
        parse_answer("x", {"intent_ranking": []})


async def test_empty_text_is_not_sent(engine: RasaServerEngine, rasa: FakeRasa) -> None:
    parse = await engine.parse("   ")
    assert (parse.intent, parse.confidence, rasa.hits) == ("out_of_scope", 0.0, 0)


# --- RasaServerEngine: errors -----------------------------------------------------------------


async def test_wrong_token_is_refused_without_leaking_it(rasa: FakeRasa) -> None:
    eng = RasaServerEngine(rasa.url, token="wrong-" + TOKEN, timeout=0.5)
    try:
        with pytest.raises(RasaUnavailable, match="HTTP 401") as info:
            await eng.parse("баланс")
    finally:
        await eng.close()
    assert "wrong or missing token" in str(info.value)
    assert TOKEN not in str(info.value) and TOKEN not in repr(eng)
    assert "\n" not in str(info.value)


async def test_server_error(engine: RasaServerEngine) -> None:
    with pytest.raises(RasaUnavailable, match="HTTP 500") as info:
        await engine.parse("boom")
    assert "\n" not in str(info.value)


async def test_malformed_json(engine: RasaServerEngine) -> None:
    with pytest.raises(RasaUnavailable, match="malformed JSON"):
        await engine.parse("garbage")
    with pytest.raises(RasaUnavailable, match="malformed answer"):
        await engine.parse("not an object")


async def test_slow_answer_times_out(engine: RasaServerEngine) -> None:
    started = time.monotonic()
    with pytest.raises(RasaUnavailable, match=r"no answer within 0.5 s"):
        await engine.parse("slow")
    assert time.monotonic() - started < 0.5 + 1.0  # bounded by the timeout (generous margin)


async def test_connection_refused() -> None:
    eng = RasaServerEngine(f"http://127.0.0.1:{_free_port()}", token=TOKEN, timeout=0.5)
    try:
        with pytest.raises(RasaUnavailable, match="cannot connect") as info:
            await eng.parse("баланс")
    finally:
        await eng.close()
    assert TOKEN not in str(info.value)


# --- FailoverEngine ---------------------------------------------------------------------------


async def test_failover_when_server_is_down(caplog: pytest.LogCaptureFixture) -> None:
    primary = RasaServerEngine(f"http://127.0.0.1:{_free_port()}", token=TOKEN, timeout=0.5)
    fallback = Embedded()
    eng = FailoverEngine(primary, fallback, reset_after=60)
    caplog.set_level(logging.INFO, logger="nlu.failover")
    try:
        for _ in range(3):
            parse = await eng.parse("где оплатить")
            assert parse.intent == "payment_methods"
            assert parse.engine == FAILOVER_ENGINE_LABEL
    finally:
        await eng.close()
    assert eng.state == "open"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per state change, not per message
    assert "rasa unavailable (" in warnings[0].getMessage()
    assert "answering with the embedded engine" in warnings[0].getMessage()
    assert TOKEN not in caplog.text


async def test_breaker_opens_half_opens_and_closes(
    rasa: FakeRasa, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock()
    primary = RasaServerEngine(rasa.url, token=TOKEN, timeout=0.5)
    fallback = Embedded()
    eng = FailoverEngine(primary, fallback, reset_after=5, max_reset_after=12, clock=clock)
    caplog.set_level(logging.INFO, logger="nlu.failover")
    try:
        assert (await eng.parse("где оплатить")).engine == "rasa"
        assert eng.state == "closed"

        await rasa.stop()  # connection refused from now on
        assert (await eng.parse("где оплатить")).engine == FAILOVER_ENGINE_LABEL
        assert eng.state == "open"
        assert eng.health()["retry_in"] == 5

        hits = rasa.hits
        await rasa.start()  # back, but the breaker is open: the primary is not called
        for _ in range(3):
            assert (await eng.parse("где оплатить")).engine == FAILOVER_ENGINE_LABEL
        assert rasa.hits == hits

        await rasa.stop()
        clock.now += 5
        assert eng.state == "half-open"
        assert (await eng.parse("где оплатить")).engine == FAILOVER_ENGINE_LABEL  # failed trial
        assert eng.state == "open" and eng.health()["retry_in"] == 10  # backoff doubled
        clock.now += 5
        assert eng.state == "open"
        clock.now += 5
        assert eng.state == "half-open"
        await eng.parse("где оплатить")  # fails again: backoff capped by max_reset_after
        assert eng.health()["retry_in"] == 12

        await rasa.start()
        clock.now += 12
        parse = await eng.parse("где оплатить")  # the trial succeeds
        assert parse.engine == "rasa" and eng.state == "closed"
        assert rasa.hits == hits + 1
        assert eng.health()["last_error"] is None
    finally:
        await eng.close()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("answering with the embedded engine" in m for m in messages) == 1
    assert messages[-1] == "rasa is back"

    # after closing, a new outage opens with the initial reset_after again
    await rasa.stop()
    eng2_primary = RasaServerEngine(rasa.url, token=TOKEN, timeout=0.5)
    eng2 = FailoverEngine(eng2_primary, Embedded(), reset_after=5, clock=clock)
    await eng2.parse("x")
    assert eng2.health()["retry_in"] == 5
    await eng2.close()


async def test_failure_threshold(rasa: FakeRasa) -> None:
    clock = Clock()
    eng = FailoverEngine(
        RasaServerEngine(rasa.url, token=TOKEN, timeout=0.5),
        Embedded(),
        failure_threshold=3,
        clock=clock,
    )
    try:
        for expected in ("closed", "closed", "open"):
            assert (await eng.parse("boom")).engine == FAILOVER_ENGINE_LABEL
            assert eng.state == expected
        assert "HTTP 500" in str(eng.health()["last_error"])
    finally:
        await eng.close()


async def test_failover_never_waits_longer_than_the_timeout(rasa: FakeRasa) -> None:
    eng = FailoverEngine(RasaServerEngine(rasa.url, token=TOKEN, timeout=0.3), Embedded())
    try:
        started = time.monotonic()
        parse = await eng.parse("slow")
        elapsed = time.monotonic() - started
    finally:
        await eng.close()
    assert parse.engine == FAILOVER_ENGINE_LABEL
    assert elapsed < 0.3 + 1.0  # bounded by the primary's timeout (generous margin)


class Gated:
    """A primary that waits for `gate`; counts calls."""

    name = "rasa"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0
        self.fail = True

    async def parse(self, text: str) -> Parse:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise RasaUnavailable("down")
        return Parse(text=text, intent="greet", confidence=0.9, engine="rasa")


async def test_half_open_lets_exactly_one_trial_through() -> None:
    clock = Clock()
    primary, fallback = Gated(), Embedded()
    eng = FailoverEngine(primary, fallback, reset_after=5, clock=clock)
    primary.gate.set()
    await eng.parse("x")  # opens
    assert eng.state == "open"
    primary.gate.clear()
    primary.fail = False
    clock.now += 5
    trial = asyncio.create_task(eng.parse("trial"))
    await asyncio.sleep(0)
    others = [await eng.parse("other") for _ in range(3)]  # while the trial is in flight
    assert all(p.engine == FAILOVER_ENGINE_LABEL for p in others)
    assert primary.calls == 2
    primary.gate.set()
    assert (await trial).engine == "rasa"
    assert eng.state == "closed"


async def test_call_timeout_bounds_a_primary_without_its_own() -> None:
    primary = Gated()  # never released: hangs
    eng = FailoverEngine(primary, Embedded(), call_timeout=0.2)
    parse = await eng.parse("x")
    assert parse.engine == FAILOVER_ENGINE_LABEL
    assert "no answer within 0.2 s" in str(eng.health()["last_error"])


async def test_cancelled_trial_keeps_the_breaker_open() -> None:
    clock = Clock()
    primary = Gated()
    eng = FailoverEngine(primary, Embedded(), reset_after=5, clock=clock)
    primary.gate.set()
    await eng.parse("x")
    primary.gate.clear()
    clock.now += 5
    trial = asyncio.create_task(eng.parse("trial"))
    await asyncio.sleep(0)
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial
    assert eng.state == "open"
    clock.now += 5
    assert eng.state == "half-open"
