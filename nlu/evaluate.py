"""Intent evaluation in Rasa's terms: accuracy, macro-F1, per-intent table, top confusions,
and an `intent_report.json` shaped like Rasa's (sklearn's classification report + `confused_with`),
plus the engine that was measured and the threshold calibration (nlu/calibration.py).

The report is labelled with the engine that actually answered: each parse says which engine gave
it, and `evaluate(..., engine="rasa")` refuses a parse from any other (e.g. the embedded engine
standing in for a Rasa server that is down), so a measurement never silently measures something
else. An engine that fails mid-way fails the evaluation (`MeasurementError`).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from sklearn.metrics import classification_report

from nlu.calibration import DEFAULT_TARGET, Calibration, Scored, calibrate
from nlu.data import Example, TrainingData
from nlu.embedded import EmbeddedEngine, fit
from nlu.types import Parse

TOP = 3  # ranking entries kept per message (the "did you mean" buttons)


class MeasurementError(RuntimeError):
    """The evaluation is void: the engine failed or another engine answered. `str()` is one line."""

    def __init__(self, done: int, total: int, reason: str) -> None:
        super().__init__(f"after {done} of {total} messages: {reason}")
        self.done = done
        self.total = total
        self.reason = reason


@dataclass
class Report:
    truth: list[str]
    predicted: list[str]
    texts: list[str]
    confidences: list[float] = field(default_factory=list)
    tops: list[tuple[str, ...]] = field(default_factory=list)  # best intents first, per message
    engines: Counter[str] = field(default_factory=Counter)  # which engine gave how many parses
    method: str = ""  # e.g. "held-out file content/nlu_test/heldout.yml", "5-fold CV"

    def add(self, truth: str, parse: Parse) -> None:
        self.truth.append(truth)
        self.predicted.append(parse.intent)
        self.texts.append(parse.text)
        self.confidences.append(parse.confidence)
        self.tops.append(tuple(r.name for r in parse.ranking[:TOP]) or (parse.intent,))
        self.engines[parse.engine] += 1

    @property
    def engine(self) -> str:
        """The engine measured: one name, or every engine that answered with its count."""
        if len(self.engines) == 1:
            return next(iter(self.engines))
        return ", ".join(f"{name} x{n}" for name, n in self.engines.most_common()) or "-"

    def scored(self) -> list[Scored]:
        return [
            Scored(t, p, c, top)
            for t, p, c, top in zip(
                self.truth, self.predicted, self.confidences, self.tops, strict=True
            )
        ]

    def calibration(self, target: float = DEFAULT_TARGET) -> Calibration:
        return calibrate(self.scored(), target=target)

    @property
    def accuracy(self) -> float:
        hits = sum(t == p for t, p in zip(self.truth, self.predicted, strict=True))
        return hits / len(self.truth) if self.truth else 0.0

    def as_rasa(self) -> dict[str, Any]:
        labels = sorted(set(self.truth))
        report: dict[str, Any] = classification_report(
            self.truth, self.predicted, labels=labels, output_dict=True, zero_division=0
        )
        confused: dict[str, Counter[str]] = defaultdict(Counter)
        for t, p in zip(self.truth, self.predicted, strict=True):
            if t != p:
                confused[t][p] += 1
        for label in labels:
            report[label]["confused_with"] = dict(confused[label].most_common())
        report["accuracy"] = self.accuracy
        return report

    @property
    def macro_f1(self) -> float:
        return float(self.as_rasa()["macro avg"]["f1-score"])

    def confusions(self, top: int = 10) -> list[tuple[str, str, int]]:
        pairs = Counter((t, p) for t, p in zip(self.truth, self.predicted, strict=True) if t != p)
        return [(t, p, n) for (t, p), n in pairs.most_common(top)]

    def print(
        self,
        out: TextIO = sys.stdout,
        *,
        threshold: float | None = None,
        target: float = DEFAULT_TARGET,
    ) -> None:
        """The per-intent table, top confusions, the calibration table (`threshold`: the current
        setting, marked) and, as the last line, `accuracy=... macro_f1=...`."""
        rasa = self.as_rasa()
        labels = sorted(set(self.truth))
        method = f" on {self.method}" if self.method else ""
        print(f"engine measured: {self.engine}{method}, {len(self.truth)} messages\n", file=out)
        width = max(len(label) for label in [*labels, "intent"])
        print(f"{'intent':<{width}}  precision  recall     f1  support", file=out)
        for label in labels:
            r = rasa[label]
            print(
                f"{label:<{width}}  {r['precision']:9.3f} {r['recall']:7.3f} "
                f"{r['f1-score']:6.3f} {int(r['support']):8d}",
                file=out,
            )
        print("\ntop confusions (true -> predicted: count):", file=out)
        for t, p, n in self.confusions() or [("-", "-", 0)]:
            print(f"  {t} -> {p}: {n}", file=out)
        if self.confidences:
            self.calibration(target).print(out, current=threshold)
        print(f"\naccuracy={self.accuracy:.3f} macro_f1={self.macro_f1:.3f}", file=out)

    def to_json(self, target: float = DEFAULT_TARGET) -> dict[str, Any]:
        """Rasa's intent report plus `engine`, `method` and `calibration` (when confidences
        were recorded)."""
        report = self.as_rasa()
        report["engine"] = self.engine
        report["engines"] = dict(self.engines)
        report["method"] = self.method
        if self.confidences:
            report["calibration"] = self.calibration(target).to_json()
        return report

    def write(self, directory: Path, target: float = DEFAULT_TARGET) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "intent_report.json"
        text = json.dumps(self.to_json(target), ensure_ascii=False, indent=2)
        path.write_text(text, "utf-8")
        return path


async def evaluate(
    parse: Callable[[str], Awaitable[Parse]],
    examples: Sequence[Example],
    progress: Callable[[int, int], None] | None = None,
    *,
    engine: str | None = None,
    method: str = "",
) -> Report:
    """Parse every example with `parse` (an engine's) and compare with its intent. With `engine`,
    every parse must come from that engine. Any failure raises MeasurementError: no report is
    better than one that counts answers from somewhere else."""
    report = Report([], [], [], method=method)
    total = len(examples)
    for i, ex in enumerate(examples):
        try:
            result = await parse(ex.text)
        except Exception as exc:
            raise MeasurementError(i, total, str(exc) or type(exc).__name__) from exc
        if engine is not None and result.engine != engine:
            raise MeasurementError(
                i, total, f"the answer came from {result.engine!r}, not from {engine!r}"
            )
        report.add(ex.intent, result)
        if progress and ((i + 1) % 25 == 0 or i + 1 == total):
            progress(i + 1, total)
    return report


def cross_validate(
    data: TrainingData, folds: int, progress: Callable[[int, int], None] | None = None
) -> Report:
    """Stratified K-fold cross-validation of the embedded engine on the training data."""
    by_intent: dict[str, list[Example]] = defaultdict(list)
    for ex in data.examples:
        by_intent[ex.intent].append(ex)
    rng = random.Random(42)
    fold_of: dict[int, int] = {}
    for group in by_intent.values():
        order = list(range(len(group)))
        rng.shuffle(order)
        for rank, idx in enumerate(order):
            fold_of[id(group[idx])] = rank % folds
    report = Report([], [], [], method=f"{folds}-fold cross-validation of the training data")
    for k in range(folds):
        train = [e for e in data.examples if fold_of[id(e)] != k]
        test = [e for e in data.examples if fold_of[id(e)] == k]
        engine = EmbeddedEngine(fit(train, data.regexes, f"cv{k}"))
        for ex in test:
            report.add(ex.intent, engine.parse_sync(ex.text))
        if progress:
            progress(k + 1, folds)
    return report
