"""Understanding a message in its conversation: what the NLU alone can't see.

- `match_button`: a typed text that names one of the buttons the bot just showed ("наличными",
  "выбери Безлимит+") is that button pressed.
- `is_followup`: a short message leaning on the previous answer («а через сбер?», «а в
  беларуси?», «а где именно?»): understood within the previous topic.
- `control`: what a message says about the form or request at hand: cancel («отмена», «да не
  нужен мне мастер», «ой всё само заработало»), or think it over («нет, подумаю»).
- `matches`: a `route:` step's words in the message (word starts: "перенес" matches
  "перенесите").
- `substantive`: a message with content of its own beyond its topic words («жалоба: мастер не
  пришёл, прождала весь день»), so it can fill a free-text question without asking.

Pure functions over text: no database, no content.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

_WORD = re.compile(r"[a-zа-я0-9+]+")
_EMOJI_ETC = re.compile(r"[^\w\s+-]")
FOLLOWUP_STARTS = ("а ", "и ", "а если", "а как", "а где", "а что", "а сколько", "а можно")
FOLLOWUP_MAX_WORDS = 5

# Whole messages (after tidying) that cancel what is going on.
_CANCEL_PHRASES = frozenset(
    (
        "отмена", "отмени", "отменить", "отменяю", "стоп", "хватит", "не надо", "не нужно",
        "ненадо", "нинада", "не хочу", "передумал", "передумала", "забудь", "забей", "проехали",
        "неважно", "не важно", "ничего не надо", "ничего не нужно", "выход", "cancel", "stop",
        "нет не надо", "нет не нужно", "нет спасибо", "не надо спасибо",
    )
)  # fmt: skip
# A message with one of these (not after "не") refuses what is asked («да не нужен мне мастер»).
_NOT_NEEDED = (
    "не надо", "не нужн", "не нужен", "не нужна", "ненадо", "нинада", "не хочу", "не буду",
    "не стоит", "передумал", "отмен", "хватит", "забей", "проехали", "уже не актуальн",
)  # fmt: skip
# «ой всё само заработало»: the problem went away by itself.
_FIXED_ITSELF = (
    "само заработал", "сам заработал", "сама заработал", "все заработал", "заработало",
    "уже работает", "все работает", "починилось", "наладилось", "появился интернет",
)  # fmt: skip
_THINK = ("подумаю", "надо подумать", "нужно подумать", "позже решу", "потом решу", "не сейчас")


@functools.lru_cache(maxsize=64)  # a turn tidies its message ~25 times (routes, buttons, cues)
def tidy(text: str) -> str:
    """Lower case, ё as е, emoji and punctuation dropped, spaces collapsed."""
    low = _EMOJI_ETC.sub(" ", text.lower().replace("ё", "е"))
    return " ".join(low.split())


def words(text: str) -> list[str]:
    return _WORD.findall(tidy(text))


def match_button(text: str, titles: Sequence[str]) -> int | None:
    """The index of the button `text` names, if exactly one fits well: the whole title (emoji
    and punctuation aside) or all of its words, allowing small typos and filler around it."""
    said = words(text)
    if not said or len(said) > 8:
        return None
    # A title's numbers (prices, times) are optional: «безлимит» names «Безлимит+ — 750 ₽».
    named = [[w for w in words(title) if not w.isdigit()] or words(title) for title in titles]
    scores = [_title_score(said, title) for title in named]
    best = max(scores, default=0.0)
    if best < 0.99 or scores.count(best) != 1:
        return None
    return scores.index(best)


def named_in(text: str, titles: Sequence[str]) -> int | None:
    """The one title whose words (its numbers aside) all appear in a longer message («хочу
    перейти на безлимит+» names «Безлимит+ — 750 ₽»); the fullest when one title's words are
    part of another's; None if none or several."""
    said = words(text)
    names = [[w for w in words(t) if any(c.isalpha() for c in w)] for t in titles]
    hits = [
        i
        for i, name in enumerate(names)
        if name and all(any(_close(w, s) for s in said) for w in name)
    ]
    if not hits:
        return None
    longest = max(len(names[i]) for i in hits)
    best = [i for i in hits if len(names[i]) == longest]
    return best[0] if len(best) == 1 else None


