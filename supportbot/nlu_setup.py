"""Builds the configured intent engine: the embedded one, or Rasa with the embedded as failover."""

from __future__ import annotations

from nlu.data import TrainingData, load_training_data
from nlu.embedded import EmbeddedEngine
from nlu.types import IntentEngine
from supportbot.settings import Settings


def training_data(settings: Settings) -> TrainingData:
    return load_training_data([settings.content_dir / "nlu"])


async def build_engine(settings: Settings, data: TrainingData | None = None) -> IntentEngine:
    embedded = await EmbeddedEngine.train(
        data or training_data(settings), settings.data_dir / "nlu-cache"
    )
    if settings.nlu.engine == "embedded":
        return embedded
    from nlu.failover import FailoverEngine
    from nlu.rasa_server import RasaServerEngine

    cfg = settings.nlu
    token = cfg.rasa_token.get_secret_value() if cfg.rasa_token else None
    rasa = RasaServerEngine(cfg.rasa_url, token=token, timeout=cfg.rasa_timeout)
    return FailoverEngine(rasa, embedded)
