"""Russian postal addresses: the words they are made of, the street-level area of one, and the
address inside a sentence.

One place for the vocabulary (street types, house and flat markers, place names, fillers) that
the address slot, outage detection and the demo backend share. `parse_area` reduces a free-form
address to its street, so contacts from "Октябрьский бульвар 20, кв 5", "б-р Октябрьский, 14"
and "на Октябрьском бульваре" count for one area (adjective street names are put in the
nominative). `extract_address` finds "Садовая 5" in "подключите интернет на Садовую 5".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from nlu.morph import analyzer, lemma

MAX_TITLE = 200


@dataclass(frozen=True, slots=True)
class Area:
    key: str  # what contacts are grouped by: "октябрьский"
    title: str  # as people write it: "Октябрьский бульвар"


_SEGMENTS = re.compile(r"[,;\n]+")
_TOKEN = re.compile(r"[\w]+(?:[-/][\w]+)*\.?")
_ORDINAL = re.compile(r"\d+-?(?:й|я|е|ый|ий|ой|ая|ье|го)")  # "1-я Советская" keeps its "1-я"
STREET_TYPES = frozenset(
    "ул улица пр пр-т пр-кт просп проспект б-р бул бульв бульвар пер переулок ш шоссе наб "
    "набережная пл площадь аллея ал проезд пр-д туп тупик линия мкр мкрн микрорайон кв-л "
    "квартал тракт".split()
)
HOUSE_WORDS = frozenset(
    "д дом кв квартира корп корпус к стр строение лит литера под подъезд эт этаж оф офис".split()
)
# Place words (and the reference deployment's towns): a segment of only these is no street.
PLACE_WORDS = frozenset(
    "г гор город пос поселок п пгт с село дер деревня обл область р-н район россия рф "
    "пушкин царское спб санкт-петербург петербург питер москва".split()
)
FILLER_WORDS = frozenset("на в по у адрес адресу дома около возле".split())


def _street_word(word: str, low: str, before_type_or_number: bool) -> str:
    """A street-name word in the nominative when it is an adjective naming the street
    ("Садовую" -> "Садовая", "октябрьском" -> "октябрьский"); other words as written (the
    genitive of "улица Ленина", "наб. Чёрной речки" is the name itself)."""
    if not before_type_or_number or not low.isalpha():
        return word
    parsed = analyzer().parse(low)[0]
    if "ADJF" not in parsed.tag or parsed.tag.case == "nomn":
        return word
    nominative = parsed.inflect({"nomn"})
    if nominative is None:
        return word
    form = nominative.word
    return form[:1].upper() + form[1:] if word[:1].isupper() else form


def _street_type(low: str) -> str | None:
    """The street type a word is, in any case ("бульваре" -> "бульвар"), or None."""
    if low in STREET_TYPES:
        return low
    if low.isalpha() and len(low) > 3:
        base = lemma(low)
        if base in STREET_TYPES:
            return base
    return None


def _is_number(low: str) -> bool:
    return any(c.isdigit() for c in low) and not _ORDINAL.fullmatch(low)


def _words(segment: str) -> tuple[list[str], list[str], bool, bool]:
    """(key words, title words, has a street type, has a house number) of one address segment."""
    key: list[str] = []
    title: list[str] = []
    typed = numbered = False
    raws = _TOKEN.findall(segment)
    tokens = [raw.rstrip(".") for raw in raws]
    lows = [t.lower().replace("ё", "е") for t in tokens]
    for i, (word, low) in enumerate(zip(tokens, lows, strict=True)):
        if _is_number(low):
            numbered = True
            continue
        kind = _street_type(low)
        if kind is not None:
            typed = True
            title.append(raws[i] if low == kind else kind)  # as written ("ул."), else "бульвар"
            continue
        if low in HOUSE_WORDS or low in PLACE_WORDS or low in FILLER_WORDS or len(low) < 2:
            continue
        nxt = lows[i + 1] if i + 1 < len(lows) else ""
        named = _street_word(word, low, _is_number(nxt) or _street_type(nxt) is not None)
        title.append(named if key else named[:1].upper() + named[1:])  # a name starts capitalised
        key.append(named.lower().replace("ё", "е"))
    return key, title, typed, numbered


def parse_area(address: str) -> Area | None:
    """The area of a free-form Russian address: its street, without house, flat or town.

    The rule: split the address at commas; take the part with a street type (ул., б-р,
    проспект, ...), else the part with the house number, else the part before a lone house
    number, else the last part with words. Its key is its words in lower case with ё as е,
    without the street type, numbers (but "1-я") and town names. So "Пушкин, Октябрьский бульвар,
    д. 20, кв. 14", "Октябрьский бульвар 20, кв 5" and "октябрьский б-р, 14" are all
    "октябрьский" (titled "Октябрьский бульвар"), and "ул. Садовая, 12" is "садовая".
    Adjective names are put in the nominative ("на Садовой 5" is "садовая"). Known limit: two
    streets that differ only in type ("Ленинский пр." and "Ленинский пер.") are one area."""
    parts = [_words(s) for s in _SEGMENTS.split(address)]
    named = [i for i, p in enumerate(parts) if p[0]]
    if not named:
        return None
    pick = next((i for i in named if parts[i][2]), None)
    if pick is None:
        pick = next((i for i in named if parts[i][3]), None)
    if pick is None:
        lone = next((i for i, p in enumerate(parts) if p[3] and not p[0]), None)
        before = [i for i in named if lone is not None and i < lone]
        pick = before[-1] if before else named[-1]
    key, title, _typed, _numbered = parts[pick]
    return Area(" ".join(key)[:100], " ".join(title)[:MAX_TITLE])


def area_key(address: str) -> str | None:
    found = parse_area(address)
    return found.key if found else None


# Words that end the street name when reading back from a house number: the request around it.
_NOT_STREET = frozenset(
    """
    интернет интернета тв телевидение мастер мастера мастеру подключите подключить подключение
    проведите провести не работает работает нет пропал пропало дом квартира квартиру
    адрес адресу живу проживаю офис офиса салон салона терминал терминалы есть ли где
    тариф тарифа тарифе пакет пакета номер номера счет счета счете лицевой договор
    минута минуты минут гигабайт гб мб мегабит рублей руб рубля раз день дня дней
    факту факт итогу итог сути скорость скорости тест тесту спидтест спидтесту замеру
    среднем максимум минимум
    """.split()
)
# A number followed by one of these is an amount or a time, not a house.
_UNITS = frozenset(
    """
    день дня дней недели неделю месяц месяца месяцев час часа часов минут минуты мин раз раза
    рублей рубля руб р гб мб гигабайт мегабит мбит мбитс тыс тысяч процентов
    """.split()
)
_NAME_POS = frozenset({"ADJF", "NOUN", "PRTF"})
_HOUSE_PART = re.compile(r"^\d{1,4}[а-яa-z]?(?:[/-]\d{1,4}[а-яa-z]?)?$")
_STREET_LEAD = frozenset({"на", "по", "улица", "улице", "ул"})


def _name_word(low: str) -> bool:
    """Could this word be part of a street's name (an adjective or noun, not a request word)?"""
    if not low.isalpha() or len(low) < 2 or low in _NOT_STREET:
        return False
    if low in FILLER_WORDS or low in PLACE_WORDS or low in HOUSE_WORDS:
        return False
    grammemes = set(analyzer().parse(low)[0].tag.grammemes)
    return bool(_NAME_POS & grammemes) and "Apro" not in grammemes  # not "какой", "моей"


