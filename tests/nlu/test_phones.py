"""nlu/phones.py: one way to normalise and to mask a phone number (console and operator group)."""

from __future__ import annotations

import pytest

from nlu import entities
from nlu.phones import mask_phone, mask_phones, normalise_phone


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+79161234567", "+7 ••• •••-45-67"),
        ("8 (916) 123-45-67", "+7 ••• •••-45-67"),
        ("9161234567", "••• 45-67"),  # no trunk prefix: not known to be Russian
        ("+380441234567", "••• 45-67"),
        ("12345", "••• 23-45"),
        ("4567", "••••"),
        ("", None),
        (None, None),
    ],
)
def test_mask_phone_shows_only_the_last_four_digits(raw: str | None, masked: str | None) -> None:
    assert mask_phone(raw) == masked


def test_mask_phones_in_a_text_masks_phone_looking_numbers_only() -> None:
    text = "звоните 8 911 000-00-01 или +7 (912) 345-67-89, заказ 12345, л/с 1002003"
    assert mask_phones(text) == (
        "звоните +7 ••• •••-00-01 или +7 ••• •••-67-89, заказ 12345, л/с 1002003"
    )


def test_normalise_phone_is_still_importable_from_entities() -> None:
    assert entities.normalise_phone is normalise_phone
    assert normalise_phone("8-912-345-67-89") == "+79123456789"
