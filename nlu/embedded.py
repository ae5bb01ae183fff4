"""The embedded intent engine: in-process, trained from the Rasa-format data in seconds.

Features: character n-grams (2-5, inside word boundaries) of the normalised text (lowercase, ё as
е, telecom slang written one way by nlu/slang.py, numbers masked), which absorb
typos and word endings ("интренет", "симку"), plus word uni/bigrams of pymorphy3 lemmas, which
absorb Russian morphology ("оплатить/оплачу/оплата"). A multinomial logistic regression on top
gives calibrated-enough probabilities for a fallback threshold. Numbers are masked before
featurisation (a phone number says nothing about the intent); entities come from nlu/entities.py.

Training is deterministic: the same data gives a bit-identical model (fixed solver seed, sorted
vocabularies, examples in file order), so a restart never changes an answer. It runs in a worker
thread (never on the event loop); the trained model is cached on disk by the data's fingerprint,
`MODEL_VERSION` and the slang rules' signature, so a restart with unchanged data loads in
milliseconds and a changed rule retrains.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import pickle
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pymorphy3

from nlu import entities, slang
from nlu.data import Example, TrainingData
from nlu.types import IntentScore, Parse

log = logging.getLogger(__name__)

MODEL_VERSION = 4  # bump when features or the classifier change: old caches are ignored
SEED = 0  # the solver's shuffling seed: same data, same model
_WORD = re.compile(r"[a-zа-я]+|\d+")
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


@functools.cache
def _morph() -> pymorphy3.MorphAnalyzer:
    return pymorphy3.MorphAnalyzer()


@functools.lru_cache(maxsize=100_000)
def _lemma(word: str) -> str:
    if word.isdigit() or len(word) < 3:
        return word
    return str(_morph().parse(word)[0].normal_form).replace("ё", "е")


def normalise(text: str) -> str:
    """What the features see, for training examples and messages alike."""
    text = slang.canonical(text.lower().replace("ё", "е"))
    text = _DIGITS.sub(lambda m: "0" * min(len(m.group()), 3), text)
    return _SPACES.sub(" ", text).strip()


def lemmas(normalised: str) -> str:
    return " ".join(_lemma(w) for w in _WORD.findall(normalised))


def char_ngrams(text: str, low: int = 2, high: int = 5) -> list[str]:
    """scikit-learn's `char_wb` analyzer: n-grams inside space-padded words."""
    grams: list[str] = []
    for word in text.split():
        padded = f" {word} "
        size = len(padded)
        for n in range(low, high + 1):
            if n > size:
                break
            grams.extend(padded[i : i + n] for i in range(size - n + 1))
    return grams


def word_ngrams(lemma_text: str) -> list[str]:
    tokens = lemma_text.split()
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


@dataclass
class _Block:
    """One TF-IDF feature block (sublinear tf, l2-normalised), as plain dicts and arrays."""

    vocabulary: dict[str, int]
    idf: np.ndarray
    offset: int

    def features(self, grams: list[str]) -> tuple[np.ndarray, np.ndarray]:
        # Counted in C, in order of first occurrence (as the loop it replaces did, so the
        # sums add up in the same order); unknown n-grams count under None.
        counts: Counter[int | None] = Counter(map(self.vocabulary.get, grams))
        counts.pop(None, None)
        if not counts:
            return np.empty(0, dtype=np.intp), np.empty(0)
        idx = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=float, count=len(counts))
        vals = (1.0 + np.log(tf)) * self.idf[idx]
        return idx + self.offset, vals / np.linalg.norm(vals)


@dataclass
class Model:
    """A trained classifier reduced to dictionaries and one weight matrix: scoring a text is a
    few dict look-ups and a small dot product (scikit-learn's own transform costs ~10x more)."""

    intents: list[str]
    chars: _Block
    words: _Block
    weights: np.ndarray  # (features, intents)
    bias: np.ndarray
    regexes: dict[str, list[str]]
    fingerprint: str
    version: int = MODEL_VERSION
    features: str = slang.SIGNATURE  # the normalisation rules the model was trained with

    def scores(self, text: str) -> np.ndarray:
        norm = normalise(text)
        ci, cv = self.chars.features(char_ngrams(norm))
        wi, wv = self.words.features(word_ngrams(lemmas(norm)))
        logits = self.bias + cv @ self.weights[ci] + wv @ self.weights[wi]
        exp = np.exp(logits - logits.max())
        return np.asarray(exp / exp.sum())


