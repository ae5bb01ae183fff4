"""Short answers (slot types yes_no, choice, number, code, text): a yes or a no, one of the
offered choices, a number, a one-time code, or any text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dialogs.slot_types.normalise import norm, plain

TEXT_MAX = 1000


@dataclass(frozen=True, slots=True)
class Choice:
    value: str  # short ASCII-ish id stored in the slot, e.g. "card"
    title: str  # button title, e.g. "💳 Картой"
    synonyms: tuple[str, ...] = ()  # extra words that select it


# --------------------------------------------------------------------------- yes / no

_YES_WORDS = frozenset(
    """
    да дa ага угу ок окей окэй оке ok okay конечно конешно канешно давай давайте хорошо ладно
    верно правильно точно подтверждаю подтверждаем согласен согласна согласны
    именно естественно разумеется обязательно абсолютно безусловно го yes yep yeah yup sure
    y +
    """.split()
)
_NO_WORDS = frozenset("нет неа нету ноу no nope nah неверно неправильно".split())
_YES_EMOJI = frozenset("👍👌✅✔🆗")
_NO_EMOJI = frozenset("👎❌🚫✖")
# "не" + one of these is a "no" ("не надо", "не верно"); "не" + anything else is inconclusive.
_NE_TARGETS = frozenset(
    "надо нужно нужен нужна хочу хотим стоит требуется буду будем интересно актуально сейчас".split()
)
_FILLERS = frozenset(
    """
    ну а так вот же уж и все это спасибо спс благодарю пожалуйста пжл пж плиз думаю наверное
    пожалуй что
    """.split()
)
_CANCEL_WORDS = frozenset("отмена отменить отмени отменяю стоп cancel stop".split())
_YES_PHRASES = re.compile(r"\b(?:нет проблем|без проблем|не вопрос|почему бы и нет)\b")
_TOKEN = re.compile(r"[\w+]+|[^\w\s]")


def _canon(token: str) -> str:
    """Repeated letters collapsed ("дааа" -> "да", "нееет" -> "нет") unless the word is known."""
    if token in _YES_WORDS or token in _NO_WORDS or token in _FILLERS or token in _NE_TARGETS:
        return token
    return re.sub(r"(.)\1+", r"\1", token)


def _yes_no_words(text: str) -> bool | None:
    low = norm(text)
    low = re.sub(r"\bне-а\b", "неа", low)
    low = re.sub(r"\bда нет\b", "нет", low)  # "да нет" is a "no"
    low = _YES_PHRASES.sub(" ок ", low)
    tokens = [_canon(t) for t in _TOKEN.findall(low)]
    items: list[bool | None] = []  # polarity of each meaningful token; None = something else
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in _FILLERS or (len(token) == 1 and not token.isalnum() and token != "+"):
            if token in _YES_EMOJI:
                items.append(True)
            elif token in _NO_EMOJI:
                items.append(False)
            continue
        if token == "не":
            following = tokens[i] if i < len(tokens) else ""
            if following in _NE_TARGETS or following in _YES_WORDS:
                items.append(False)  # "не надо", "не верно"
                i += 1
            elif not following[:1].isalnum() or following in _FILLERS:
                items.append(False)  # "не", "не, спасибо"
            else:
                items.append(None)  # "не знаю", "не понял"
        elif token in _YES_WORDS:
            items.append(True)
        elif token in _NO_WORDS:
            items.append(False)
        else:
            items.append(None)
    polar = {x for x in items if x is not None}
    if len(polar) != 1:
        return None
    answer = polar.pop()
    others = sum(1 for x in items if x is None)
    if items[0] is not None or others <= 2:
        return answer
    return None


def parse_yes_no(text: str, intent: str | None = None) -> bool | None:
    """True for "да", "ага", "конечно", "ок", 👍, "да, всё верно"...; False for "нет", "не",
    "неа", "не надо", 👎. Inconclusive words defer to the NLU `intent` ("affirm"/"deny").
    "отмена"/"стоп" are the engine's business: None, whatever the intent."""
    low = norm(text)
    if any(_canon(t) in _CANCEL_WORDS for t in _TOKEN.findall(low)):
        return None
    answer = _yes_no_words(text)
    if answer is not None:
        return answer
    if intent == "affirm":
        return True
    if intent == "deny":
        return False
    return None


