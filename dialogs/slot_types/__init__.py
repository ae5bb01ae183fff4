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

The parsers live by kind of value: `phones` (phone, account, phone_or_account), `address`,
`answers` (yes_no, choice, number, code, text), `time_window`; `normalise` holds the text
helpers they share. Every public name is importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from dialogs.slot_types.address import parse_address
from dialogs.slot_types.answers import (
    Choice,
    parse_choice,
    parse_code,
    parse_number,
    parse_text,
    parse_yes_no,
)
from dialogs.slot_types.phones import parse_account, parse_phone, parse_phone_or_account
from dialogs.slot_types.time_window import parse_time_window, window_options

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
    "parse_text",
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
