"""Slot types for dialog forms: parse and validate what a subscriber types into a form slot.

The dialog engine asks for a value (phone, account, address, yes/no, choice, visit window,
number, free text) and calls `parse_value(kind, text, ...)`. Every parser returns the normalised
value, or None when the text is not a valid value of that kind (the engine then re-prompts).
Everything here is a pure function: no I/O, and the clock is read only when `parse_value` is
asked for a time window without `now`.

Values by kind:
- text: the stripped text (1..1000 chars);
- phone: "+7" and 10 digits; account: digits only;
- phone_or_account: {"phone": "+7..."} or {"account": "..."};
- address: the text tidied (whitespace collapsed, trailing punctuation stripped), not rewritten;
- yes_no: True / False; choice: the chosen `Choice.value`; number: float;
- code: a one-time code of 4-8 digits as a string ("482 913" -> "482913"; leading zeros kept);
- time_window: {"date": "YYYY-MM-DD", "from": "HH:MM", "to": "HH:MM", "label": "завтра, 10:00–14:00"}.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nlu.entities import extract, normalise_phone

__all__ = [
    "SLOT_TYPES",
    "Choice",
    "parse_account",
    "parse_address",
    "parse_choice",
    "parse_code",
    "parse_number",
    "parse_phone",
    "parse_phone_or_account",
    "parse_time_window",
    "parse_value",
    "parse_yes_no",
    "window_options",
]

SLOT_TYPES = (
    "text",
    "phone",
    "account",
    "phone_or_account",
    "address",
    "yes_no",
    "choice",
    "time_window",
    "number",
    "code",
)

TEXT_MAX = 1000
ADDRESS_MAX = 200


@dataclass(frozen=True, slots=True)
class Choice:
    value: str  # short ASCII-ish id stored in the slot, e.g. "card"
    title: str  # button title, e.g. "💳 Картой"
    synonyms: tuple[str, ...] = ()  # extra words that select it


# --------------------------------------------------------------------------- text helpers

_TRANSLATE = str.maketrans({"ё": "е", "Ё": "Е", "–": "-", "—": "-", "−": "-", "‒": "-"})


def _norm(text: str) -> str:
    """NFKC (NBSP -> space, full-width digits), lower case, ё -> е, one kind of dash, one space."""
    text = unicodedata.normalize("NFKC", text).translate(_TRANSLATE).lower()
    return " ".join(text.split())


_DROP_CATEGORIES = frozenset({"So", "Sk", "Cf", "Me", "Mn", "Co", "Cs", "Cn"})


def _plain(text: str) -> str:
    """Letters and digits only: emoji and punctuation become spaces; lower case, ё -> е."""
    out = []
    for ch in unicodedata.normalize("NFKC", text):
        if unicodedata.category(ch) in _DROP_CATEGORIES or not ch.isalnum():
            out.append(" ")
        else:
            out.append(ch.lower())
    return " ".join("".join(out).replace("ё", "е").split())


# --------------------------------------------------------------------------- phone / account

# A phone-ish run: digits with spaces, dashes and parentheses, 10+ characters, maybe a "+".
_PHONE_SPAN = re.compile(r"(?<![\d+])\+?\d[\d\s\-–()]{8,20}\d(?!\d)")
# An account candidate: 6+ digits, single spaces/dashes allowed between them.
_ACCOUNT_NUM = re.compile(r"(?<!\d)\+?\d(?:[ \-–]?\d){5,15}(?!\d)")
_ACCOUNT_WORDS = re.compile(
    r"л\s*/\s*с|\bлс\b|лицев\w*|\bсч[её]т\w*|договор\w*|аккаунт\w*", re.IGNORECASE
)


def _phone_looking(digits: str) -> bool:
    """An 11-digit number with a 7/8 trunk prefix, or a 10-digit one starting with 9 (mobile)."""
    return (len(digits) == 11 and digits[0] in "78") or (len(digits) == 10 and digits[0] == "9")


def _plausible_phone(raw: str) -> str | None:
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 10 and digits[0] in "78" and digits[1] == "9":
        return None  # "8916123456": a mobile number with a digit missing, not a landline
    value = normalise_phone(raw)
    if value is None or value[2] not in "34789":  # Russian/Kazakh area codes: 3xx 4xx 7xx 8xx 9xx
        return None
    return value


def parse_phone(text: str) -> str | None:
    """ "+79161234567" from any common spelling (8 916 123-45-67, +7(916)1234567, 9161234567),
    also inside a sentence ("мой номер 8 916 ..."); None when there is none or several."""
    entities = extract(text)
    found: set[str] = set()
    for entity in entities:
        if entity.entity == "phone":
            value = _plausible_phone(text[entity.start : entity.end])
            if value is None:
                return None
            found.add(value)
    if not entities:  # looser grouping the extractor does not know, e.g. "8 916 12 34 567"
        for m in _PHONE_SPAN.finditer(text):
            value = _plausible_phone(m.group())
            if value is not None:
                found.add(value)
    return found.pop() if len(found) == 1 else None


def _mask_phones(text: str) -> str:
    """Blank out runs that are clearly phone numbers ("+", parentheses, or phone-looking digits)."""

    def blank(m: re.Match[str]) -> str:
        raw = m.group()
        digits = re.sub(r"\D", "", raw)
        if "+" in raw or "(" in raw or ")" in raw or _phone_looking(digits):
            return " " * len(raw)
        return raw

    return _PHONE_SPAN.sub(blank, text)


def parse_account(text: str) -> str | None:
    """The digits of a 6-12 digit account/contract number (spaces or dashes allowed inside),
    bare or after "лс", "л/с", "лицевой счёт", "договор"...; never a phone-looking number."""
    found: set[str] = set()
    for m in _ACCOUNT_NUM.finditer(_mask_phones(text)):
        if m.group().startswith("+"):
            continue
        digits = re.sub(r"\D", "", m.group())
        if 6 <= len(digits) <= 12 and not _phone_looking(digits):
            found.add(digits)
    return found.pop() if len(found) == 1 else None


def parse_phone_or_account(text: str) -> dict[str, str] | None:
    """{"phone": "+7..."} or {"account": "..."}. A number valid as both (a 10-digit landline such
    as 4951234567) is a phone unless the text names it an account ("лс", "договор"...)."""
    if _ACCOUNT_WORDS.search(text):
        account = parse_account(text)
        if account is not None:
            return {"account": account}
    phone = parse_phone(text)
    if phone is not None:
        return {"phone": phone}
    account = parse_account(text)
    if account is not None:
        return {"account": account}
    return None


# --------------------------------------------------------------------------- address

_ADDRESS_WORD = re.compile(r"[a-zа-я]{3,}")
_HOUSE_NUMBER = re.compile(r"(?<!\d)\d{1,4}(?!\d)")
_ADDRESS_REFUSAL = re.compile(r"^(?:не знаю|не помню|нет\b|хз\b|без понятия)")
# Words that do not name a street or a place: markers, fillers, and words of other slots' answers.
_NOT_A_NAME = frozenset(
    """
    улица дом квартира корпус корп строение стр подъезд этаж офис адрес адресу
    мой моя мое мои наш наша наше это вот тут там живу проживаю
    номер телефон телефона тел счет счета лицевой договор договора
    сегодня завтра послезавтра утра утром дня днем вечера вечером часов часа час
    рублей руб рубля тыс знаю помню
    """.split()
)


def _tidy(text: str) -> str:
    return " ".join(text.split()).rstrip(" .,;:!?…-–—").lstrip(" ,;:-–—")


def parse_address(text: str) -> str | None:
    """A plausible street address: a name word of 3+ letters and a house number ("12", "12а",
    "12/3", "д. 5 к 2"), at most 200 chars. Returns the text tidied, not rewritten."""
    tidy = _tidy(text)
    if not tidy or len(tidy) > ADDRESS_MAX:
        return None
    low = _norm(tidy)
    if _ADDRESS_REFUSAL.match(low):
        return None
    masked = _mask_phones(low)
    names = [w for w in _ADDRESS_WORD.findall(masked) if w not in _NOT_A_NAME]
    if not names or not _HOUSE_NUMBER.search(masked):
        return None
    return tidy


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
    low = _norm(text)
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
    low = _norm(text)
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
    words = _plain(text).split()
    if not words or not choices:
        return None
    keys: list[tuple[str, tuple[str, ...]]] = []
    for choice in choices:
        for name in (choice.title, choice.value, *choice.synonyms):
            tokens = tuple(_plain(name).split())
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
    low = _norm(text)
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


# --------------------------------------------------------------------------- time window

DAY_START = 8 * 60  # minutes: a visit window must lie within 08:00..22:00
DAY_END = 22 * 60
MIN_WINDOW = 60
MAX_DAYS_AHEAD = 14
DEFAULT_WINDOW = (9 * 60, 18 * 60)
OPTION_WINDOWS = ((9 * 60, 12 * 60), (12 * 60, 15 * 60), (15 * 60, 18 * 60), (18 * 60, 21 * 60))
MAX_OPTIONS = 6

_WEEKDAY_SHORT = ("пн", "вт", "ср", "чт", "пт", "сб", "вс")
_WEEKDAYS = tuple(
    re.compile(rf"\b(?:{p})\b")
    for p in (
        r"понедельник\w*|пн",
        r"вторник\w*|вт",
        r"сред[аеуы]|средой|ср",
        r"четверг\w*|чт",
        r"пятниц\w*|пт",
        r"суббот\w*|сб",
        r"воскресень\w*|воскресени\w*|вс",
    )
)
_RELATIVE_DAYS = ((re.compile(r"\bпослезавтра\b"), 2), (re.compile(r"\bзавтра\b"), 1))
_TODAY = re.compile(r"\bсегодня\b")
_MONTHS = (
    "январ",
    "феврал",
    "март",
    "апрел",
    "ма[йяе]",
    "июн",
    "июл",
    "август",
    "сентябр",
    "октябр",
    "ноябр",
    "декабр",
)
_DATE_WORDS = re.compile(
    r"(?<!\d)(\d{1,2})\s*("
    + "|".join(rf"{m}\w*" for m in _MONTHS)
    + r")(?:\s*(\d{4})(?:\s*г\w*)?)?"
)
_DATE_NUMERIC = re.compile(r"(?<![\d:.])(\d{1,2})[./](\d{1,2})(?:[./](\d{4}|\d{2}))?(?![\d:])")

_CLOCK = (
    r"(\d{1,2})(?:[:.](\d{2}))?(?:\s*(?:ч|час|часа|часов)\b\.?)?(?:\s*(утра|дня|вечера|ночи)\b)?"
)
_RANGE = re.compile(rf"(?:\b(?:с|со|от)\s*)?(?<!\d){_CLOCK}\s*(?:-|\bдо\b|\bпо\b)\s*{_CLOCK}")
_AFTER = re.compile(rf"(?:\bпосле|\bс|\bсо|\bот|\bне раньше)\s*(?<!\d){_CLOCK}")
_BEFORE = re.compile(rf"(?:\bдо|\bне позже|\bне позднее)\s*(?<!\d){_CLOCK}")
_AT = re.compile(rf"(?:\bв|\bк|\bоколо|\bпримерно в|\bна)\s*(?<!\d){_CLOCK}")
_BARE_CLOCK = re.compile(r"(?<![\d.:])(\d{1,2})[:.](\d{2})(?![\d.:])")

# part-of-day words, checked in order; None marks a part of day no visit can be booked in
_PARTS_OF_DAY: tuple[tuple[re.Pattern[str], tuple[int, int] | None, str], ...] = (
    (re.compile(r"\bперв\w* половин\w*"), (9 * 60, 13 * 60), "first_half"),
    (re.compile(r"\bвтор\w* половин\w*"), (13 * 60, 18 * 60), "second_half"),
    (re.compile(r"\bпосле обеда\b"), (14 * 60, 18 * 60), "afternoon"),
    (re.compile(r"\bутр(?:ом|о)\b|\bс утра\b|\bпоутру\b"), (9 * 60, 12 * 60), "morning"),
    (re.compile(r"\bдн[её]м\b|\bв обед\b|\bобед\b"), (12 * 60, 15 * 60), "day"),
    (re.compile(r"\bвечер(?:ом)?\b"), (18 * 60, 21 * 60), "evening"),
    (re.compile(r"\bноч(?:ью|ь)\b"), None, "night"),
)


class _Invalid(Exception):
    """The text names a day or a time, but not a bookable one."""


def _local_now(now: datetime, zone: ZoneInfo) -> datetime:
    return now.replace(tzinfo=zone) if now.tzinfo is None else now.astimezone(zone)


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day_label(day: date, today: date) -> str:
    relative = {0: "сегодня", 1: "завтра", 2: "послезавтра"}.get((day - today).days)
    return relative or f"{_WEEKDAY_SHORT[day.weekday()]}, {day:%d.%m}"


def _window(day: date, start: int, end: int, today: date) -> dict[str, str]:
    return {
        "date": day.isoformat(),
        "from": _hhmm(start),
        "to": _hhmm(end),
        "label": f"{_day_label(day, today)}, {_hhmm(start)}–{_hhmm(end)}",
    }


def _blank(text: str, m: re.Match[str]) -> str:
    return text[: m.start()] + " " * (m.end() - m.start()) + text[m.end() :]


def _make_date(day: int, month: int, year: int | None, today: date) -> date:
    try:
        if year is not None:
            return date(year + 2000 if year < 100 else year, month, day)
        found = date(today.year, month, day)
        if found < today:
            found = date(today.year + 1, month, day)
        return found
    except ValueError as exc:
        raise _Invalid from exc


def _take_days(text: str, today: date) -> tuple[str, set[date], set[int]]:
    """Dates named in the text (dates and сегодня/завтра) and weekdays; their words blanked."""
    dates: set[date] = set()
    weekdays: set[int] = set()
    for m in list(_DATE_WORDS.finditer(text)):
        month = next(i for i, p in enumerate(_MONTHS, 1) if re.match(p, m.group(2)))
        year = int(m.group(3)) if m.group(3) else None
        dates.add(_make_date(int(m.group(1)), month, year, today))
        text = _blank(text, m)
    for m in list(_DATE_NUMERIC.finditer(text)):
        day, month = int(m.group(1)), int(m.group(2))
        if not 1 <= month <= 12 or not 1 <= day <= 31:
            continue  # "10.00", "9.30": a clock time, not a date
        dates.add(_make_date(day, month, int(m.group(3)) if m.group(3) else None, today))
        text = _blank(text, m)
    for pattern, offset in _RELATIVE_DAYS:
        for m in list(pattern.finditer(text)):
            dates.add(today + timedelta(days=offset))
            text = _blank(text, m)
    for m in list(_TODAY.finditer(text)):
        dates.add(today)
        text = _blank(text, m)
    for weekday, pattern in enumerate(_WEEKDAYS):
        for m in list(pattern.finditer(text)):
            weekdays.add(weekday)
            text = _blank(text, m)
    return text, dates, weekdays


def _clock(hour: str, minute: str | None, qualifier: str | None, part: str | None) -> int:
    """Minutes since midnight; "2 дня"/"7 вечера" are afternoon, as is "6" with "вечером"."""
    h, m = int(hour), int(minute or 0)
    if h > 24 or m > 59:
        raise _Invalid
    if qualifier in ("дня", "вечера") and h < 12:
        h += 12
    elif qualifier == "ночи" and 9 <= h < 12:
        h += 12
    elif qualifier is None and part == "evening" and h < 12:
        h += 12
    elif qualifier is None and 1 <= h <= 7:
        h += 12  # nobody books a visit at 3 a.m.: "после 6" is 18:00
    return h * 60 + m


def _take_time(text: str) -> tuple[str, tuple[int, int] | None]:
    """The time window named in the text, if any, and the text with it blanked."""
    parts: set[str] = set()
    part_window: tuple[int, int] | None = None
    for pattern, window, name in _PARTS_OF_DAY:
        for m in list(pattern.finditer(text)):
            if window is None:
                raise _Invalid
            if part_window is not None and part_window != window:
                raise _Invalid  # "утром или вечером"
            parts.add(name)
            part_window = window
            text = _blank(text, m)
    part = next(iter(parts)) if parts else None

    windows: list[tuple[int, int]] = []
    for m in list(_RANGE.finditer(text)):
        q1, q2 = m.group(3), m.group(6)
        h1, h2 = int(m.group(1)), int(m.group(4))
        if q1 is None and q2 is None and part != "evening" and 1 <= h1 <= 7 and h2 > 7:
            start = h1 * 60 + int(m.group(2) or 0)  # "с 7 до 10": early, not 19:00
        else:
            start = _clock(m.group(1), m.group(2), q1, part)
        end = _clock(m.group(4), m.group(5), q2, part)
        if end <= start and end + 12 * 60 <= 24 * 60 and q2 is None:
            end += 12 * 60  # "с 10 до 2"
        windows.append((start, end))
        text = _blank(text, m)
    simple: tuple[tuple[re.Pattern[str], Callable[[int], tuple[int, int]]], ...] = (
        (_AFTER, lambda t: (t, min(t + 180, DAY_END))),
        (_BEFORE, lambda t: (DEFAULT_WINDOW[0], t)),
        (_AT, lambda t: (t, min(t + 120, DAY_END))),
    )
    for pattern, build in simple:
        for m in list(pattern.finditer(text)):
            windows.append(build(_clock(m.group(1), m.group(2), m.group(3), part)))
            text = _blank(text, m)
    for m in list(_BARE_CLOCK.finditer(text)):
        t = _clock(m.group(1), m.group(2), None, part)
        windows.append((t, min(t + 120, DAY_END)))
        text = _blank(text, m)

    if len(set(windows)) > 1:
        raise _Invalid  # two different times
    if windows:
        return text, windows[0]
    return text, part_window


def _bookable(start_at: datetime, start: int, end: int, now: datetime) -> bool:
    return DAY_START <= start and end <= DAY_END and end - start >= MIN_WINDOW and start_at >= now


def parse_time_window(text: str, now: datetime, tz: str = "Europe/Moscow") -> dict[str, str] | None:
    """A visit window from "завтра утром", "в пятницу с 10 до 14", "25.11 после 18", "вечером"...

    Day alone -> 09:00-18:00 (today: from the next full hour); time alone -> today if the window
    is still ahead, else tomorrow; a weekday alone is the next such day, never today. Rejects
    windows that start in the past, lie outside 08:00-22:00, are under 1 h, or are more than
    14 days ahead; also contradictions ("завтра 25.11" on another day, "утром или вечером").
    """
    zone = ZoneInfo(tz)
    local = _local_now(now, zone)
    today = local.date()
    try:
        rest, dates, weekdays = _take_days(_norm(text), today)
        rest, window = _take_time(rest)
    except _Invalid:
        return None
    if re.search(r"\d", rest):
        return None  # numbers we did not understand ("завтра 15"): better ask again
    if not dates and not weekdays and window is None:
        return None
    if len(dates) > 1 or len(weekdays) > 1:
        return None

    def start_at(day: date, minutes: int) -> datetime:
        return datetime.combine(day, time(minutes // 60, minutes % 60), zone)

    if dates:
        day = dates.pop()
        if weekdays and day.weekday() not in weekdays:
            return None  # "в пятницу 25.11" when 25.11 is not a Friday
    elif weekdays:
        day = today + timedelta(days=(weekdays.pop() - today.weekday() - 1) % 7 + 1)
    else:
        assert window is not None
        day = today if start_at(today, window[0]) >= local else today + timedelta(days=1)

    if window is None:
        start, end = DEFAULT_WINDOW
        if day == today:
            next_hour = (
                local.hour + (1 if (local.minute or local.second or local.microsecond) else 0)
            ) * 60
            start = max(start, next_hour)
    else:
        start, end = window
    if not 0 <= (day - today).days <= MAX_DAYS_AHEAD:
        return None
    if not _bookable(start_at(day, start), start, end, local):
        return None
    return _window(day, start, end, today)


def window_options(now: datetime, tz: str = "Europe/Moscow", days: int = 3) -> list[dict[str, str]]:
    """The next bookable windows for buttons (09-12, 12-15, 15-18, 18-21) on the next `days` days
    from tomorrow, and today's remaining ones if it is before 12:00 local; at most 6, earliest
    first. Each label parses back to the same window with `parse_time_window`."""
    zone = ZoneInfo(tz)
    local = _local_now(now, zone)
    today = local.date()
    candidates = [today] if local.hour < 12 else []
    candidates += [today + timedelta(days=n) for n in range(1, days + 1)]
    options: list[dict[str, str]] = []
    for day in candidates:
        for start, end in OPTION_WINDOWS:
            if datetime.combine(day, time(start // 60), zone) >= local:
                options.append(_window(day, start, end, today))
                if len(options) == MAX_OPTIONS:
                    return options
    return options


# --------------------------------------------------------------------------- dispatch


def parse_text(text: str) -> str | None:
    """Any non-empty text up to 1000 chars, stripped."""
    stripped = text.strip()
    return stripped if 0 < len(stripped) <= TEXT_MAX else None


def parse_value(
    kind: str,
    text: str,
    *,
    intent: str | None = None,
    choices: Sequence[Choice] = (),
    now: datetime | None = None,
    tz: str = "Europe/Moscow",
) -> Any | None:
    """Parse `text` as a value of slot `kind` (one of SLOT_TYPES); None when it is not one.

    Raises ValueError for an unknown kind, or a "choice" slot without choices (a content bug that
    would otherwise re-prompt forever)."""
    if kind == "text":
        return parse_text(text)
    if kind == "phone":
        return parse_phone(text)
    if kind == "account":
        return parse_account(text)
    if kind == "phone_or_account":
        return parse_phone_or_account(text)
    if kind == "address":
        return parse_address(text)
    if kind == "yes_no":
        return parse_yes_no(text, intent)
    if kind == "choice":
        if not choices:
            raise ValueError("a 'choice' slot needs choices")
        return parse_choice(text, choices)
    if kind == "time_window":
        return parse_time_window(text, now if now is not None else datetime.now(UTC), tz)
    if kind == "number":
        return parse_number(text)
    if kind == "code":
        return parse_code(text)
    raise ValueError(f"unknown slot kind {kind!r}; expected one of {', '.join(SLOT_TYPES)}")
