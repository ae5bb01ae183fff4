"""Street addresses (slot type address): a plausible address is kept as typed, only tidied."""

from __future__ import annotations

import re

from dialogs.slot_types.normalise import norm
from dialogs.slot_types.phones import mask_phones
from nlu.address import FILLER_WORDS, HOUSE_WORDS

ADDRESS_MAX = 200

_ADDRESS_WORD = re.compile(r"[a-zа-я]{3,}")
_HOUSE_NUMBER = re.compile(r"(?<!\d)\d{1,4}(?!\d)")
_ADDRESS_REFUSAL = re.compile(r"^(?:не знаю|не помню|нет\b|хз\b|без понятия)")
# Words that do not name a street: the address vocabulary (nlu/address.py: house and flat
# markers, fillers; of the street types only «улица», since «5-я линия» names a street) and the
# words of other slots' answers (phones, accounts, times).
_NOT_A_NAME = (
    frozenset({"улица"})
    | HOUSE_WORDS
    | FILLER_WORDS
    | frozenset(
        """
        мой моя мое мои наш наша наше это вот тут там живу проживаю
        номер телефон телефона тел счет счета лицевой договор договора
        сегодня завтра послезавтра утра утром дня днем вечера вечером часов часа час
        рублей руб рубля тыс знаю помню
        """.split()
    )
)


def _tidy(text: str) -> str:
    return " ".join(text.split()).rstrip(" .,;:!?…-–—").lstrip(" ,;:-–—")


def parse_address(text: str) -> str | None:
    """A plausible street address: a name word of 3+ letters and a house number ("12", "12а",
    "12/3", "д. 5 к 2"), at most 200 chars. Returns the text tidied, not rewritten."""
    tidy = _tidy(text)
    if not tidy or len(tidy) > ADDRESS_MAX:
        return None
    low = norm(tidy)
    if _ADDRESS_REFUSAL.match(low):
        return None
    masked = mask_phones(low)
    names = [w for w in _ADDRESS_WORD.findall(masked) if w not in _NOT_A_NAME]
    if not names or not _HOUSE_NUMBER.search(masked):
        return None
    return tidy