# --------------------------------------------------------------------------- choice


def _occurrences(words: list[str], key: tuple[str, ...]) -> list[tuple[int, int]]:
    """Spans where `key` occurs as whole words in `words`, skipping negated ones ("не картой")."""
    n = len(key)
    return [
        (i, i + n)
        for i in range(len(words) - n + 1)
        if tuple(words[i : i + n]) == key and not (i > 0 and words[i - 1] == "не")
    ]


def _single(values: set[str]) -> str | None:
    return next(iter(values)) if len(values) == 1 else None


def parse_choice(text: str, choices: Sequence[Choice]) -> str | None:
    """The value of the choice whose title (emoji stripped), value or synonym is the text or a
    whole-word part of it, or the 1-based number of the choice; None if none or ambiguous."""
    words = plain(text).split()
    if not words or not choices:
        return None
    keys: list[tuple[str, tuple[str, ...]]] = []
    for choice in choices:
        for name in (choice.title, choice.value, *choice.synonyms):
            tokens = tuple(plain(name).split())
            if tokens:
                keys.append((choice.value, tokens))

    exact = {value for value, key in keys if list(key) == words}
    if not exact and len(words) == 1 and words[0].isdigit():
        # "2" is the 2nd button, unless a title has that number in it ("3 месяца")
        if not any(words[0] in key for _, key in keys) and 1 <= int(words[0]) <= len(choices):
            return choices[int(words[0]) - 1].value
    if exact:
        return _single(exact)

    # a title/synonym inside the text; a key inside a longer matched key does not count
    spans: dict[str, list[tuple[int, int]]] = {}
    for value, key in keys:
        spans.setdefault(value, []).extend(_occurrences(words, key))
    spans = {value: found for value, found in spans.items() if found}

    def dominated(value: str) -> bool:
        return all(
            any(
                s2 <= s and e <= e2 and (e2 - s2) > (e - s)
                for other, found in spans.items()
                if other != value
                for s2, e2 in found
            )
            for s, e in spans[value]
        )

    contained = {value for value in spans if not dominated(value)}
    if contained:
        return _single(contained)

    # the text inside a title ("банк" for "🏦 Через банк")
    if len(" ".join(words)) < 3 and not words[0].isdigit():
        return None
    partial = {value for value, key in keys if _occurrences(list(key), tuple(words))}
    return _single(partial)


# --------------------------------------------------------------------------- number

_NUMBER = re.compile(r"(?<![\d.,])(-)?(\d{1,3}(?: \d{3})+|\d+)(?:[.,](\d+))?(?!\d)(?![.,]\d)")
_THOUSANDS = re.compile(r"\s*(?:тыс\w*|т\.\s?р\b|тр\b)|[кk]\b")


def parse_number(text: str) -> float | None:
    """The one number in the text: "500", "500 р", "1 500,50", "-20", "1,5 тыс"; None if none or
    several."""
    low = norm(text)
    found = list(_NUMBER.finditer(low))
    if len(found) != 1:
        return None
    m = found[0]
    value = float(m.group(2).replace(" ", "") + ("." + m.group(3) if m.group(3) else ""))
    if m.group(1):
        value = -value
    if _THOUSANDS.match(low, m.end()):
        value *= 1000
    return value


_CODE = re.compile(r"(?<!\d)(\d(?:[ -]?\d){3,7})(?!\d)")


def parse_code(text: str) -> str | None:
    """A one-time code typed back: the one group of 4-8 digits ("код 482 913" -> "482913")."""
    found = _CODE.findall(text)
    if len(found) != 1:
        return None
    return re.sub(r"[ -]", "", found[0])


# --------------------------------------------------------------------------- text


def parse_text(text: str) -> str | None:
    """Any non-empty text up to 1000 chars, stripped."""
    stripped = text.strip()
    return stripped if 0 < len(stripped) <= TEXT_MAX else None
