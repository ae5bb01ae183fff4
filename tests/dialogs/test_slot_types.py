"""Form-slot parsers: what subscribers really type into each kind of slot, accepted and rejected."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from dialogs.slot_types import (
    SLOT_TYPES,
    Choice,
    parse_account,
    parse_address,
    parse_choice,
    parse_number,
    parse_phone,
    parse_phone_or_account,
    parse_time_window,
    parse_value,
    parse_yes_no,
    window_options,
)
from nlu.address import extract_address

MSK = ZoneInfo("Europe/Moscow")
MONDAY_MORNING = datetime(2025, 11, 24, 8, 30, tzinfo=MSK)  # Mon 24.11.2025 08:30
FRIDAY_EVENING = datetime(2025, 11, 21, 19, 30, tzinfo=MSK)  # Fri 21.11.2025 19:30

PAYMENT = (
    Choice("card", "💳 Картой", ("карта", "карточкой")),
    Choice("cash", "💵 Наличными", ("нал",)),
    Choice("bank", "🏦 Через банк"),
)
PERIODS = (Choice("m1", "1 месяц"), Choice("m3", "3 месяца"), Choice("m6", "6 месяцев"))


def test_slot_types_list() -> None:
    assert SLOT_TYPES == (
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("482913", "482913"),
        ("код 482 913", "482913"),
        ("Мой код: 048-213", "048213"),  # leading zero kept: it's a code, not a number
        ("0123", "0123"),
        ("12", None),  # too short
        ("1234567890", None),  # too long: a phone, not a code
        ("12 34 и 5678", None),  # two candidates: ask again
        ("не пришёл код", None),
    ],
)
def test_code(text: str, expected: str | None) -> None:
    assert parse_value("code", text) == expected


# --------------------------------------------------------------------------- phone


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("+79161234567", "+79161234567"),
        ("89161234567", "+79161234567"),
        ("79161234567", "+79161234567"),
        ("9161234567", "+79161234567"),
        ("8 916 123-45-67", "+79161234567"),
        ("+7(916)1234567", "+79161234567"),
        ("+7 (916) 123-45-67", "+79161234567"),
        ("8-916-123-4567", "+79161234567"),
        ("8 916 12 34 567", "+79161234567"),
        ("916 123 45 67", "+79161234567"),
        ("мой номер 8 916 123 45 67", "+79161234567"),
        ("Номер: +7 903 111-22-33, звоните после 6", "+79031112233"),
        ("+7 495 123-45-67", "+74951234567"),
        ("8 (812) 123-45-67", "+78121234567"),
    ],
)
def test_phone_accepted(text: str, expected: str) -> None:
    assert parse_phone(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "не помню",
        "123456",  # too short
        "8916123456",  # a mobile number with a digit missing
        "891612345678",  # one digit too many
        "+7 916 123 45",
        "89161234567 или 89031112233",  # two numbers: which one?
        "лс 123456789",  # an account, not a phone
        "0123456789",
    ],
)
def test_phone_rejected(text: str) -> None:
    assert parse_phone(text) is None


# --------------------------------------------------------------------------- account


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("123456", "123456"),
        ("123456789012", "123456789012"),
        ("лс 123456789", "123456789"),
        ("Л/С 12-34-56-78", "12345678"),
        ("лицевой счёт 1234 5678", "12345678"),
        ("лицевой счет: 500123", "500123"),
        ("договор № 12345678 от 01.02.2020", "12345678"),
        ("мой лс 123456, телефон 8 916 123-45-67", "123456"),
        ("4951234567", "4951234567"),  # 10 digits, not starting with 9: may be an account
        ("8916123456", "8916123456"),  # 10 digits starting with 8 is not phone-looking
    ],
)
def test_account_accepted(text: str, expected: str) -> None:
    assert parse_account(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "12345",  # too short
        "1234567890123",  # too long
        "89161234567",  # phone-looking: 11 digits, 8...
        "79161234567",  # phone-looking: 11 digits, 7...
        "9161234567",  # phone-looking: 10 digits, 9...
        "лс 89161234567",
        "+7 495 123-45-67",
        "8 (495) 123-45-67",
        "лс 123456 или 654321",  # two accounts
        "не знаю где посмотреть",
    ],
)
def test_account_rejected(text: str) -> None:
    assert parse_account(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8 916 123-45-67", {"phone": "+79161234567"}),
        ("мой номер +7(916)1234567", {"phone": "+79161234567"}),
        ("4951234567", {"phone": "+74951234567"}),  # both: a bare landline is a phone
        ("лс 4951234567", {"account": "4951234567"}),  # ...unless called an account
        ("договор 12345678", {"account": "12345678"}),
        ("123456789", {"account": "123456789"}),
        ("мой лс 123456, телефон 8 916 123-45-67", {"account": "123456"}),
    ],
)
def test_phone_or_account_accepted(text: str, expected: dict[str, str]) -> None:
    assert parse_phone_or_account(text) == expected


@pytest.mark.parametrize("text", ["12345", "не знаю", "лс 89161234567", "", "абв"])
def test_phone_or_account_rejected(text: str) -> None:
    assert parse_phone_or_account(text) is None


# --------------------------------------------------------------------------- address


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ул. Ленина, д. 5 к 2, кв. 12.", "ул. Ленина, д. 5 к 2, кв. 12"),
        ("Москва, Тверская 12/3", "Москва, Тверская 12/3"),
        ("проспект Мира 12а!!", "проспект Мира 12а"),
        ("  г. Казань,   ул. Баумана   д 7  ", "г. Казань, ул. Баумана д 7"),
        ("Ленина 5", "Ленина 5"),
        ("ул 8 Марта, 14 корп 2", "ул 8 Марта, 14 корп 2"),
        ("Lenina street 5", "Lenina street 5"),
        ("Садовая-Кудринская 25, кв. 3...", "Садовая-Кудринская 25, кв. 3"),
    ],
)
def test_address_accepted(text: str, expected: str) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12",  # a bare number
        "12/3",
        "не знаю",
        "Не знаю, дом 5",
        "Ленина",  # no house number
        "Москва",
        "дом 5",  # no street name
        "кв 12",
        "мой номер 8 916 123 45 67",
        "завтра в 10",
        "500 рублей",
        "ул. Ленина д. 5 " + "очень длинное пояснение " * 10,  # over 200 chars
    ],
)
def test_address_rejected(text: str) -> None:
    assert parse_address(text) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("подключите интернет на Садовую 5", "Садовая 5"),
        ("не работает на октябрьском бульваре, д. 20", "Октябрьский бульвар 20"),
        ("интернет медленный, платим за 100 мегабит а по факту 10", None),  # a speed, no street
        ("по спидтесту 10, а тариф на 100", None),
        ("не работает уже 3 дня", None),
    ],
)
def test_address_inside_a_sentence(text: str, expected: str | None) -> None:
    """What a message gives the address question before it is asked (`extract_address`)."""
    assert extract_address(text) == expected


# --------------------------------------------------------------------------- yes / no


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("да", True),
        ("Да", True),
        ("Да!", True),
        ("дааа", True),
        ("ага", True),
        ("угу", True),
        ("конечно", True),
        ("Конечно, давайте", True),
        ("давай", True),
        ("ок", True),
        ("Окей", True),
        ("хорошо", True),
        ("верно", True),
        ("подтверждаю", True),
        ("yes", True),
        ("👍", True),
        ("👍🏻", True),
        ("ок👍", True),
        ("✅", True),
        ("Да, всё верно", True),
        ("да, все верно", True),
        ("так точно", True),
        ("нет проблем", True),
        ("ну да", True),
        ("нет", False),
        ("Нет.", False),
        ("нееет", False),
        ("не", False),
        ("неа", False),
        ("не-а", False),
        ("не надо", False),
        ("Не нужно", False),
        ("нет, спасибо", False),
        ("не, спасибо", False),
        ("не верно", False),
        ("неверно", False),
        ("да нет", False),
        ("👎", False),
        ("no", False),
    ],
)
def test_yes_no_words(text: str, expected: bool) -> None:
    assert parse_yes_no(text) is expected
    # conclusive words win over the NLU intent
    assert parse_yes_no(text, intent="deny" if expected else "affirm") is expected


@pytest.mark.parametrize(
    "text",
    ["не знаю", "а сколько стоит?", "может быть", "да или нет", "", "👍👎", "хм"],
)
def test_yes_no_inconclusive_defers_to_intent(text: str) -> None:
    assert parse_yes_no(text) is None
    assert parse_yes_no(text, intent="affirm") is True
    assert parse_yes_no(text, intent="deny") is False
    assert parse_yes_no(text, intent="greet") is None


@pytest.mark.parametrize("text", ["отмена", "Отмена!", "нет, отмена", "стоп", "/cancel"])
def test_yes_no_cancel_is_left_to_the_engine(text: str) -> None:
    assert parse_yes_no(text) is None
    assert parse_yes_no(text, intent="deny") is None


# --------------------------------------------------------------------------- choice


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("💳 Картой", "card"),  # the button itself
        ("картой", "card"),
        ("КАРТОЙ!", "card"),
        ("оплачу картой", "card"),
        ("card", "card"),
        ("карточкой", "card"),  # a synonym
        ("нал", "cash"),
        ("наличными пожалуйста", "cash"),
        ("2", "cash"),  # 1-based index
        ("3.", "bank"),
        ("через банк", "bank"),
        ("банк", "bank"),  # a whole word of a title
    ],
)
def test_choice_accepted(text: str, expected: str) -> None:
    assert parse_choice(text, PAYMENT) == expected


@pytest.mark.parametrize(
    "text",
    [
        "картой или наличными",  # ambiguous
        "не картой",
        "0",
        "4",
        "криптой",
        "",
        "💳",
    ],
)
def test_choice_rejected(text: str) -> None:
    assert parse_choice(text, PAYMENT) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3", "m3"),  # a number in a title beats the index
        ("2", "m3"),  # not in any title: the index
        ("на 6 месяцев", "m6"),
        ("1 месяц", "m1"),
        ("месяц", "m1"),
    ],
)
def test_choice_with_numbers_in_titles(text: str, expected: str) -> None:
    assert parse_choice(text, PERIODS) == expected


def test_choice_longer_title_wins_over_the_title_it_contains() -> None:
    choices = (Choice("online", "Картой онлайн"), Choice("card", "Картой"))
    assert parse_choice("картой онлайн", choices) == "online"
    assert parse_choice("хочу картой онлайн", choices) == "online"
    assert parse_choice("хочу картой", choices) == "card"
    assert parse_choice("картой", choices) == "card"


# --------------------------------------------------------------------------- number


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500", 500.0),
        ("500 р", 500.0),
        ("500р.", 500.0),
        ("500 ₽", 500.0),
        ("1 500,50", 1500.5),
        ("1\u00a0500", 1500.0),
        ("1500.5", 1500.5),
        ("около 700 рублей", 700.0),
        ("-20", -20.0),
        ("5к", 5000.0),
        ("1,5 тыс", 1500.0),
        ("500 к оплате", 500.0),
        ("0", 0.0),
    ],
)
def test_number_accepted(text: str, expected: float) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize("text", ["", "пятьсот", "10-14", "2 или 3", "1.500.000", "abc"])
def test_number_rejected(text: str) -> None:
    assert parse_number(text) is None


# --------------------------------------------------------------------------- time window


def _w(date: str, start: str, end: str, label: str) -> dict[str, str]:
    return {"date": date, "from": start, "to": end, "label": label}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("сегодня", _w("2025-11-24", "09:00", "18:00", "сегодня, 09:00–18:00")),
        ("завтра", _w("2025-11-25", "09:00", "18:00", "завтра, 09:00–18:00")),
        ("послезавтра", _w("2025-11-26", "09:00", "18:00", "послезавтра, 09:00–18:00")),
        ("Завтра утром", _w("2025-11-25", "09:00", "12:00", "завтра, 09:00–12:00")),
        ("завтра днём", _w("2025-11-25", "12:00", "15:00", "завтра, 12:00–15:00")),
        ("завтра днем", _w("2025-11-25", "12:00", "15:00", "завтра, 12:00–15:00")),
        ("завтра вечером", _w("2025-11-25", "18:00", "21:00", "завтра, 18:00–21:00")),
        # time only: today while the window is still ahead
        ("утром", _w("2025-11-24", "09:00", "12:00", "сегодня, 09:00–12:00")),
        ("вечером", _w("2025-11-24", "18:00", "21:00", "сегодня, 18:00–21:00")),
        ("с 10 до 14", _w("2025-11-24", "10:00", "14:00", "сегодня, 10:00–14:00")),
        ("после 18", _w("2025-11-24", "18:00", "21:00", "сегодня, 18:00–21:00")),
        ("до 12", _w("2025-11-24", "09:00", "12:00", "сегодня, 09:00–12:00")),
        # weekdays in any case form; today's weekday means next week
        ("в понедельник", _w("2025-12-01", "09:00", "18:00", "пн, 01.12, 09:00–18:00")),
        ("во вторник", _w("2025-11-25", "09:00", "18:00", "завтра, 09:00–18:00")),
        ("в среду до 12", _w("2025-11-26", "09:00", "12:00", "послезавтра, 09:00–12:00")),
        ("в четверг", _w("2025-11-27", "09:00", "18:00", "чт, 27.11, 09:00–18:00")),
        ("пятницу с 10 до 14", _w("2025-11-28", "10:00", "14:00", "пт, 28.11, 10:00–14:00")),
        ("Суббота 10-14", _w("2025-11-29", "10:00", "14:00", "сб, 29.11, 10:00–14:00")),
        ("в воскресенье утром", _w("2025-11-30", "09:00", "12:00", "вс, 30.11, 09:00–12:00")),
        # dates
        ("25.11", _w("2025-11-25", "09:00", "18:00", "завтра, 09:00–18:00")),
        ("25 ноября", _w("2025-11-25", "09:00", "18:00", "завтра, 09:00–18:00")),
        ("28.11 10-14", _w("2025-11-28", "10:00", "14:00", "пт, 28.11, 10:00–14:00")),
        ("1 декабря после 18", _w("2025-12-01", "18:00", "21:00", "пн, 01.12, 18:00–21:00")),
        ("08.12", _w("2025-12-08", "09:00", "18:00", "пн, 08.12, 09:00–18:00")),  # +14 days
        ("28.11.2025", _w("2025-11-28", "09:00", "18:00", "пт, 28.11, 09:00–18:00")),
        ("в пятницу 28.11", _w("2025-11-28", "09:00", "18:00", "пт, 28.11, 09:00–18:00")),
        # clock formats
        ("завтра 10:00–14:00", _w("2025-11-25", "10:00", "14:00", "завтра, 10:00–14:00")),
        ("завтра с 10.00 до 14.00", _w("2025-11-25", "10:00", "14:00", "завтра, 10:00–14:00")),
        ("завтра с 9:30 до 11", _w("2025-11-25", "09:30", "11:00", "завтра, 09:30–11:00")),
        ("завтра с 9 утра до 2 дня", _w("2025-11-25", "09:00", "14:00", "завтра, 09:00–14:00")),
        ("завтра с 2 до 5", _w("2025-11-25", "14:00", "17:00", "завтра, 14:00–17:00")),
        ("завтра вечером с 6 до 9", _w("2025-11-25", "18:00", "21:00", "завтра, 18:00–21:00")),
        ("завтра после 6 вечера", _w("2025-11-25", "18:00", "21:00", "завтра, 18:00–21:00")),
        ("завтра в 10", _w("2025-11-25", "10:00", "12:00", "завтра, 10:00–12:00")),
        ("завтра после 20", _w("2025-11-25", "20:00", "22:00", "завтра, 20:00–22:00")),
        ("завтра после обеда", _w("2025-11-25", "14:00", "18:00", "завтра, 14:00–18:00")),
        (
            "завтра в первой половине дня",
            _w("2025-11-25", "09:00", "13:00", "завтра, 09:00–13:00"),
        ),
        (
            "Давайте завтра с 10 до 14, пожалуйста 🙏",
            _w("2025-11-25", "10:00", "14:00", "завтра, 10:00–14:00"),
        ),
    ],
)
def test_time_window_monday_morning(text: str, expected: dict[str, str]) -> None:
    assert parse_time_window(text, MONDAY_MORNING) == expected


@pytest.mark.parametrize(
    "text",
    [
        "09.12",  # 15 days ahead
        "10.12",
        "20.11",  # past: would be next year
        "31.11",  # no such date
        "завтра с 7 до 10",  # starts before 08:00
        "завтра с 20 до 23",  # ends after 22:00
        "завтра в 21:30",  # 21:30-22:00 is under an hour
        "завтра с 14 до 14:30",
        "завтра с 14 до 12",
        "ночью",
        "утром или вечером",
        "завтра 15",  # a number we do not understand
        "в пятницу 25.11",  # 25.11 is a Tuesday
        "сегодня или завтра",
        "когда удобно",
        "",
        "не знаю",
    ],
)
def test_time_window_rejected_monday_morning(text: str) -> None:
    assert parse_time_window(text, MONDAY_MORNING) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the evening's windows are over: time alone means tomorrow
        ("утром", _w("2025-11-22", "09:00", "12:00", "завтра, 09:00–12:00")),
        ("вечером", _w("2025-11-22", "18:00", "21:00", "завтра, 18:00–21:00")),
        ("после 18", _w("2025-11-22", "18:00", "21:00", "завтра, 18:00–21:00")),
        ("с 10 до 14", _w("2025-11-22", "10:00", "14:00", "завтра, 10:00–14:00")),
        ("в 21", _w("2025-11-21", "21:00", "22:00", "сегодня, 21:00–22:00")),  # still ahead
        ("сегодня после 20", _w("2025-11-21", "20:00", "22:00", "сегодня, 20:00–22:00")),
        ("в 19", _w("2025-11-22", "19:00", "21:00", "завтра, 19:00–21:00")),  # 19:00 is gone
        ("завтра", _w("2025-11-22", "09:00", "18:00", "завтра, 09:00–18:00")),
        ("в понедельник", _w("2025-11-24", "09:00", "18:00", "пн, 24.11, 09:00–18:00")),
        ("в пятницу", _w("2025-11-28", "09:00", "18:00", "пт, 28.11, 09:00–18:00")),
        ("во вторник после 18", _w("2025-11-25", "18:00", "21:00", "вт, 25.11, 18:00–21:00")),
        ("25 ноября", _w("2025-11-25", "09:00", "18:00", "вт, 25.11, 09:00–18:00")),
        ("ПОНЕДЕЛЬНИК утром", _w("2025-11-24", "09:00", "12:00", "пн, 24.11, 09:00–12:00")),
    ],
)
def test_time_window_friday_evening(text: str, expected: dict[str, str]) -> None:
    assert parse_time_window(text, FRIDAY_EVENING) == expected


@pytest.mark.parametrize(
    "text",
    ["сегодня", "сегодня вечером", "сегодня с 10 до 14", "сегодня после 19", "21.11", "06.12"],
)
def test_time_window_rejected_friday_evening(text: str) -> None:
    assert parse_time_window(text, FRIDAY_EVENING) is None


def test_time_window_today_starts_at_the_next_full_hour() -> None:
    late_morning = datetime(2025, 11, 24, 10, 15, tzinfo=MSK)
    assert parse_time_window("сегодня", late_morning) == _w(
        "2025-11-24", "11:00", "18:00", "сегодня, 11:00–18:00"
    )
    # the same moment given in UTC is interpreted in Moscow time
    in_utc = datetime(2025, 11, 24, 7, 15, tzinfo=ZoneInfo("UTC"))
    assert parse_time_window("сегодня", in_utc) == _w(
        "2025-11-24", "11:00", "18:00", "сегодня, 11:00–18:00"
    )
    # a window that has begun is in the past
    assert parse_time_window("сегодня утром", late_morning) is None


def test_time_window_other_timezone() -> None:
    # 08:30 in Moscow is 10:30 in Yekaterinburg
    assert parse_time_window("сегодня", MONDAY_MORNING, tz="Asia/Yekaterinburg") == _w(
        "2025-11-24", "11:00", "18:00", "сегодня, 11:00–18:00"
    )
    assert parse_time_window("утром", MONDAY_MORNING, tz="Asia/Yekaterinburg") == _w(
        "2025-11-25", "09:00", "12:00", "завтра, 09:00–12:00"
    )


def test_time_window_across_new_year() -> None:
    december = datetime(2025, 12, 29, 12, 0, tzinfo=MSK)
    assert parse_time_window("3 января", december) == _w(
        "2026-01-03", "09:00", "18:00", "сб, 03.01, 09:00–18:00"
    )
    assert parse_time_window("05.01 утром", december) == _w(
        "2026-01-05", "09:00", "12:00", "пн, 05.01, 09:00–12:00"
    )


# --------------------------------------------------------------------------- window options


def test_window_options_monday_morning_include_today() -> None:
    assert window_options(MONDAY_MORNING) == [
        _w("2025-11-24", "09:00", "12:00", "сегодня, 09:00–12:00"),
        _w("2025-11-24", "12:00", "15:00", "сегодня, 12:00–15:00"),
        _w("2025-11-24", "15:00", "18:00", "сегодня, 15:00–18:00"),
        _w("2025-11-24", "18:00", "21:00", "сегодня, 18:00–21:00"),
        _w("2025-11-25", "09:00", "12:00", "завтра, 09:00–12:00"),
        _w("2025-11-25", "12:00", "15:00", "завтра, 12:00–15:00"),
    ]


def test_window_options_skip_windows_already_started() -> None:
    eleven = datetime(2025, 11, 24, 11, 0, tzinfo=MSK)
    assert [o["label"] for o in window_options(eleven)] == [
        "сегодня, 12:00–15:00",
        "сегодня, 15:00–18:00",
        "сегодня, 18:00–21:00",
        "завтра, 09:00–12:00",
        "завтра, 12:00–15:00",
        "завтра, 15:00–18:00",
    ]


def test_window_options_afternoon_start_tomorrow() -> None:
    afternoon = datetime(2025, 11, 24, 12, 0, tzinfo=MSK)
    assert [o["label"] for o in window_options(afternoon)][:2] == [
        "завтра, 09:00–12:00",
        "завтра, 12:00–15:00",
    ]
    assert [o["label"] for o in window_options(FRIDAY_EVENING)] == [
        "завтра, 09:00–12:00",
        "завтра, 12:00–15:00",
        "завтра, 15:00–18:00",
        "завтра, 18:00–21:00",
        "послезавтра, 09:00–12:00",
        "послезавтра, 12:00–15:00",
    ]


def test_window_options_one_day() -> None:
    assert [o["label"] for o in window_options(FRIDAY_EVENING, days=1)] == [
        "завтра, 09:00–12:00",
        "завтра, 12:00–15:00",
        "завтра, 15:00–18:00",
        "завтра, 18:00–21:00",
    ]


@pytest.mark.parametrize("now", [MONDAY_MORNING, FRIDAY_EVENING])
def test_window_option_labels_parse_back(now: datetime) -> None:
    # a button press arrives as its title text
    for option in window_options(now):
        assert parse_time_window(option["label"], now) == option


def test_weekday_label_parses_back() -> None:
    later = _w("2025-11-28", "09:00", "12:00", "пт, 28.11, 09:00–12:00")
    assert parse_time_window(later["label"], MONDAY_MORNING) == later


# --------------------------------------------------------------------------- dispatch


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("text", "  интернет не работает  ", "интернет не работает"),
        ("text", "   ", None),
        ("text", "я" * 1000, "я" * 1000),
        ("text", "я" * 1001, None),
        ("phone", "8 916 123-45-67", "+79161234567"),
        ("account", "лс 123456", "123456"),
        ("phone_or_account", "договор 123456", {"account": "123456"}),
        ("address", "Ленина 5.", "Ленина 5"),
        ("yes_no", "ага", True),
        ("number", "1 500,50", 1500.5),
    ],
)
def test_parse_value_dispatch(kind: str, text: str, expected: Any) -> None:
    assert parse_value(kind, text) == expected


def test_parse_value_passes_options() -> None:
    assert parse_value("yes_no", "не знаю", intent="affirm") is True
    assert parse_value("choice", "картой", choices=PAYMENT) == "card"
    assert parse_value("time_window", "завтра утром", now=FRIDAY_EVENING) == _w(
        "2025-11-22", "09:00", "12:00", "завтра, 09:00–12:00"
    )
    assert parse_value("time_window", "сегодня", now=MONDAY_MORNING, tz="Asia/Yekaterinburg") == _w(
        "2025-11-24", "11:00", "18:00", "сегодня, 11:00–18:00"
    )


def test_parse_value_time_window_defaults_to_the_clock() -> None:
    result = parse_value("time_window", "завтра")
    assert result is not None
    assert (result["from"], result["to"]) == ("09:00", "18:00")
    assert result["label"] == "завтра, 09:00–18:00"


def test_parse_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown slot kind 'email'"):
        parse_value("email", "a@b.ru")
    with pytest.raises(ValueError, match="needs choices"):
        parse_value("choice", "картой")
