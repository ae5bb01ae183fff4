"""Intent evaluation in Rasa's terms: accuracy, macro-F1, per-intent table, top confusions,
and an `intent_report.json` shaped like Rasa's (sklearn's classification report + `confused_with`).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sklearn.metrics import classification_report

from nlu.data import Example, TrainingData
from nlu.embedded import EmbeddedEngine, fit


@dataclass
class Report:
    truth: list[str]
    predicted: list[str]
    texts: list[str]

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

    def print(self, out: TextIO = sys.stdout) -> None:
        rasa = self.as_rasa()
        labels = sorted(set(self.truth))
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
        print(f"\naccuracy={self.accuracy:.3f} macro_f1={self.macro_f1:.3f}", file=out)

    def write(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "intent_report.json"
        path.write_text(json.dumps(self.as_rasa(), ensure_ascii=False, indent=2), "utf-8")
        return path


async def evaluate(
    parse: Callable[[str], Awaitable[Any]],
    examples: Sequence[Example],
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """Parse every example with `parse` (an engine's) and compare with its intent."""
    predicted = []
    for i, ex in enumerate(examples, 1):
        predicted.append((await parse(ex.text)).intent)
        if progress and (i % 25 == 0 or i == len(examples)):
            progress(i, len(examples))
    return Report([e.intent for e in examples], predicted, [e.text for e in examples])


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
    truth: list[str] = []
    predicted: list[str] = []
    texts: list[str] = []
    for k in range(folds):
        train = [e for e in data.examples if fold_of[id(e)] != k]
        test = [e for e in data.examples if fold_of[id(e)] == k]
        engine = EmbeddedEngine(fit(train, data.regexes, f"cv{k}"))
        for ex in test:
            truth.append(ex.intent)
            predicted.append(engine.parse_sync(ex.text).intent)
            texts.append(ex.text)
        if progress:
            progress(k + 1, folds)
    return Report(truth, predicted, texts)
