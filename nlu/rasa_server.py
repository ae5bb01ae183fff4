"""`RasaServerEngine`: the intent engine backed by a Rasa 3.6 server over HTTP.

    engine = RasaServerEngine("http://127.0.0.1:5005", token="...", timeout=2.0)
    parse = await engine.parse("где можно оплатить связь")

`POST {url}/model/parse?token=...` with `{"text": ...}`; Rasa's answer becomes a `Parse`:

* When Rasa's FallbackClassifier put `nlu_fallback` on top, `Parse.intent` is the best *real*
  intent under it with its own confidence (the dialog layer applies its own threshold), and
  `Parse.extra["rasa_fallback"]` is True.
* `ranking` is Rasa's `intent_ranking` without `nlu_fallback`, best first, at most 10.
* Entities `phone` and `account` are normalised ("+7" and 10 digits; digits only); one span found by
  two extractors or patterns is kept once (the RegexEntityExtractor's, then the
  longest, wins); unparseable values are dropped.

`await engine.ready()` checks `GET /status` first: reachable, token accepted, a model loaded (what
`nlu parse/evaluate --engine rasa` require before measuring anything).

Every failure (connection refused, timeout, non-200, malformed JSON) raises `RasaUnavailable`
with a one-line reason that never contains the token. The whole call, connection included, is
bounded by `timeout`, so a dead or hung server costs a conversation at most that long.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterable
from typing import Any

import aiohttp

from nlu.phones import normalise_phone  # one normalisation for both engines
from nlu.types import FALLBACK_INTENT, Entity, IntentScore, Parse

MAX_RANKING = 10
EMPTY_TEXT_INTENT = "out_of_scope"  # what an empty message "means", with confidence 0
_PREFERRED_EXTRACTOR = "RegexEntityExtractor"
NO_MODEL = "no model loaded (train and load one: `supportbot rasa serve`, docs/rasa.md)"


class RasaUnavailable(Exception):
    """The Rasa server did not give a usable answer; `str()` is one line, without the token."""


def normalise_account(value: str) -> str | None:
    """A personal account (лицевой счёт) number as digits only, or None when it has none."""
    digits = re.sub(r"\D", "", value)
    return digits or None


_NORMALISERS = {"phone": normalise_phone, "account": normalise_account}


class RasaServerEngine:
    """`IntentEngine` for a Rasa 3.6 server started with `rasa run --enable-api`."""

    name = "rasa"

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 2.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._token = token
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never shows the token
        return f"RasaServerEngine({self.url!r}, timeout={self.timeout})"

    async def parse(self, text: str) -> Parse:
        if not text.strip():
            return Parse(text=text, intent=EMPTY_TEXT_INTENT, confidence=0.0, engine=self.name)
        try:
            async with asyncio.timeout(self.timeout):
                body = await self._post(text)
        except TimeoutError:
            raise RasaUnavailable(f"{self.url}: no answer within {self.timeout:g} s") from None
        return parse_answer(text, body, engine=self.name)

    async def ready(self) -> dict[str, Any]:
        """Rasa's `GET /status` when the server can answer parses: reachable, the token accepted
        and a model loaded. Raises RasaUnavailable naming what is wrong otherwise (a server that
        is still starting or loading its model refuses connections; one without a model answers
        409 "No agent loaded")."""
        try:
            async with asyncio.timeout(self.timeout):
                status, body = await self._request("GET", "/status")
        except TimeoutError:
            raise RasaUnavailable(f"{self.url}: no answer within {self.timeout:g} s") from None
        self._check_status(status, body)
        try:
            answer = json.loads(body)
        except ValueError:
            raise RasaUnavailable(f"{self.url}: malformed JSON from /status") from None
        if not isinstance(answer, dict) or not (answer.get("model_file") or answer.get("model_id")):
            raise RasaUnavailable(f"{self.url}: {NO_MODEL}")
        return answer

    async def _post(self, text: str) -> Any:
        status, raw = await self._request("POST", "/model/parse", {"text": text})
        self._check_status(status, raw)
        try:
            return json.loads(raw)
        except ValueError:
            raise RasaUnavailable(f"{self.url}: malformed JSON in the answer") from None

    async def _request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        session = self._ensure_session()
        params = {"token": self._token} if self._token else None
        try:
            async with session.request(
                method, f"{self.url}{path}", json=body, params=params
            ) as response:
                return response.status, await response.read()
        except TimeoutError:
            raise  # aiohttp's own timeouts too: reported by the caller as "no answer within"
        except aiohttp.ClientConnectorError as exc:
            reason = self._redact(str(exc.os_error.strerror or exc.os_error))
            raise RasaUnavailable(f"{self.url}: cannot connect ({reason})") from None
        except aiohttp.ClientError as exc:
            reason = self._redact(f"{type(exc).__name__}: {exc}".splitlines()[0])
            raise RasaUnavailable(f"{self.url}: {reason}") from None

    def _check_status(self, status: int, raw: bytes) -> None:
        if status == 409:  # Rasa: "No agent loaded. To continue processing, a model ..."
            raise RasaUnavailable(f"{self.url}: {NO_MODEL}")
        if status != 200:
            hint = {401: " (wrong or missing token)", 403: " (token refused)"}.get(status, "")
            snippet = self._redact(" ".join(raw[:200].decode("utf-8", "replace").split()))
            raise RasaUnavailable(f"{self.url}: HTTP {status}{hint}: {snippet}".rstrip(": "))

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                connector=aiohttp.TCPConnector(limit=64),
            )
        return self._session

    def _redact(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def parse_answer(text: str, body: Any, *, engine: str = "rasa") -> Parse:
    """Rasa 3.6's `/model/parse` JSON as a `Parse`; RasaUnavailable when it is not that shape."""
    if not isinstance(body, dict) or not isinstance(body.get("intent"), dict):
        raise RasaUnavailable("malformed answer: no `intent` object")
    try:
        top_name = body["intent"].get("name")
        top_conf = float(body["intent"].get("confidence") or 0.0)
        ranking = [
            IntentScore(str(r["name"]), float(r["confidence"]))
            for r in body.get("intent_ranking") or []
            if r.get("name") and r["name"] != FALLBACK_INTENT
        ]
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise RasaUnavailable(f"malformed answer: bad intent ranking ({exc})") from None
    if top_name and top_name != FALLBACK_INTENT and all(r.name != top_name for r in ranking):
        ranking.append(IntentScore(str(top_name), top_conf))
    ranking.sort(key=lambda r: r.confidence, reverse=True)  # stable: Rasa's order among ties
    ranking = ranking[:MAX_RANKING]
    extra: dict[str, Any] = {}
    if top_name == FALLBACK_INTENT:
        extra["rasa_fallback"] = True
    if ranking:
        intent, confidence = ranking[0].name, ranking[0].confidence
    else:  # a model with no intents, or an empty text
        intent, confidence = EMPTY_TEXT_INTENT, 0.0
    return Parse(
        text=text,
        intent=intent,
        confidence=confidence,
        ranking=tuple(ranking),
        entities=tuple(_entities(body.get("entities") or [])),
        engine=engine,
        extra=extra,
    )


