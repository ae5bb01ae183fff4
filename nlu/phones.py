"""Russian phone numbers: recognise, normalise, mask.

- `PHONE`: a Russian number in any common spelling (+7 916 123-45-67, 8(916)1234567, 9161234567),
  as the entity extractor (nlu/entities.py) finds it in a message.
- `normalise_phone`: any such spelling -> "+79161234567" (None when it is not one).
- `mask_phone`: a number as people other than its owner may see it, only the last four digits
  shown: "+7 ••• •••-45-67" (a Russian number), "••• 45-67" (any other), bullets only for 4
  digits or fewer.
- `mask_phones`: every phone-looking run of 10-12 digits in a free text masked the same way
  (looser than `PHONE` on purpose: a foreign number is masked too).

No dependency on a phone library: every number here is Russian, and masking needs only digits.
"""

from __future__ import annotations

import re

PHONE = re.compile(
    r"(?<![\d+])(?:\+7|8|7)?[\s\-–(]*(?:9\d{2}|[3-8]\d{2})[\s\-–)]*\d{3}[\s\-–]*\d{2}[\s\-–]*\d{2}(?!\d)"
)
_PHONE_LIKE = re.compile(r"\+?\d[\d\s()-]{9,16}\d")
MASK = "•"


def normalise_phone(raw: str) -> str | None:
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 11 and digits[0] in "78":
        return "+7" + digits[1:]
    if len(digits) == 10 and digits[0] != "0":
        return "+7" + digits
    return None


def mask_phone(phone: object) -> str | None:
    """'+79161234567' -> '+7 ••• •••-45-67': only the last 4 digits are shown (None for none)."""
    if phone is None or phone == "":
        return None
    digits = "".join(c for c in str(phone) if c.isdigit())
    if len(digits) <= 4:
        return MASK * len(digits)
    last = f"{digits[-4:-2]}-{digits[-2:]}"
    if len(digits) == 11 and digits[0] in "78":
        return f"+7 {MASK * 3} {MASK * 3}-{last}"
    return f"{MASK * 3} {last}"


def mask_phones(text: str) -> str:
    """`text` with every phone-looking number (10-12 digits) masked by `mask_phone`."""
    return _PHONE_LIKE.sub(_mask_match, text)


def _mask_match(match: re.Match[str]) -> str:
    digits = re.sub(r"\D", "", match.group())
    if 10 <= len(digits) <= 12:
        return mask_phone(match.group()) or ""
    return match.group()
