"""Finding the knowledge-base article that answers a question: in-process, on CPU, in about a
millisecond, with a score calibrated so that a weak match is not answered.

Each article is indexed as several *units*: its title, each of its alternative questions, its
keywords, and its body. A question is compared with every unit through two TF-IDF views:
- word lemmas (pymorphy3) and lemma bigrams, after telecom slang is written one way
  (nlu/slang.py): «гиги сгорают» meets «гигабайты сгорят»;
- character 3-5-grams inside words: typos and unknown forms («раутер», «вафля»).
An article's score is its best title/question/keyword match, nudged by how well its body
matches (`BODY_WEIGHT`), so a question phrased like no listed question still finds the article
whose text covers it; then lowered by the share of the question's words that no article uses
even misspelt (`UNKNOWN_PENALTY`: «у билайна есть семейный тариф?» is not about our plan). Scores are cosine similarities in [0, 1]; `supportbot kb evaluate`
calibrates the answer and suggestion thresholds on an independent question set.

Pure: no database, no content format; dialogs/content/knowledge.py loads articles into `Doc`s.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import logging
import math
import os
import pickle
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nlu import slang
from nlu.morph import lemma

if TYPE_CHECKING:
    from collections.abc import Callable

    from scipy.sparse import csr_matrix

log = logging.getLogger(__name__)
BODY_WEIGHT = 0.25  # how much the body's similarity adds to the best question's
UNKNOWN_PENALTY = 1.0  # a question whose words are half unknown scores half
OTHER_OPERATOR = "мтс"  # how nlu/slang.py writes any other operator's name
WORD_WEIGHT = 0.6  # lemma view vs character view in a unit's similarity
_WORD = re.compile(r"[a-zа-я0-9]+")
NEGATIONS = frozenset({"не", "ни"})
# Words that say nothing about the topic: asked in every question.
STOPWORDS = frozenset(
    """
    а в во да для до же за и из или к как ко ли на не нет ни но о об от по с со у что чтобы это
    я ты вы мы он она они мне меня мой моя мое мои твой ваш наш у меня нас вас себя свой
    быть мочь можно нужно надо хотеть сказать подсказать скажите подскажите пожалуйста плиз
    почему зачем какой какая какое какие который сколько когда где куда откуда чем кто
    ещё еще уже вот так там тут то бы ну привет здравствуйте добрый день вечер утро спасибо
    если что-то как-то есть весь всё все этот тот такой очень просто вообще
    """.split()
)


@dataclass(frozen=True, slots=True)
class Doc:
    """What retrieval needs of an article."""

    id: str
    title: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    body: str = ""


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    matched: str  # the title/question that matched best (for the console and analytics)
    unit: int = -1  # its index among the index's units (`KnowledgeIndex.coverage`)

    def __reduce__(self) -> tuple[Any, ...]:  # cheaper to unpickle (see nlu.types.Parse)
        return Hit, (self.id, self.score, self.matched, self.unit)


@functools.lru_cache(maxsize=16)  # one message is normalised by every view in a row
def normalise(text: str) -> str:
    """Lowercase, ё as е, slang written one way."""
    return slang.canonical(text.lower().replace("ё", "е"))


# A message is analysed by several views in a row (the three search views, the long-tail gate's
# two, the coverage and unknown-word checks): the analyses below are kept for the last few texts.
_RECENT = 32


@functools.lru_cache(maxsize=_RECENT)
def lemmas(text: str) -> tuple[str, ...]:
    return tuple(lemma(w) for w in _WORD.findall(normalise(text)))


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


@functools.lru_cache(maxsize=_RECENT)
def _word_analyzer(text: str) -> tuple[str, ...]:
    """Lemmas without stop words, and their bigrams; «не» joins the next word («что будет,
    если не платить» is not «как платить»)."""
    found: list[str] = []
    negate = False
    for w in lemmas(text):
        if w in NEGATIONS:
            negate = True
        elif w not in STOPWORDS:
            found.append(f"не_{w}" if negate else w)
            negate = False
    return (*found, *(f"{a} {b}" for a, b in itertools.pairwise(found)))


_SPACES = re.compile(r"\s\s+")


@functools.lru_cache(maxsize=_RECENT)
def _char_analyzer(text: str, low: int, high: int) -> tuple[str, ...]:
    """Character n-grams inside words, padded with a space at each end: scikit-learn's
    `analyzer="char_wb"` after `normalise`, written out so that a loaded index needs neither
    scikit-learn nor scipy (their imports cost ~1.5 s of every start)."""
    grams: list[str] = []
    add = grams.append
    for w in _SPACES.sub(" ", normalise(text)).split():
        w = f" {w} "
        size = len(w)
        for n in range(low, high + 1):
            offset = 0
            add(w[:n])
            while offset + n < size:
                offset += 1
                add(w[offset : offset + n])
            if offset == 0:  # a short word (shorter than n) counts once
                break
    return tuple(grams)


class _View:
    """One TF-IDF view (fitted by scikit-learn), kept as features x units so that a question
    touches only the rows of its own features: a search costs its few features, not the
    vocabulary (sklearn's `transform` + a sparse product cost ~10 ms at 1,000 articles).
    Only numpy arrays and our own analyzer are kept: loading a cached index imports neither
    scikit-learn nor scipy."""

    def __init__(self, analyzer: Callable[[str], Sequence[str]], texts: list[str]) -> None:
        from scipy.sparse import csr_matrix
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(analyzer=analyzer, sublinear_tf=True)
        by_feature = csr_matrix(vectorizer.fit_transform(texts).T)
        self.units = int(by_feature.shape[1])
        # The matrix as plain arrays: a search gathers its features' rows with numpy
        # (scipy's row indexing costs ~100 us a call, more than the arithmetic).
        self._indptr: np.ndarray = by_feature.indptr.astype(np.int64)
        self._indices: np.ndarray = by_feature.indices
        self._data: np.ndarray = by_feature.data
        self.vocabulary: dict[str, int] = dict(vectorizer.vocabulary_)
        self.idf: np.ndarray = vectorizer.idf_
        self.analyze = analyzer

    def by_feature(self) -> csr_matrix:
        """The features x units matrix (scipy; for fitting and tests, not for searching)."""
        from scipy.sparse import csr_matrix

        shape = (len(self._indptr) - 1, self.units)
        return csr_matrix((self._data, self._indices, self._indptr), shape=shape)

    def vector(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """`text` as the fitted vectorizer would weight it: (feature indices, weights)."""
        # Counted in C, in order of first occurrence (the loop it replaces gave the same order,
        # so the sums below add up in the same order); unknown features count under None.
        counts: Counter[int | None] = Counter(map(self.vocabulary.get, self.analyze(text)))
        counts.pop(None, None)
        rows = np.fromiter(counts, dtype=np.int64, count=len(counts))
        if not counts:
            return rows, np.zeros(0)
        tf = 1.0 + np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts)))
        weights = tf * self.idf[rows]  # sublinear tf x idf, as the units were weighted
        return rows, weights / np.linalg.norm(weights)

    def entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every stored entry of the feature rows `rows`, row after row: (where in the arrays,
        how many per row)."""
        starts = self._indptr[rows]
        lengths = self._indptr[rows + 1] - starts
        first = np.cumsum(lengths) - lengths  # where each row's entries begin among them
        at = np.repeat(starts - first, lengths) + np.arange(int(lengths.sum()))
        return at, lengths

    def similarity(self, text: str) -> np.ndarray:
        """Cosine similarity of `text` with every unit (the units are L2-normalised)."""
        rows, weights = self.vector(text)
        if not len(rows):
            return np.zeros(self.units)
        at, lengths = self.entries(rows)
        if not len(at):
            return np.zeros(self.units)
        contributions = np.repeat(weights, lengths) * self._data[at]
        return np.bincount(self._indices[at], weights=contributions, minlength=self.units)

    def column(self, rows: np.ndarray, unit: int) -> np.ndarray:
        """The weights of features `rows` in unit `unit`."""
        at, lengths = self.entries(rows)
        hit = self._indices[at] == unit
        out = np.zeros(len(rows))
        out[np.repeat(np.arange(len(rows)), lengths)[hit]] = self._data[at][hit]
        return out


class _Gate:
    """Is a message long tail (like the articles' questions) or one of the intents' requests
    (like their training examples)? A logistic regression over the same two views, trained in
    about half a second and kept per process for the same texts (`_gate`)."""

    def __init__(self, positives: Sequence[str], negatives: Sequence[str]) -> None:
        from scipy.sparse import hstack
        from sklearn.linear_model import LogisticRegression

        texts = [*positives, *negatives]
        self.words = _View(_word_analyzer, texts)
        self.chars = _View(functools.partial(_char_analyzer, low=2, high=5), texts)
        features = hstack([self.words.by_feature().T, self.chars.by_feature().T]).tocsr()
        labels = np.array([1] * len(positives) + [0] * len(negatives))
        model = LogisticRegression(
            C=10, max_iter=2000, class_weight="balanced", solver="saga", random_state=0
        )  # saga: the same model as lbfgs here, 10x faster on these sparse features
        model.fit(features, labels)
        coef = model.coef_.ravel()
        self.word_coef = coef[: len(self.words.vocabulary)]
        self.char_coef = coef[len(self.words.vocabulary) :]
        self.intercept = float(model.intercept_[0])

    def probability(self, text: str) -> float:
        logit = self.intercept
        for view, coef in ((self.words, self.word_coef), (self.chars, self.char_coef)):
            rows, weights = view.vector(text)
            if len(rows):
                logit += float(weights @ coef[rows])
        return 1.0 / (1.0 + math.exp(-logit))


@functools.lru_cache(maxsize=4)
def _gate(positives: tuple[str, ...], negatives: tuple[str, ...]) -> _Gate:
    return _Gate(positives, negatives)


class KnowledgeIndex:
    """The articles' units (title, questions, keywords) in a lemma and a character TF-IDF view,
    their bodies in a third; `search` ranks articles for a question."""

    def __init__(self, docs: Sequence[Doc], requests: Sequence[str] = ()) -> None:
        """`requests`: examples of what the intents handle (the NLU's training examples); with
        them `long_tail` tells the articles' kind of question from the intents' kind."""
        self.docs = list(docs)
        questions = tuple(q for d in self.docs for q in (d.title, *d.questions))
        self._gate = _gate(questions, tuple(requests)) if requests and questions else None
        starts: list[int] = []  # the first unit of each article (units are grouped by article)
        texts: list[str] = []
        bodies: list[str] = []
        for doc in self.docs:
            starts.append(len(texts))
            units = [u for u in (doc.title, *doc.questions, " ".join(doc.keywords)) if u.strip()]
            texts += units or [doc.id]
            bodies.append(" ".join((doc.title, *doc.questions, *doc.keywords, doc.body)))
        # Every word the knowledge base knows, and its one-letter deletions (typos, SymSpell).
        self._known = {w for text in bodies for w in lemmas(text) if w not in STOPWORDS}
        self._near = self._known | {d for w in self._known if len(w) >= 4 for d in _deletions(w)}
        self._starts = np.array(starts, dtype=np.int64)
        self._ends = [*starts[1:], len(texts)]
        self._texts = texts
        if texts:
            self._words = _View(_word_analyzer, texts)
            self._chars = _View(functools.partial(_char_analyzer, low=3, high=5), texts)
            self._body = _View(_word_analyzer, bodies)

    def long_tail(self, text: str) -> float | None:
        """How likely `text` is an article's kind of question rather than an intent's request
        (None without the intents' examples)."""
        return self._gate.probability(text) if self._gate is not None else None

    def known_words(self, text: str) -> int:
        """How many of the question's words the knowledge base uses (even misspelt): a title
        offered for «ну это самое там как его» would rest on one word."""
        return sum(1 for w in self._content_words(text) if self._is_known(w))

    @staticmethod
    def _content_words(text: str) -> list[str]:
        return [w for w in lemmas(text) if w not in STOPWORDS and not w.isdigit() and len(w) > 2]

    def unknown_share(self, text: str) -> float:
        """The share of the question's words that no article uses, even misspelt: «у билайна
        есть семейный тариф?», «как настроить алису на колонке» ask about things the knowledge
        base does not cover, however well their other words match."""
        said = self._content_words(text)
        if not said:
            return 0.0
        unknown = sum(1 for w in said if not self._is_known(w))
        # Another operator named (nlu/slang.py writes them all «мтс»): their plans, not ours.
        unknown += OTHER_OPERATOR in said
        return min(1.0, unknown / len(said))

    def _is_known(self, word: str) -> bool:
        if word in self._known or word in self._near:
            return True
        return len(word) >= 5 and any(d in self._near for d in _deletions(word))

    def __len__(self) -> int:
        return len(self.docs)

    def search(self, text: str, k: int = 3) -> list[Hit]:
        """The `k` best articles for `text`, best first (scores in [0, 1])."""
        if not self.docs or not _WORD.search(normalise(text)):
            return []
        unit = WORD_WEIGHT * self._words.similarity(text)
        unit += (1 - WORD_WEIGHT) * self._chars.similarity(text)
        best = np.maximum.reduceat(unit, self._starts)
        score = (1 - BODY_WEIGHT) * best + BODY_WEIGHT * self._body.similarity(text)
        score *= max(0.0, 1.0 - UNKNOWN_PENALTY * self.unknown_share(text))
        top = np.argsort(-score, kind="stable")[:k]
        hits = []
        for i in top:
            if score[i] <= 0:
                continue
            best_unit = int(self._starts[i] + np.argmax(unit[self._starts[i] : self._ends[i]]))
            hits.append(
                Hit(self.docs[i].id, round(float(score[i]), 4), self._texts[best_unit], best_unit)
            )
        return hits

    def coverage(self, text: str, hit: Hit) -> float:
        """How much of the matched question's (lemma-weighted) content the message says: «как
        оплачивать связь» says little of «хочу оплачивать связь в конце месяца по счёту», «хочу
        подключить антивирус» all of «как подключить антивирус»."""
        if hit.unit < 0:
            return 0.0
        rows, _ = self._words.vector(text)
        if not len(rows):
            return 0.0
        column = self._words.column(rows, hit.unit)
        return float(np.square(column).sum())


_cache_dir: Path | None = None
KEEP_CACHED = 3  # index files kept on disk (the newest): a revert loads, older ones go


def cache_on_disk(directory: Path | None) -> None:
    """Keep built indexes as files in `directory` too (the composition root passes the data
    dir's `kb-cache`): a restart loads the index in ~50 ms instead of building it (1-3 s)."""
    global _cache_dir
    _cache_dir = directory


@functools.lru_cache(maxsize=4)
def build_index(docs: tuple[Doc, ...], requests: tuple[str, ...] = ()) -> KnowledgeIndex:
    """The index of `docs`, built once per process for the same articles and requests: a
    content reload that changed no article (an edit to a dialog file) costs nothing here,
    a changed article about a second (README: figures). With `cache_on_disk`, once per
    data dir: the file's name is a digest of the articles, the requests and this code."""
    if _cache_dir is None:
        return KnowledgeIndex(docs, requests)
    path = _cache_dir / f"kb-{_digest(docs, requests)}.pkl"
    try:
        with path.open("rb") as f:
            cached = pickle.load(f)
        if isinstance(cached, KnowledgeIndex):
            return cached
    except FileNotFoundError:
        pass
    except (OSError, pickle.UnpicklingError, AttributeError, EOFError, ImportError) as exc:
        log.warning("knowledge: ignoring unreadable index cache %s: %r", path, exc)
    index = KnowledgeIndex(docs, requests)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # processes may build it at once
        with tmp.open("wb") as f:
            pickle.dump(index, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)
        older = sorted(path.parent.glob("kb-*.pkl"), key=lambda p: p.stat().st_mtime)
        for old in older[:-KEEP_CACHED]:
            old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only or full disk: the index works, the next start builds
        log.warning("knowledge: index not cached in %s: %r", path.parent, exc)
    return index


def _digest(docs: tuple[Doc, ...], requests: tuple[str, ...]) -> str:
    """Names the index of these articles and requests built by this code (any change to the
    retrieval's modules or the slang rules gives another name)."""
    h = hashlib.sha256(repr((docs, requests)).encode())
    for module in ("knowledge.py", "morph.py", "slang.py"):
        h.update((Path(__file__).parent / module).read_bytes())
    return h.hexdigest()[:16]
