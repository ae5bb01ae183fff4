"""The NLU contract: what every intent engine returns, whichever engine answers.

`Parse` mirrors the useful part of Rasa's `/model/parse` answer (intent, confidence, ranking,
entities) so the dialog engine never knows whether the embedded engine or a Rasa server spoke.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

FALLBACK_INTENT = "nlu_fallback"  # what Rasa's FallbackClassifier puts on top below its threshold


@dataclass(frozen=True, slots=True)
class IntentScore:
    name: str
    confidence: float

    def __reduce__(self) -> tuple[Any, ...]:  # see Parse.__reduce__
        return IntentScore, (self.name, self.confidence)


@dataclass(frozen=True, slots=True)
class Entity:
    """An extracted value: `entity` is "phone" or "account"; `value` is normalised
    (a phone as "+7" and 10 digits, an account as digits only); start/end index into the text."""

    entity: str
    value: str
    start: int
    end: int
    extractor: str = ""

    def __reduce__(self) -> tuple[Any, ...]:  # see Parse.__reduce__
        return Entity, (self.entity, self.value, self.start, self.end, self.extractor)


@dataclass(frozen=True, slots=True)
class Parse:
    text: str
    intent: str  # the top intent of the contract; never "nlu_fallback" (see `confidence`)
    confidence: float
    ranking: tuple[IntentScore, ...] = ()  # best first, at most 10, `intent` included
    entities: tuple[Entity, ...] = ()
    engine: str = ""  # "embedded" | "rasa" | "embedded (rasa unavailable)"
    extra: dict[str, Any] = field(default_factory=dict)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as a constructor call (parses come back from the helper process,
        nlu/offload.py): a frozen slots dataclass's own unpickling looks its fields up and sets
        each one through `object.__setattr__`, ~1% of the process's CPU at 600 msg/s."""
        fields = (self.text, self.intent, self.confidence, self.ranking, self.entities)
        return Parse, (*fields, self.engine, self.extra)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (stored with each message). Spelled out: `asdict` costs 10x on the hot path."""
        return {
            "text": self.text,
            "intent": self.intent,
            "confidence": self.confidence,
            "ranking": [{"name": r.name, "confidence": r.confidence} for r in self.ranking],
            "entities": [
                {
                    "entity": e.entity,
                    "value": e.value,
                    "start": e.start,
                    "end": e.end,
                    "extractor": e.extractor,
                }
                for e in self.entities
            ],
            "engine": self.engine,
            "extra": dict(self.extra),
        }


class IntentEngine(Protocol):
    """Anything that turns a subscriber's text into a `Parse` (async; never blocks the loop)."""

    name: str

    async def parse(self, text: str) -> Parse: ...