def fit(examples: list[Example], regexes: dict[str, list[str]], fingerprint: str) -> Model:
    """Train a model (CPU-bound; call it off the event loop). Deterministic: the vocabularies are
    sorted by scikit-learn, the classes are sorted, and saga shuffles with a fixed seed (with
    `random_state=None` it drew from NumPy's global RNG and every start trained another model).
    scikit-learn and scipy are imported here only: a start that loads a cached model skips them."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    norms = [normalise(e.text) for e in examples]
    labels = [e.intent for e in examples]
    chars = TfidfVectorizer(analyzer=char_ngrams, sublinear_tf=True)
    words = TfidfVectorizer(analyzer=word_ngrams, sublinear_tf=True)
    x = hstack([chars.fit_transform(norms), words.fit_transform([lemmas(n) for n in norms])])
    classifier = LogisticRegression(
        C=10.0, solver="saga", max_iter=300, tol=1e-3, random_state=SEED
    )
    classifier.fit(x.tocsr(), labels)
    n_chars = len(chars.vocabulary_)
    return Model(
        intents=[str(c) for c in classifier.classes_],
        chars=_Block(dict(chars.vocabulary_), chars.idf_, 0),
        words=_Block(dict(words.vocabulary_), words.idf_, n_chars),
        weights=np.ascontiguousarray(classifier.coef_.T),
        bias=classifier.intercept_.copy(),
        regexes=regexes,
        fingerprint=fingerprint,
    )


class EmbeddedEngine:
    name = "embedded"

    def __init__(self, model: Model) -> None:
        self.model = model

    @classmethod
    async def train(cls, data: TrainingData, cache_dir: Path | None = None) -> EmbeddedEngine:
        """Load the cached model for this data, or train one in a worker thread."""
        return cls(await asyncio.to_thread(train_or_load, data, cache_dir))

    async def parse(self, text: str) -> Parse:
        return self.parse_sync(text)

    def parse_sync(self, text: str) -> Parse:
        """Sub-millisecond, so it runs inline: a thread hop would cost more than the work."""
        probs = self.model.scores(text)
        order = np.argsort(probs)[::-1][:10]
        ranking = tuple(IntentScore(self.model.intents[i], float(probs[i])) for i in order)
        return Parse(
            text=text,
            intent=ranking[0].name,
            confidence=ranking[0].confidence,
            ranking=ranking,
            entities=entities.extract(text, self.model.regexes),
            engine=self.name,
        )


def train_or_load(data: TrainingData, cache_dir: Path | None) -> Model:
    fingerprint = data.fingerprint()
    name = f"embedded-v{MODEL_VERSION}-{slang.SIGNATURE}-{fingerprint}.pkl"
    path = cache_dir / name if cache_dir else None
    if path is not None and path.exists():
        try:
            with path.open("rb") as f:
                model: Any = pickle.load(f)
            if (
                isinstance(model, Model)
                and model.fingerprint == fingerprint
                and (model.version, model.features) == (MODEL_VERSION, slang.SIGNATURE)
            ):
                log.info("nlu: loaded cached model %s", path.name)
                return model
        except (OSError, pickle.UnpicklingError, AttributeError, EOFError) as exc:
            log.warning("nlu: ignoring unreadable model cache %s: %r", path, exc)
    started = time.perf_counter()
    model = fit(data.examples, data.regexes, fingerprint)
    log.info(
        "nlu: trained on %d examples, %d intents in %.1fs",
        len(data.examples),
        len(model.intents),
        time.perf_counter() - started,
    )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as f:
            pickle.dump(model, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
    return model
