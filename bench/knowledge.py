"""Knowledge-base retrieval benchmark: how long one search takes with 1,000 articles.

Builds an index of `--articles` articles (default 1,000): the shipped content/knowledge articles
and variants of them (each variant: the article's title and questions with a distinct topic word
added, a shuffled subset of its questions, its body), so the vocabulary and the number of units
grow like a real operator's knowledge base. Then it searches every question of the independent
question set (content/knowledge_test/questions.yml) `--rounds` times and prints p50 / p99 / max
per search, and the index build time (what a content reload adds).

    .venv/bin/python bench/knowledge.py [--articles 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from nlu.knowledge import Doc, KnowledgeIndex  # noqa: E402
from supportbot.content_setup import configured_content  # noqa: E402
from supportbot.settings import Settings  # noqa: E402

# Topic words that make a variant a different article (a region, a device, a plan...).
TOPICS = """
планшет ноутбук дача офис школа пенсионер студент турист бизнес семья ребёнок машина
телевизор роутер модем часы камера сигнализация котёл счётчик умныйдом приставка колонка
""".split()


def corpus(size: int) -> list[Doc]:
    content = configured_content(Settings(content_dir=ROOT / "content"))
    base = [
        Doc(a.id, a.title, a.questions, a.keywords, a.text.body)
        for a in sorted(content.articles.values(), key=lambda a: a.id)
    ]
    rng = random.Random(0)
    docs = list(base)
    i = 0
    while len(docs) < size:
        b = base[i % len(base)]
        topic = f"{TOPICS[i % len(TOPICS)]}{i // len(TOPICS)}"
        questions = rng.sample(b.questions, k=max(3, len(b.questions) * 2 // 3))
        docs.append(
            Doc(
                f"{b.id}_{i}",
                f"{b.title} ({topic})",
                tuple(f"{q} {topic}" for q in questions),
                (*b.keywords, topic),
                b.body,
            )
        )
        i += 1
    return docs[:size]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    docs = corpus(args.articles)
    started = time.perf_counter()
    index = KnowledgeIndex(docs)
    built = time.perf_counter() - started
    data = yaml.safe_load((ROOT / "content" / "knowledge_test" / "questions.yml").read_text())
    questions = [str(q["q"]) for q in data["questions"]]
    for q in questions[:20]:  # warm: lemma cache, vectorizer code paths
        index.search(q)
    gc.collect()
    gc.freeze()
    times = []
    for _ in range(args.rounds):
        for q in questions:
            t = time.perf_counter()
            index.search(q)
            times.append((time.perf_counter() - t) * 1000)
    times.sort()
    units = len(index._texts)
    print(f"{len(docs)} articles ({units} title/question units), index built in {built:.2f} s")
    print(
        f"search: {len(times)} searches, p50 {statistics.median(times):.2f} ms, "
        f"p99 {times[int(0.99 * len(times))]:.2f} ms, max {times[-1]:.2f} ms"
    )


if __name__ == "__main__":
    main()