def _title_score(said: list[str], title: list[str]) -> float:
    """1.0 when every word of the title is in what was said (or one typo away) and what was
    said has at most two words more; else 0."""
    if not title or len(said) > len(title) + 2:
        return 0.0
    return 1.0 if all(any(_close(w, s) for s in said) for w in title) else 0.0


def _close(a: str, b: str) -> bool:
    """Equal, one a start of the other (4+ letters: "наличн" ~ "наличными"), or one edit apart
    (5+ letters)."""
    if a == b:
        return True
    if min(len(a), len(b)) >= 4 and (a.startswith(b) or b.startswith(a)):
        return True
    return min(len(a), len(b)) >= 5 and _one_edit(a, b)


def _one_edit(a: str, b: str) -> bool:
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) == len(b):
        diffs = [i for i in range(len(a)) if a[i] != b[i]]
        return len(diffs) == 1 or (
            len(diffs) == 2
            and diffs[1] == diffs[0] + 1
            and a[diffs[0]] == b[diffs[1]]
            and a[diffs[1]] == b[diffs[0]]
        )
    short, long = (a, b) if len(a) < len(b) else (b, a)
    return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))


def is_followup(text: str) -> bool:
    """A short message that leans on the previous answer («а через сбер?», «а в беларуси?»)."""
    low = tidy(text)
    return len(low.split()) <= FOLLOWUP_MAX_WORDS and (
        low.startswith(FOLLOWUP_STARTS) or low in ("а", "и", "где", "где именно", "а где")
    )


def control(text: str, extra_cancel: Iterable[str] = ()) -> str | None:
    """ "cancel" (drop what is going on: refused, not needed, fixed by itself), "think" (not
    now), or None (an ordinary message)."""
    low = tidy(text)
    if not low:
        return None
    if low in _CANCEL_PHRASES or low in {tidy(w) for w in extra_cancel}:
        return "cancel"
    padded = f" {low} "
    if any(f" {phrase}" in padded for phrase in _THINK):
        return "think"
    for phrase in _FIXED_ITSELF:
        at = padded.find(f" {phrase}")
        if at >= 0 and not padded[:at].endswith(" не"):
            return "cancel"
    if any(f" {phrase}" in padded for phrase in _NOT_NEEDED):
        return "cancel"
    return None


_QUESTION_WORDS = ("как", "где", "сколько", "когда", "что", "почему", "можно", "какой", "какая",
                   "какие", "куда", "чем", "зачем", "а")  # fmt: skip


def is_question(text: str) -> bool:
    """A question of its own (ends with «?» or starts with a question word)."""
    low = tidy(text)
    return text.rstrip().endswith("?") or low.split(" ", 1)[0] in _QUESTION_WORDS


def wants_cheapest(text: str) -> bool:
    low = tidy(text)
    return "дешев" in low or "подешевле" in low or "недорог" in low


def matches(text: str, keys: Iterable[str]) -> bool:
    """Does the message have any of the route's words? A one-word key matches the start of a
    word ("перенес" ~ "перенесите"); a phrase must appear as written (tidied)."""
    low = tidy(text)
    keys = tuple(keys)
    starts = tuple(key for key in keys if " " not in key)  # str.startswith takes them at once
    if starts and any(w.startswith(starts) for w in low.split()):
        return True
    padded = f" {low} "
    return any(f" {key} " in padded for key in keys if " " in key)


# Topic words a free-text answer would not need (the request itself, not its content).
_TOPIC_WORDS = frozenset(
    """
    жалоба жалобу жалуюсь пожаловаться претензия хочу хотел хотела оставить написать подать
    у меня мне я нас проблема проблемы вопрос помогите помощь пожалуйста здравствуйте привет
    добрый день вечер утро
    """.split()
)


