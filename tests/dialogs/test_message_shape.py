"""Reading a message's shape: two questions at once (`two_asks`), a number on its own (`only_number`)."""

from __future__ import annotations

import pytest

from dialogs.understanding import only_number, two_asks


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        (
            "здравствуйте, подскажите где можно оплатить и какой у меня тариф",
            ("подскажите где можно оплатить", "какой у меня тариф"),
        ),
        ("какой у меня баланс? и где оплатить", ("какой у меня баланс", "где оплатить")),
        (
            "хочу сменить тариф, а ещё подключить автоплатёж",
            ("хочу сменить тариф", "подключить автоплатёж"),
        ),
        (
            "Привет! Как оплатить картой? Какой у меня тариф?",
            ("Как оплатить картой", "Какой у меня тариф"),
        ),
    ],
)
def test_two_questions_are_split_where_the_second_begins(text: str, parts: tuple[str, str]) -> None:
    assert two_asks(text) == parts


@pytest.mark.parametrize(
    "text",
    [
        "где оплатить?",
        "не работает интернет и телевизор",  # one request about two things
        "где и как оплатить",
        "оплатил, а деньги не пришли",
        "не работает интернет, что делать",  # «, что делать» goes on the same request
        "уже третий день не работает интернет, дети не могут делать уроки",
        "где оплатить? как оплатить? когда оплатить?",  # three: not guessed at
    ],
)
def test_one_request_is_left_whole(text: str) -> None:
    assert two_asks(text) is None


@pytest.mark.parametrize(
    ("text", "alone"),
    [
        ("89110000001", True),
        ("+7 (911) 000-00-01", True),
        ("мой номер 8 911 000 00 01", True),
        ("л/с 100200301", True),
        ("баланс 89110000001", False),  # a request with its number
        ("тариф за 300 рублей", False),
        ("привет", False),
    ],
)
def test_a_message_that_is_only_a_number(text: str, alone: bool) -> None:
    assert only_number(text) is alone
