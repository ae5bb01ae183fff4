"""Phone and account numbers (slot types phone, account, phone_or_account): "+7" and 10 digits,
an account's digits, or either, found in whatever the subscriber typed."""

from __future__ import annotations

import re

from nlu.entities import extract, normalise_phone

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


def mask_phones(text: str) -> str:
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
    for m in _ACCOUNT_NUM.finditer(mask_phones(text)):
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
