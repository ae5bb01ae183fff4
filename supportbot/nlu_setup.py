"""Builds the configured intent engine (embedded, or Rasa with the embedded as failover) and
keeps it in step with content/nlu/: edited training data retrains in the background and swaps
in atomically; data that fails to load is rejected with `file:line` messages in the log and the
model already in use keeps answering. `rasa_only` is the Rasa server alone, for measuring it."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nlu.data import TrainingData, TrainingDataError, load_training_data
from nlu.embedded import EmbeddedEngine
from nlu.offload import Offload
from nlu.rasa_server import RasaServerEngine, RasaUnavailable
from nlu.types import IntentEngine, Parse
from supportbot.settings import ConfigError, Settings

log = logging.getLogger(__name__)


def training_data(settings: Settings) -> TrainingData:
    return load_training_data([settings.content_dir / "nlu"])


async def build_engine(settings: Settings, data: TrainingData | None = None) -> IntentEngine:
    embedded = await EmbeddedEngine.train(
        data or training_data(settings), settings.data_dir / "nlu-cache"
    )
    if settings.nlu.engine == "embedded":
        return embedded
    from nlu.failover import FailoverEngine

    rasa = _rasa_client(settings)
    cfg = settings.nlu
    try:  # say it once, naming the setting, rather than only when the first subscriber writes
        await rasa.parse("привет")
    except Exception as exc:
        log.warning(
            "SUPPORTBOT_NLU__RASA_URL: Rasa at %s is not answering (%s); the embedded engine "
            "answers until it does",
            cfg.rasa_url,
            exc,
        )
    return FailoverEngine(rasa, embedded)


def _rasa_client(settings: Settings) -> RasaServerEngine:
    cfg = settings.nlu
    token = cfg.rasa_token.get_secret_value() if cfg.rasa_token else None
    return RasaServerEngine(cfg.rasa_url, token=token, timeout=cfg.rasa_timeout)


async def rasa_only(settings: Settings) -> RasaServerEngine:
    """The Rasa server alone, without the embedded failover, once it is ready to answer: what
    `nlu parse/evaluate --engine rasa` measure. ConfigError (one line naming
    SUPPORTBOT_NLU__RASA_URL) when it is unreachable, refuses the token or has no model loaded.
    The caller closes it."""
    rasa = _rasa_client(settings)
    try:
        await rasa.ready()
    except RasaUnavailable as exc:
        await rasa.close()
        raise ConfigError(rasa_problem(str(exc))) from None
    return rasa


def rasa_problem(reason: str, what: str = "Rasa is not usable") -> str:
    """The one line `--engine rasa` ends with when the server cannot be measured."""
    return (
        f"SUPPORTBOT_NLU__RASA_URL: {what}: {reason}; nothing was measured "
        "(with --engine rasa the embedded engine never stands in)"
    )


class ReloadingEngine:
    """An `IntentEngine` that follows edits to the training data while the bot runs."""

    def __init__(
        self,
        settings: Settings,
        engine: IntentEngine,
        data: TrainingData,
        folder: Path | None = None,
    ) -> None:
        self.settings = settings
        # The training data's folder: content/nlu, or the published version's (dialogs/versions.py).
        self.folder = folder or settings.content_dir / "nlu"
        self.current = engine
        self.name = engine.name
        self.fingerprint = data.fingerprint()
        self.live_since = datetime.now(UTC)  # when the answering model went live
        self._intents = tuple(data.intents)
        self._stamp = _stamp(self.folder)
        self.offload: Offload | None = None  # the embedded parse runs there (nlu/offload.py)

    @classmethod
    async def start(cls, settings: Settings, folder: Path | None = None) -> ReloadingEngine:
        data = load_training_data([folder]) if folder is not None else training_data(settings)
        return cls(settings, await build_engine(settings, data), data, folder)

    async def parse(self, text: str) -> Parse:
        engine = self.current
        if self.offload is not None and isinstance(engine, EmbeddedEngine):
            parse: Parse = await self.offload.run(engine, "parse_sync", text)
            return parse
        return await engine.parse(text)

    async def watch(self, interval: float = 1.0) -> None:
        """Poll the data folder's file times; reload when they change (until cancelled)."""
        while True:
            await asyncio.sleep(interval)
            stamp = await asyncio.to_thread(_stamp, self.folder)
            if stamp != self._stamp:
                self._stamp = stamp
                await self.reload()

    async def reload(self) -> bool:
        """True if a new model went live."""
        try:
            data = await asyncio.to_thread(load_training_data, [self.folder])
        except TrainingDataError as exc:
            log.error("nlu: training data rejected, the current model stays in use:\n%s", exc)
            return False
        if data.fingerprint() == self.fingerprint:
            return False
        engine = await build_engine(self.settings, data)
        old, self.current, self.fingerprint = self.current, engine, data.fingerprint()
        self.live_since = datetime.now(UTC)
        self._intents = tuple(data.intents)
        log.info(
            "nlu: new model live (%d examples, %d intents)", len(data.examples), len(data.intents)
        )
        close = getattr(old, "close", None)
        if close is not None:
            await close()
        return True

    async def switch(self, folder: Path) -> bool:
        """Follow the training data in `folder` from now on (a new content version); True if a
        new model went live (the same data keeps the model)."""
        self.folder = folder
        self._stamp = await asyncio.to_thread(_stamp, folder)
        return await self.reload()

    def intents(self) -> tuple[str, ...]:
        """The intents the live model knows (the dialogs check their flows against these)."""
        return self._intents

    def health(self) -> dict[str, Any]:
        """For /healthz: which engine answers, the model's data fingerprint, Rasa's breaker."""
        report: dict[str, Any] = {"engine": self.current.name, "data": self.fingerprint}
        breaker = getattr(self.current, "health", None)  # FailoverEngine (Rasa mode)
        if breaker is not None:
            report["rasa"] = breaker()
        return report

    async def close(self) -> None:
        close = getattr(self.current, "close", None)
        if close is not None:
            await close()


def _stamp(folder: Path) -> tuple[tuple[str, float, int], ...]:
    return tuple(
        (p.name, p.stat().st_mtime, p.stat().st_size) for p in sorted(folder.glob("*.y*ml"))
    )
