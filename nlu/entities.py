"""Entity extraction for the embedded engine: `phone` and `account`, normalised.

- phone: Russian numbers in any common spelling (+7 916 123-45-67, 8(916)1234567, 9161234567)
  -> "+79161234567" (recognised and normalised by nlu/phones.py).
- account (лицевой счёт / договор): 6-12 digits after a context word (лс, л/с, лицевой счёт,
  договор, аккаунт, абонент) or a bare 9-12 digit number that is not a phone -> digits only.
Other entity names get Rasa-style regex extraction from the training data's `regex:` items.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from nlu.phones import PHONE, normalise_phone
from nlu.types import Entity

__all__ = ["extract", "normalise_phone"]  # normalise_phone lives in nlu.phones; kept importable
_ACCOUNT_CONTEXT = re.compile(
    r"(?:л\s*/\s*с|\bлс|лицев\w*\s+сч[её]т\w*|договор\w*|аккаунт\w*|абонент\w*)"
    r"[^\d\n]{0,20}?(?P<num>\d[\d\s\-]{4,16}\d)(?!\d)",
    re.IGNORECASE,
)
_BARE_NUMBER = re.compile(r"(?<!\d)\d{9,12}(?!\d)")


def extract(text: str, regexes: dict[str, list[str]] | None = None) -> tuple[Entity, ...]:
    found: list[Entity] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    for m in _ACCOUNT_CONTEXT.finditer(text):
        digits = re.sub(r"\D", "", m.group("num"))
        if 6 <= len(digits) <= 12:
            start, end = m.span("num")
            found.append(Entity("account", digits, start, end, "embedded"))
            taken.append((start, end))
    for m in PHONE.finditer(text):
        value = normalise_phone(m.group())
        start, end = m.span()
        while start < end and not (text[start].isdigit() or text[start] == "+"):
            start += 1
        if value and free(start, end):
            found.append(Entity("phone", value, start, end, "embedded"))
            taken.append((start, end))
    for m in _BARE_NUMBER.finditer(text):
        if free(*m.span()):
            found.append(Entity("account", m.group(), m.start(), m.end(), "embedded"))
            taken.append(m.span())
    for name, patterns in (regexes or {}).items():
        if name in ("phone", "account"):
            continue  # the built-in extractors above normalise these
        for m in _finditer_all(patterns, text):
            if free(*m.span()):
                found.append(Entity(name, m.group(), m.start(), m.end(), "regex"))
                taken.append(m.span())
    return tuple(sorted(found, key=lambda e: e.start))


def _finditer_all(patterns: Iterable[str], text: str) -> Iterable[re.Match[str]]:
    for pattern in patterns:
        yield from re.finditer(pattern, text, re.IGNORECASE)
