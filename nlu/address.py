"""Russian postal addresses: the words they are made of, and the street-level area of one.

One place for the vocabulary (street types, house and flat markers, place names, fillers) that
the address slot, outage detection and the demo backend share. `parse_area` reduces a free-form
address to its street, so contacts from "Октябрьский бульвар 20, кв 5" and "б-р Октябрьский, 14"
count for one area.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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


def _words(segment: str) -> tuple[list[str], list[str], bool, bool]:
    """(key words, title words, has a street type, has a house number) of one address segment."""
    key: list[str] = []
    title: list[str] = []
    typed = numbered = False
    for raw in _TOKEN.findall(segment):
        word = raw.rstrip(".")
        low = word.lower().replace("ё", "е")
        if any(c.isdigit() for c in low) and not _ORDINAL.fullmatch(low):
            numbered = True
            continue
        if low in STREET_TYPES:
            typed = True
            title.append(raw)
            continue
        if low in HOUSE_WORDS or low in PLACE_WORDS or low in FILLER_WORDS or len(low) < 2:
            continue
        title.append(word if key else word[:1].upper() + word[1:])  # a name starts capitalised
        key.append(low)
    return key, title, typed, numbered


def parse_area(address: str) -> Area | None:
    """The area of a free-form Russian address: its street, without house, flat or town.

    The rule: split the address at commas; take the part with a street type (ул., б-р,
    проспект, ...), else the part with the house number, else the part before a lone house
    number, else the last part with words. Its key is its words in lower case with ё as е,
    without the street type, numbers (but "1-я") and town names. So "Пушкин, Октябрьский бульвар,
    д. 20, кв. 14", "Октябрьский бульвар 20, кв 5" and "октябрьский б-р, 14" are all
    "октябрьский" (titled "Октябрьский бульвар"), and "ул. Садовая, 12" is "садовая".
    Known limits: inflected forms differ ("на Садовой" is not "садовая"), and two streets that
    differ only in type ("Ленинский пр." and "Ленинский пер.") are one area."""
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
