"""Knowledge-base answers in the conversation: the long tail no intent covers.

- `answer(text)`: when an article matches well (`ANSWER_AT`), the bot answers with its short form,
  «📖 Подробнее» and «👍 Помогло» / «👎 Не помогло» buttons (plus the article's own buttons);
- `titles(text)`: weaker matches (`SUGGEST_AT`) are offered as up to 3 title buttons under
  "did you mean" (dialogs/runner.py `miss`);
- `pressed(payload)`: a title (`kb:<id>`), «Подробнее» (`kb:more:<id>`: the whole article), or the
  feedback (`kb:yes:<id>`, `kb:no:<id>`). «Не помогло» counts as a miss: two in a row (or after
  another miss) and the bot offers a human, as after any misses;
- `beats_intent`: an article may answer where the NLU is confident of an intent (`article_wins`);
- `follow_up`: a short question right after an article is read with it; `clearly_answers`: a
  long-tail question in the middle of a form (dialogs/forms.py answers it and holds the form).
Feedback is the stored button press itself (the message's payload); analytics reads it from there.
The thresholds come from `supportbot kb evaluate` on an independent question set (README).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Protocol

from dialogs import understanding
from dialogs.content import KB_PAYLOAD, Article, Content
from dialogs.limits import TELEGRAM, VK
from dialogs.messages import Button, Outbound
from dialogs.responder import Turn
from nlu.knowledge import Hit, KnowledgeIndex

ANSWER_AT = 0.38  # an article this close answers the question (kb evaluate: <= 3% wrong)
SUGGEST_AT = 0.15  # this close: offered as a title button
# Where the NLU is confident of an intent, an article still answers if it fits at least as well
# (and fits at all: OVERRIDE_AT), or if it fits very well (CLOSE_AT) and not much worse.
OVERRIDE_AT = 0.4
CLOSE_AT, CLOSE_MARGIN = 0.6, 0.15
LONG_TAIL = 0.7  # ...or if the message reads like an article's question (KnowledgeIndex.long_tail)
COVERED = 0.5  # ...and in each case says most of the article question it matched
MAX_TITLES = 3
# An intent answered, yet the message reads like an article's question and one fits: its title
# goes under the answer (kb evaluate --conversation: 14 of the 84 questions intents take get the
# right article one press away; 4 of 299 intent examples get a title they did not need).
BESIDE_AT, BESIDE_LONG_TAIL = 0.3, 0.5
MIN_WORDS_FOR_TITLES = 2
FOLLOW_UP_WORDS = 6
MORE, YES, NO = "more:", "yes:", "no:"


def beside(index: KnowledgeIndex, text: str, hits: list[Hit] | None = None) -> Hit | None:
    """The article to offer under an intent's answer to `text`, if any (`BESIDE_AT`); `hits`:
    the search for `text` made already (its best is the same however many were asked for)."""
    hits = index.search(text, 1) if hits is None else hits
    if not hits or hits[0].score < BESIDE_AT:
        return None
    kind = index.long_tail(text)
    return hits[0] if kind is not None and kind >= BESIDE_LONG_TAIL else None


def article_wins(index: KnowledgeIndex, text: str, hit: Hit, confidence: float) -> bool:
    """Does the best article (`hit`) answer a message the NLU gave a confident intent
    (`confidence`)? The 24 intents claim about a quarter of long-tail questions («хочу подключить
    антивирус» is not a home-internet request at 0.84). The message must say most of what the
    article's matched question says (`COVERED`: «как оплачивать связь» is not «хочу оплачивать
    связь в конце месяца по счёту»); then the article wins when the message reads like the
    articles' questions rather than the intents' examples (KnowledgeIndex.long_tail), or fits
    as well as the intent."""
    if index.coverage(text, hit) < COVERED:
        return False
    score, long_tail = hit.score, index.long_tail(text)
    return (
        (score >= ANSWER_AT and long_tail is not None and long_tail >= LONG_TAIL)
        or (score >= OVERRIDE_AT and score >= confidence)
        or (score >= CLOSE_AT and score >= confidence - CLOSE_MARGIN)
    )


class Run(Protocol):
    """What the knowledge base uses of the turn's runner (dialogs/runner.py)."""

    c: Content
    turn: Turn
    slots: dict[str, Any]
    out: list[Outbound]

    def say(self, response: str) -> None: ...

    async def give_up(self) -> None: ...


