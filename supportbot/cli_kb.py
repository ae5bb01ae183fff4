"""`supportbot kb ...`: the knowledge base (content/knowledge/*.md) from the command line.

- `kb search TEXT`: the articles the bot would find for a question, with scores and what it
  would do (answer, offer the title, nothing);
- `kb evaluate [--set FILE]`: top-1 / top-3 accuracy, answered-right / answered-wrong rates at
  the bot's thresholds, a threshold sweep and retrieval latency, on an independent question set
  (default: every set in content/knowledge_test/);
- `kb add-question ARTICLE TEXT`: an editor turns a subscriber's question into one of the
  article's alternative questions (the running bot reloads it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from dialogs.knowledge import ANSWER_AT, SUGGEST_AT
from nlu.knowledge_eval import QuestionSetError, evaluate_kb, load_questions
from supportbot.settings import ConfigError, Settings

DEFAULT_SET = Path("knowledge_test")  # under the content directory: every *.yml in it
SWEEP = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)


def add_kb_commands(sub: Any) -> None:
    kb = sub.add_parser("kb", help="search, evaluate and edit the knowledge base")
    kb_sub = kb.add_subparsers(title="kb commands", metavar="KB_COMMAND")

    search = kb_sub.add_parser("search", help="the articles found for TEXT, with scores")
    search.add_argument("text")
    search.set_defaults(func=_search)

    ev = kb_sub.add_parser("evaluate", help="retrieval accuracy on a question set")
    ev.add_argument(
        "--set",
        type=Path,
        dest="questions",
        help=f"a question set file or a folder of them (default: content/{DEFAULT_SET}/)",
    )
    ev.add_argument("--errors", action="store_true", help="list wrong and missed questions")
    ev.add_argument("--json", action="store_true", help="figures as JSON")
    ev.add_argument(
        "--conversation",
        action="store_true",
        help="also what the bot does with each question in a chat, with the embedded intent "
        "engine (an intent may take it), and how many of the NLU's held-out intent examples "
        "(content/nlu_test) an article would take",
    )
    ev.set_defaults(func=_evaluate)

    add = kb_sub.add_parser("add-question", help="add TEXT to ARTICLE's alternative questions")
    add.add_argument("article", help="the article id (its file name without .md)")
    add.add_argument("text")
    add.set_defaults(func=_add_question)


def _content(settings: Settings) -> Any:
    from supportbot.content_setup import configured_content

    return configured_content(settings)


async def _search(settings: Settings, args: argparse.Namespace) -> int:
    content = _content(settings)
    hits = content.knowledge.search(args.text, 3)
    if not hits:
        print("no article matches")
        return 0
    for i, hit in enumerate(hits):
        verdict = (
            "answer"
            if i == 0 and hit.score >= ANSWER_AT
            else "offer title"
            if hit.score >= SUGGEST_AT
            else "-"
        )
        title = content.articles[hit.id].title
        print(f"{hit.score:.3f}  {verdict:<11}  {hit.id}  «{title}»  (matched «{hit.matched}»)")
    return 0


async def _evaluate(settings: Settings, args: argparse.Namespace) -> int:
    content = _content(settings)
    path = args.questions or settings.content_dir / DEFAULT_SET
    files = sorted(path.glob("*.yml")) if path.is_dir() else [path]
    try:
        if not files:
            raise QuestionSetError(f"{path}: no question sets (*.yml)")
        questions = [q for f in files for q in load_questions(f, set(content.articles))]
    except QuestionSetError as exc:
        raise ConfigError(str(exc)) from None
    report = evaluate_kb(content.knowledge, questions, ANSWER_AT, SUGGEST_AT)
    figures: dict[str, Any] = {
        "questions": len(questions),
        "with_article": len(report.with_article),
        "without_article": len(report.without_article),
        "articles": len(content.articles),
        "top1": round(report.top1(), 3),
        "top3": round(report.top3(), 3),
        "answer_at": ANSWER_AT,
        "answered_right": round(report.answered_right(), 3),
        "answered_wrong": round(report.answered_wrong(), 3),
        "offered_title": round(report.offered(), 3),
        "none_answered": round(report.none_answered(), 3),
        "search_ms_p50": round(report.median_ms(), 2),
        "search_ms_p99": round(report.p(0.99), 2),
    }
    chat = await _in_conversation(settings, content, questions) if args.conversation else None
    if chat is not None:
        figures["conversation"] = chat
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
        return 0
    print(
        f"{len(questions)} questions ({figures['with_article']} with an article, "
        f"{figures['without_article']} with none) against {len(content.articles)} articles"
    )
    print(f"top-1 accuracy       {report.top1():.3f}   (the right article ranked first)")
    print(f"top-3 accuracy       {report.top3():.3f}   (the right article among the first 3)")
    print(f"at the answer threshold {ANSWER_AT} (titles offered from {SUGGEST_AT}):")
    print(f"  answered, right    {report.answered_right():.3f}   of all questions")
    print(f"  answered, wrong    {report.answered_wrong():.3f}   of all questions (incl. 'none')")
    print(f"  title offered      {report.offered():.3f}   of questions with an article")
    print(f"  'none' answered    {report.none_answered():.3f}   of questions with no article")
    print("threshold sweep (answered right / answered wrong):")
    for at in SWEEP:
        mark = "  <- the bot's" if abs(at - ANSWER_AT) < 1e-9 else ""
        print(
            f"  {at:.2f}  {report.answered_right(at):.3f} / {report.answered_wrong(at):.3f}{mark}"
        )
    print(f"search latency: p50 {report.median_ms():.2f} ms, p99 {report.p(0.99):.2f} ms")
    if chat is not None:
        n = len(questions)
        print("in a conversation (embedded intent engine + the engine's rules), of all questions:")
        for key, label in _OUTCOMES.items():
            print(f"  {label:<46} {chat[key] / n:.3f}  ({chat[key]})")
        held = chat["heldout_examples"]
        print(
            f"intent examples an article would take: {chat['heldout_taken']} of {held} "
            f"(content/nlu_test); with an article's title under the intent's answer: "
            f"{chat['heldout_titled']}"
        )
    if args.errors:
        for o in report.wrong():
            top = o.top or ("-", 0.0)
            print(f"WRONG   {o.question.expect:<24} got {top[0]} {top[1]:.2f}: {o.question.text}")
        for o in report.missed():
            if o in report.wrong():
                continue
            ranked = ", ".join(f"{a} {s:.2f}" for a, s in o.ranked)
            print(f"MISSED  {o.question.expect:<24} [{ranked}]: {o.question.text}")
    return 0


async def _add_question(settings: Settings, args: argparse.Namespace) -> int:
    from dialogs.content.knowledge import add_question

    content = _content(settings)
    article = content.articles.get(args.article)
    if article is None:
        raise ConfigError(f"no article {args.article!r} in {settings.content_dir / 'knowledge'}")
    added = add_question(settings.content_dir, article, args.text)
    print(f"{'added to' if added else 'already in'} {article.file}: «{args.text.strip()}»")
    return 0


_OUTCOMES = {
    "article_right": "answered by the right article",
    "article_wrong": "answered by a wrong article",
    "titles_right": "titles offered, the right one among them",
    "intent_beside": "taken by an intent, the right title under it",
    "intent": "taken by an intent, no right title",
    "nothing_right": "no article (expected none)",
    "nothing": "no article (one was expected)",
}


async def _in_conversation(
    settings: Settings, content: Any, questions: list[Any]
) -> dict[str, int]:
    """What the dialog engine would do with each question as a first message (its order:
    a confident intent unless an article wins, else an article, else titles)."""
    from dialogs.assist import completes
    from dialogs.knowledge import ANSWER_AT, SUGGEST_AT, article_wins, beside
    from nlu.data import load_training_data
    from supportbot.nlu_setup import build_engine

    embedded = settings.model_copy(
        update={"nlu": settings.nlu.model_copy(update={"engine": "embedded"})}
    )
    engine = await build_engine(embedded)
    threshold = settings.nlu.threshold
    kb = content.knowledge

    async def outcome(text: str) -> tuple[str, str | None]:
        parse = await engine.parse(text)
        hits = kb.search(text, 3)
        top = hits[0] if hits else None
        if parse.confidence >= threshold and parse.intent != "out_of_scope":
            wins = (
                top is not None
                and not parse.entities
                and article_wins(kb, text, top, parse.confidence)
            )
            if wins and top:
                return "article", top.id
            flow = content.intent_flows.get(parse.intent)
            under = beside(kb, text) if flow and completes(content, flow, text) else None
            return "intent", under.id if under and not parse.entities else None
        if top is not None and top.score >= ANSWER_AT:
            return "article", top.id
        offered = [h.id for h in hits if h.score >= SUGGEST_AT]
        return "titles", ",".join(offered) or None

    counts = dict.fromkeys(_OUTCOMES, 0)
    for q in questions:
        kind, value = await outcome(q.text)
        if kind == "article":
            counts["article_right" if value == q.expect else "article_wrong"] += 1
        elif kind == "intent":
            counts["intent_beside" if value == q.expect else "intent"] += 1
        elif value and q.expect in value.split(","):
            counts["titles_right"] += 1
        else:
            counts["nothing_right" if q.expect == "none" else "nothing"] += 1
    heldout = [
        e
        for e in load_training_data([settings.content_dir / "nlu_test"]).examples
        if e.intent != "out_of_scope"
    ]
    taken = titled = 0
    for example in heldout:
        kind, value = await outcome(example.text)
        taken += kind == "article"
        titled += kind == "intent" and value is not None
    counts["heldout_examples"] = len(heldout)
    counts["heldout_taken"] = taken
    counts["heldout_titled"] = titled
    return counts
