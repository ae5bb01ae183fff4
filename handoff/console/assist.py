"""Operator assist beside a chat: what the bot itself would answer to the subscriber's latest
question (its flow's reply, `dialogs.assist`) and the knowledge-base article that fits it, each
offered as a draft the operator inserts into the reply with one click and may edit."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dialogs import assist
from dialogs.content import Content
from dialogs.knowledge import ANSWER_AT
from storage.models import Author, Message

LOOK_BACK = 3  # the subscriber's last texts considered, newest first
SURE_AT = 0.4  # the intent's confidence for a draft (the engine's default answer threshold)
# Small talk gets no draft: «Привет! Я бот поддержки…» is no answer from a person.
SMALL_TALK = frozenset({"greet", "goodbye", "thanks", "affirm", "deny", "out_of_scope"})


def _asked(messages: Sequence[Message], *, unanswered: bool = False) -> list[Message]:
    """The subscriber's latest texts (not commands), newest first; with `unanswered`, only
    those written since the last reply (the bot's or an operator's)."""
    found: list[Message] = []
    for m in reversed(messages):
        if unanswered and m.author in (Author.BOT, Author.OPERATOR):
            break
        if m.author == Author.SUBSCRIBER and m.text and not m.text.startswith("/"):
            found.append(m)
    return found[:LOOK_BACK]


def bot_answer(
    content: Content | None, messages: Sequence[Message], channel: str, first_name: str | None
) -> dict[str, Any] | None:
    """The bot's own answer to the newest of the subscriber's last texts nobody answered that it
    can answer from the words alone (the intent understood when the message came, `nlu`)."""
    if content is None:
        return None
    for m in _asked(messages, unanswered=True):
        nlu = m.nlu or {}
        intent, confidence = nlu.get("intent"), float(nlu.get("confidence") or 0.0)
        if not isinstance(intent, str) or intent in SMALL_TALK or confidence < SURE_AT:
            continue
        found = assist.answer(content, intent, m.text or "", channel, first_name)
        if found is not None:
            return {
                "intent": intent,
                "title": found.title,
                "text": found.text,
                "confidence": round(confidence, 2),
                "for": m.text,
            }
    return None


def suggested_article(
    content: Content | None, messages: Sequence[Message]
) -> dict[str, Any] | None:
    """The knowledge-base article closest to the subscriber's last text, if any fits as well
    as the bot needs to answer with it (`ANSWER_AT`); its short answer can go into the reply
    as it is."""
    if content is None or not content.articles:
        return None
    asked = _asked(messages)
    if not asked:
        return None
    last = asked[0].text or ""
    hits = content.knowledge.search(last, 1)
    if not hits or hits[0].score < ANSWER_AT or hits[0].id not in content.articles:
        return None
    article = content.articles[hits[0].id]
    return {
        "id": article.id,
        "title": article.title,
        "short": article.text.short,
        "body": article.text.body,
        "score": hits[0].score,
        "for": last,
    }
