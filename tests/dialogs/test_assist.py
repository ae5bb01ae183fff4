"""The bot's own answer for an operator's draft (`dialogs.assist.answer`) on the reference
content: it follows the flow by the subscriber's words and stops where the bot would need more."""

from __future__ import annotations

from dialogs.assist import answer
from tests.support import content_source

CONTENT = content_source().current


def test_the_route_by_the_words_picks_the_branch() -> None:
    found = answer(CONTENT, "payment_methods", "а через сбер можно?", "telegram", "Иван")
    assert found is not None and found.title == "💳 Как оплатить"
    assert found.text.startswith("В приложении любого банка")
    assert "⬅️" not in found.text  # a lone «back» button is navigation, not part of the answer


def test_a_menu_is_listed_and_links_keep_their_address() -> None:
    menu = answer(CONTENT, "payment_methods", "где оплатить?", "vk")
    assert menu is not None
    assert "• ⚡ СБП" in menu.text and "• 🏧 Наличными" in menu.text
    card = answer(CONTENT, "payment_methods", "картой в приложении", "telegram")
    assert card is not None and "https://lk.example-telecom.ru/pay" in card.text


def test_nothing_when_the_bot_would_verify_ask_or_hand_off() -> None:
    assert answer(CONTENT, "balance", "какой у меня баланс", "telegram") is None  # verify first
    assert answer(CONTENT, "operator", "позовите оператора", "telegram") is None
    assert answer(CONTENT, "no_such_intent", "что-то", "telegram") is None
