"""Telecom slang is written one way before featurisation, identically for the training examples
and for messages, and a change of the rules retrains the model instead of loading a stale one."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from nlu import embedded, slang
from nlu.data import Example, TrainingData
from nlu.embedded import EmbeddedEngine, fit, normalise, train_or_load


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("Есимка у вас есть?", "esim у вас есть?"),
        ("хочу е-сим", "хочу esim"),
        ("инета нету", "интернета нет"),
        ("тырнет не пашет", "интернет не пашет"),
        ("симку", "симкарту"),
        ("сим-карта", "симкарта"),
        ("нет сим карты", "нет симкарты"),
        ("замена сим", "замена симкарта"),
        ("мобилу посеял, заблочьте", "телефон посеял, заблокировать"),
        ("скока бабла щас", "сколько деньги сейчас"),
        ("4джи не ловит", "0g не ловит"),  # digits are masked after the rules
        ("вай-фай", "wifi"),
        ("телек", "телевизор"),
        ("от билайна к вам", "от мтс к вам"),
        ("за бугром", "за границей"),
        ("обещанку", "обещанный платеж"),
        ("в лк", "в личный кабинет"),
    ],
)
def test_slang_is_written_one_way(text: str, written: str) -> None:
    assert normalise(text) == written


@pytest.mark.parametrize(
    "text",
    [
        "мобильный интернет",  # not «мобила»
        "телевидение",  # not «телек»
        "симпатичный",  # not «сим»
        "налог",  # not «нал»
        "чек",  # not «че»
        "пока",
    ],
)
def test_ordinary_words_are_left_alone(text: str) -> None:
    assert normalise(text) == text


def _tiny() -> list[Example]:
    return [
        *(Example(t, "internet_down") for t in ("интернет не работает", "нет интернета")),
        *(Example(t, "sim_card") for t in ("замена сим карты", "потерял симку")),
        *(Example(t, "balance") for t in ("сколько денег на счету", "баланс")),
    ]


def test_training_and_parsing_see_the_same_words() -> None:
    """An example written in slang trains the same features a plain message is parsed with."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = fit(_tiny(), {}, "plain")
        slangy = fit(
            [
                Example(e.text.replace("интернет", "инет").replace("сим карты", "симки"), e.intent)
                for e in _tiny()
            ],
            {},
            "slang",
        )
    assert np.array_equal(plain.weights, slangy.weights)
    for text in ("инета нет", "интернета нет", "симка", "сим-карта"):
        assert plain.scores(text).tobytes() == slangy.scores(text).tobytes()
    engine = EmbeddedEngine(plain)
    assert engine.parse_sync("инет не пашет").intent == "internet_down"


def test_changed_rules_retrain_instead_of_loading_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = TrainingData(examples=_tiny())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = train_or_load(data, tmp_path)
        assert first.features == slang.SIGNATURE
        monkeypatch.setattr(slang, "SIGNATURE", "changed0")
        monkeypatch.setattr(embedded.slang, "SIGNATURE", "changed0")
        second = train_or_load(data, tmp_path)
    assert second is not first
    assert sorted(p.name.split("-")[2] for p in tmp_path.glob("*.pkl")) == sorted(
        [first.features, "changed0"]
    )


def test_the_one_pass_check_changes_nothing_on_any_content_line() -> None:
    """`canonical` skips the rules when no rule matches anywhere (one regex instead of 35):
    on every line of the shipped content it gives what the rules applied one by one give."""
    root = Path(__file__).resolve().parents[2] / "content"
    lines = {
        line.strip(" -\"'").lower().replace("ё", "е")
        for path in root.rglob("*.yml")
        for line in path.read_text(encoding="utf-8").splitlines()
    }

    def rule_by_rule(text: str) -> str:
        for pattern, replacement in slang._COMPILED:
            text = pattern.sub(replacement, text)
        return text

    changed = [line for line in lines if rule_by_rule(line) != line]
    assert len(changed) > 100  # the content does use slang: the check is exercised both ways
    assert [line for line in lines if slang.canonical(line) != rule_by_rule(line)] == []