def _entities(items: Iterable[Any]) -> list[Entity]:
    found: dict[tuple[str, int, int], Entity] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = str(item.get("entity", ""))
        normalise = _NORMALISERS.get(kind)
        try:
            start, end = int(item["start"]), int(item["end"])
        except (KeyError, TypeError, ValueError):
            continue
        raw = item.get("value")
        value = normalise(str(raw)) if normalise and raw is not None else None
        if normalise is not None and value is None:
            continue  # e.g. a half-recognised phone number: better none than a wrong one
        entity = Entity(
            entity=kind,
            value=value if value is not None else str(raw),
            start=start,
            end=end,
            extractor=str(item.get("extractor") or ""),
        )
        clash = _overlapping(found, entity)
        if clash is None:
            found[(kind, start, end)] = entity
        elif _rank(entity) > _rank(clash):
            del found[(clash.entity, clash.start, clash.end)]
            found[(kind, start, end)] = entity
    return sorted(found.values(), key=lambda e: (e.start, e.end, e.entity))


def _rank(entity: Entity) -> tuple[bool, int]:
    """Of two overlapping spans of one entity: the regex extractor's, then the longer one."""
    return entity.extractor == _PREFERRED_EXTRACTOR, entity.end - entity.start


def _overlapping(found: dict[tuple[str, int, int], Entity], entity: Entity) -> Entity | None:
    for other in found.values():
        if other.entity == entity.entity and other.start < entity.end and entity.start < other.end:
            return other
    return None
