"""Russian morphology (pymorphy3), one analyzer per process: its dictionaries take ~100 ms and
tens of MB to load, so everything that needs word forms shares this one."""

from __future__ import annotations

import functools

import pymorphy3


@functools.cache
def analyzer() -> pymorphy3.MorphAnalyzer:
    return pymorphy3.MorphAnalyzer()


@functools.lru_cache(maxsize=100_000)
def lemma(word: str) -> str:
    """The dictionary form of a lowercase word, ё written е ("оплачу" -> "оплатить")."""
    if word.isdigit() or len(word) < 3:
        return word
    return str(analyzer().parse(word)[0].normal_form).replace("ё", "е")