class Knowledge:
    """The knowledge base's part of one turn (attached to the turn's Runner)."""

    def __init__(self, run: Run) -> None:
        self.r = run
        self._hits: dict[str, list[Hit]] = {}
        ahead = run.turn.searched
        if ahead is not None and ahead.index is run.c.knowledge:
            self._hits[ahead.text] = ahead.hits

    def search(self, text: str) -> list[Hit]:
        if text not in self._hits:
            self._hits[text] = self.r.c.knowledge.search(text, MAX_TITLES)
        return self._hits[text]

    def beats_intent(self, text: str, confidence: float) -> bool:
        """`confidence` 1.0: the intent's for sure (the engine's own reasons)."""
        hits = self.search(text)
        return (
            confidence < 1.0
            and bool(hits)
            and article_wins(self.r.c.knowledge, text, hits[0], confidence)
        )

    def clearly_answers(self, text: str) -> bool:
        """An article fits and the message reads like an article's question (mid-form: a
        question of its own, not an answer gone wrong)."""
        hits = self.search(text)
        kind = self.r.c.knowledge.long_tail(text)
        return bool(hits) and hits[0].score >= ANSWER_AT and kind is not None and kind >= LONG_TAIL

    def answer(self, text: str) -> bool:
        """Answer from the best article if it matches well; False if none does."""
        hits = self.search(text)
        if not hits or hits[0].score < ANSWER_AT:
            return False
        article = self.r.c.articles.get(hits[0].id)
        if article is None:
            return False
        self.show(article)
        return True

    def follow_up(self, text: str) -> bool:
        """A short question right after an article («а сколько стоит?», «а на андроиде?») is
        read with the article's title; the same article again means its details (the body)."""
        last = self.r.slots.get("_last") or {}
        previous = self.r.c.articles.get(str(last.get("article")))
        short = len(understanding.words(text)) <= FOLLOW_UP_WORDS
        if (
            previous is None
            or not short
            or not (understanding.is_followup(text) or understanding.is_question(text))
        ):
            return False
        index = self.r.c.knowledge
        together = [h for h in index.search(f"{previous.title} {text}", 3) if h.score >= ANSWER_AT]
        if not together:
            return False
        # Of the articles that fit with the title, the one the new words fit best: «а на
        # андроиде?» after eSIM on iPhone is eSIM on Android.
        alone = {h.id: h.score for h in index.search(text, len(index))}
        best = max(together, key=lambda h: h.score + alone.get(h.id, 0.0))
        article = self.r.c.articles.get(best.id)
        if article is None:
            return False
        if article.id == previous.id:
            self.more(previous)
        else:
            self.show(article)
        return True

    def offer_beside(self, text: str) -> None:
        """Under the intent's answer just given, the title of the article that also fits a
        long-tail question («симка просит пук»: the SIM answer, and «SIM заблокирована: PIN и
        PUK-код» one press away)."""
        hit = beside(self.r.c.knowledge, text, self.search(text))
        article = self.r.c.articles.get(hit.id) if hit is not None else None
        if article is None or not self.r.out:
            return
        last, payload = self.r.out[-1], KB_PAYLOAD + article.id
        room = (VK if self._channel == "vk" else TELEGRAM).rows
        if len(last.buttons) >= room or any(b.payload == payload for r in last.buttons for b in r):
            return
        self.r.out[-1] = replace(last, buttons=(*last.buttons, (Button(article.title, payload),)))

    def titles(self, text: str, room: int) -> list[Button]:
        """Up to `room` title buttons of weaker matches (resting on at least two words)."""
        if self.r.c.knowledge.known_words(text) < MIN_WORDS_FOR_TITLES:
            return []
        return [
            Button(self.r.c.articles[h.id].title, KB_PAYLOAD + h.id)
            for h in self.search(text)[:room]
            if h.score >= SUGGEST_AT and h.id in self.r.c.articles
        ]

    def show(self, article: Article) -> None:
        """The short answer with «Подробнее» and the feedback buttons."""
        self.r.turn.handled_as = f"kb:{article.id}"
        text = article.for_channel(self._channel).short
        more = (Button(self.r.c.bot.kb_more, f"{KB_PAYLOAD}{MORE}{article.id}"),)
        self._reply(text, (more, self._feedback(article), *self._own(article)))

    def more(self, article: Article) -> None:
        """The whole article, with the feedback buttons."""
        self.r.turn.handled_as = f"kb:{article.id}"
        body = article.for_channel(self._channel).body
        self._reply(body, (self._feedback(article), *self._own(article)))

    async def pressed(self, payload: str) -> None:
        rest = payload.removeprefix(KB_PAYLOAD)
        kind, _, name = rest.partition(":") if ":" in rest else ("", "", rest)
        article = self.r.c.articles.get(name)
        if article is None:
            self.r.say("stale")
            return
        if not kind:
            self.show(article)
        elif kind + ":" == MORE:
            self.more(article)
        elif kind + ":" == YES:
            self.r.turn.handled_as = "kb_feedback"
            self.r.slots["_misses"] = 0
            self.r.say("kb_helped")
        elif kind + ":" == NO:
            self.r.turn.handled_as = "kb_feedback"
            misses = int(self.r.slots.get("_misses", 0)) + 1
            if misses >= self.r.c.bot.max_misses:
                await self.r.give_up()
                return
            self.r.slots["_misses"] = misses
            self.r.say("kb_not_helped")
        else:
            self.r.say("stale")

    @property
    def _channel(self) -> str:
        return str(self.r.turn.inbound.channel)

    def _feedback(self, article: Article) -> tuple[Button, ...]:
        bot = self.r.c.bot
        return (
            Button(bot.kb_yes, f"{KB_PAYLOAD}{YES}{article.id}"),
            Button(bot.kb_no, f"{KB_PAYLOAD}{NO}{article.id}"),
        )

    @staticmethod
    def _own(article: Article) -> tuple[tuple[Button, ...], ...]:
        return tuple(
            tuple(Button(b.title, b.payload, b.url) for b in row) for row in article.buttons
        )

    def _reply(self, text: str, rows: tuple[tuple[Button, ...], ...]) -> None:
        self.r.out.append(Outbound(text=text, buttons=rows))
