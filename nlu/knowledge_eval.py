"""Measuring knowledge-base retrieval on a question set: how often the right article comes first
or in the top 3, and what the bot would do at its thresholds (answer right, answer wrong, offer
titles, stay silent) — the figures `supportbot kb evaluate` prints.

A question set is YAML: `questions: [{q: "гиги сгорают?", expect: rollover}, {q: ..., expect:
none}]`; `none` means no article answers it (the bot must not answer from the knowledge base).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from nlu.knowledge import KnowledgeIndex

NONE = "none"


class QuestionSetError(ValueError):
    """A question set that cannot be used (the message names the file and the entry)."""


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    expect: str  # an article id or NONE


@dataclass
class Outcome:
    question: Question
    ranked: list[tuple[str, float]]

    @property
    def top(self) -> tuple[str, float] | None:
        return self.ranked[0] if self.ranked else None


@dataclass
class KbReport:
    answer_at: float
    suggest_at: float
    outcomes: list[Outcome] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def with_article(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.question.expect != NONE]

    @property
    def without_article(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.question.expect == NONE]

    def top1(self) -> float:
        return _share(
            self.with_article, lambda o: o.top is not None and o.top[0] == o.question.expect
        )

    def top3(self) -> float:
        return _share(
            self.with_article, lambda o: o.question.expect in [a for a, _ in o.ranked[:3]]
        )

    def answered(self, outcome: Outcome, at: float | None = None) -> bool:
        top = outcome.top
        return top is not None and top[1] >= (self.answer_at if at is None else at)

    def answered_right(self, at: float | None = None) -> float:
        return _share(
            self.outcomes,
            lambda o: self.answered(o, at) and o.top is not None and o.top[0] == o.question.expect,
        )

    def answered_wrong(self, at: float | None = None) -> float:
        """Answered with an article that is not the expected one (or when none was)."""
        return _share(
            self.outcomes,
            lambda o: self.answered(o, at) and o.top is not None and o.top[0] != o.question.expect,
        )

    def offered(self) -> float:
        """Not answered, but the expected article is among the offered titles."""
        return _share(
            self.with_article,
            lambda o: (
                not self.answered(o)
                and any(a == o.question.expect and s >= self.suggest_at for a, s in o.ranked[:3])
            ),
        )

    def none_answered(self) -> float:
        return _share(self.without_article, self.answered)

    def wrong(self) -> list[Outcome]:
        return [
            o
            for o in self.outcomes
            if self.answered(o) and o.top is not None and o.top[0] != o.question.expect
        ]

    def missed(self) -> list[Outcome]:
        """Questions with an article that the bot would not answer (or answer wrongly)."""
        return [
            o
            for o in self.with_article
            if not (self.answered(o) and o.top is not None and o.top[0] == o.question.expect)
        ]

    def p(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0


def _share(items: list[Outcome], test: Callable[[Outcome], bool]) -> float:
    if not items:
        return 0.0
    return sum(1 for o in items if test(o)) / len(items)


def load_questions(path: Path, known: set[str]) -> list[Question]:
    """The question set at `path`; every `expect` must be a known article id or `none`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QuestionSetError(f"{path}: {exc}") from exc
    raw = data.get("questions") if isinstance(data, dict) else None
    if not isinstance(raw, list) or not raw:
        raise QuestionSetError(f"{path}: expected `questions:` with a list of {{q, expect}}")
    out = []
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict) or not isinstance(item.get("q"), str):
            raise QuestionSetError(f"{path}: question {i}: needs `q` (text) and `expect`")
        expect = str(item.get("expect", "")).strip()
        if expect != NONE and expect not in known:
            raise QuestionSetError(
                f"{path}: question {i} ({item['q']!r}): no article {expect!r} "
                f"(use an article id from content/knowledge or `none`)"
            )
        out.append(Question(item["q"], expect))
    return out


def evaluate_kb(
    index: KnowledgeIndex, questions: list[Question], answer_at: float, suggest_at: float
) -> KbReport:
    report = KbReport(answer_at, suggest_at)
    for question in questions:
        started = time.perf_counter()
        hits = index.search(question.text, 3)
        report.latencies_ms.append((time.perf_counter() - started) * 1000)
        report.outcomes.append(Outcome(question, [(h.id, h.score) for h in hits]))
    return report