def _street_before(tokens: list[str], lows: list[str], end: int) -> tuple[list[int], str | None]:
    """Up to three name words (and a street type) read back from `end` (exclusive)."""
    i, kind = end - 1, None
    street: list[int] = []
    while i >= 0 and lows[i] in HOUSE_WORDS:  # "д. 20", "дом 20"
        i -= 1
    while i >= 0 and len(street) < 3:
        low = lows[i]
        found = _street_type(low)
        if found is not None and kind is None:
            kind = tokens[i] if low in STREET_TYPES else found
        elif _name_word(low):
            street.insert(0, i)
        else:
            break
        i -= 1
    return street, kind


def _compose(tokens: list[str], lows: list[str], street: list[int], kind: str | None) -> str:
    last = street[-1]
    type_after = last + 1 < len(lows) and _street_type(lows[last + 1]) is not None
    words = [_street_word(tokens[k], lows[k], k == last) for k in street]
    name = " ".join(w[:1].upper() + w[1:] if j == 0 else w for j, w in enumerate(words))
    if kind is None:
        return name
    return f"{name} {kind}" if type_after else f"{kind} {name}"


def extract_address(text: str) -> str | None:
    """The street address inside a sentence, tidied: "подключите интернет на Садовую 5" ->
    "Садовая 5", "не работает на октябрьском бульваре, д. 20" -> "Октябрьский бульвар 20",
    "ул. Ленина 12" -> "ул Ленина 12". Up to three name words (and a street type) before a house
    number; None when there is no such thing ("уже 3 дня" is no address)."""
    found = address_span(text)
    return found[2] if found else None


def address_span(text: str) -> tuple[int, int, str] | None:
    """(start, end, the address tidied) of the street address inside `text`, flat and building
    parts after the house number included ("на Садовую 12 кв 5": the span covers "Садовую 12 кв
    5"), so the rest of the message can be read without it."""
    matches = list(_TOKEN.finditer(text))
    tokens = [m.group().rstrip(".") for m in matches]
    lows = [t.lower().replace("ё", "е") for t in tokens]
    for n in range(len(tokens) - 1, 0, -1):
        if not _HOUSE_PART.match(lows[n]):
            continue
        if n + 1 < len(lows) and lows[n + 1] in _UNITS:
            continue
        street, kind = _street_before(tokens, lows, n)
        if street and any(len(lows[k]) >= 3 for k in street):
            first = min([*street, *(i for i in range(street[0] - 1, n) if _street_type(lows[i]))])
            last = n
            while (
                last + 2 < len(lows)
                and lows[last + 1] in HOUSE_WORDS
                and lows[last + 2][:1].isdigit()
            ):
                last += 2  # "кв 5", "корп 2"
            tidy = f"{_compose(tokens, lows, street, kind)} {tokens[n]}"
            return matches[first].start(), matches[last].end(), tidy
    return None


def extract_street(text: str) -> str | None:
    """A street named without a house number ("есть офис на Садовой?" -> "Садовая"): name words
    after "на" / "по" / "улица", in the nominative. None if there is none."""
    tokens = [raw.rstrip(".") for raw in _TOKEN.findall(text)]
    lows = [t.lower().replace("ё", "е") for t in tokens]
    for i, low in enumerate(lows):
        if low not in _STREET_LEAD:
            continue
        j, kind = i + 1, None
        street: list[int] = []
        while j < len(lows) and len(street) < 3:
            found = _street_type(lows[j])
            if found is not None and kind is None:
                kind = tokens[j] if lows[j] in STREET_TYPES else found
            elif _name_word(lows[j]) and lows[j] not in _UNITS:
                street.append(j)
            else:
                break
            j += 1
        if street:
            return _compose(tokens, lows, street, kind)
    return None