def substantive(text: str, min_words: int = 4) -> str | None:
    """The message as a description in its own right, if it says more than its topic: at least
    `min_words` words besides greetings and request words. A leading «жалоба:» is cut off."""
    body = text.strip()
    head, sep, rest = body.partition(":")
    if sep and len(head.split()) <= 3 and rest.strip():
        body = rest.strip()
    content = [w for w in words(body) if w not in _TOPIC_WORDS]
    return body if len(content) >= min_words else None


_SENTENCES = re.compile(r"[.!?;\n]+|,\s*")
_PHONE_RUN = re.compile(r"\+?\d[\d\s()-]{8,}\d")
_GREETING = re.compile(
    r"^(?:добрый\s+(?:день|вечер|утро)|здравствуйте|привет|доброе\s+утро|доброй\s+ночи)\W*",
    re.IGNORECASE,
)
MAX_CLAUSES = 5


def readings(text: str) -> list[str]:
    """Shorter readings of a long or cluttered message to understand it by, the most telling
    first: without its address, phone numbers and greeting, then clause by clause («уже третий
    день не работает интернет, дети не могут делать уроки, ... Живу на Октябрьском 20»)."""
    from nlu.address import address_span  # nlu is below dialogs: allowed, kept lazy for speed

    found = address_span(text)
    clean = text[: found[0]] + " " + text[found[1] :] if found else text
    clean = _GREETING.sub("", _PHONE_RUN.sub(" ", clean).strip())
    out: list[str] = []
    if clean.strip() and tidy(clean) != tidy(text):
        out.append(" ".join(clean.split()))
    for clause in _SENTENCES.split(clean):
        clause = _GREETING.sub("", clause.strip())
        if len(clause.split()) >= 2 and clause not in out and tidy(clause) != tidy(text):
            out.append(clause)
    return out[:MAX_CLAUSES]


# «где оплатить и какой у меня тариф», «сменить тариф, а ещё подключить автоплатёж»
_TWO_ASKS = re.compile(
    r"\s*(?:[.!?;]+|,?\s+а\s+(?:ещё|еще|также|так\s+же)\s+|,?\s+и\s+ещё\s+|,?\s+и\s+(?:ещё\s+)?"
    r"(?=(?:как|где|сколько|когда|что|почему|можно|какой|какая|какие|какое|куда|хочу|нужно|надо|"
    r"подскажите|подскажи|скажите|скажи|расскажите|расскажи)\b)|,\s+(?=(?:а\s+)?(?:как|где|сколько|"
    r"когда|почему|можно|какой|какая|какие|какое|куда)\b))\s*",
    re.IGNORECASE,
)


_LEADING_AND = re.compile(r"^(?:и|а)\s+", re.IGNORECASE)


def two_asks(text: str) -> tuple[str, str] | None:
    """A message asking two things at once, split where the second question begins («где
    оплатить и какой у меня тариф» -> «где оплатить», «какой у меня тариф»); None for one
    request («не работает интернет и телевизор», «где и как оплатить»). Each part has at least
    two words; a third question is left for the subscriber to repeat."""
    body = _GREETING.sub("", text.strip())
    parts = [_LEADING_AND.sub("", p.strip(" ,")) for p in _TWO_ASKS.split(body)]
    parts = [p for p in parts if p]
    if len(parts) != 2 or any(len(words(p)) < 2 for p in parts):
        return None
    return parts[0], parts[1]


_NUMBER_CHARS = re.compile(r"[\d+()\-.\s/№#:,]+")
_NUMBER_WORDS = frozenset(
    {"мой", "моя", "номер", "телефон", "тел", "счет", "счёт", "лицевой", "лс", "л", "с", "вот",
     "это", "договор", "договора", "абонент", "my", "phone"}
)  # fmt: skip


def only_number(text: str) -> bool:
    """Is the message just a number, perhaps named («89110000001», «мой номер +7 911 …»,
    «л/с 100200301»)? Subscribers often start so; what they want comes next."""
    if not any(ch.isdigit() for ch in text):
        return False
    return all(w in _NUMBER_WORDS for w in words(_NUMBER_CHARS.sub(" ", text.lower())))
