"""The knowledge-base index kept on disk (nlu.knowledge.cache_on_disk): a restart loads the same
index instead of building it, other articles get another file, an unreadable file is rebuilt,
and the numpy row gathering scores exactly as scipy's sparse product did."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nlu import knowledge
from nlu.knowledge import Doc, build_index

DOCS = (
    Doc("pay", "Где оплатить связь", ("как пополнить баланс", "оплата картой"), ("оплата",)),
    Doc("router", "Настройка роутера", ("как настроить wi-fi", "роутер не раздаёт интернет")),
    Doc("roam", "Роуминг за границей", ("как звонить за границей",), body="Подключите роуминг."),
)


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[Path]:
    build_index.cache_clear()
    knowledge.cache_on_disk(tmp_path)
    yield tmp_path
    knowledge.cache_on_disk(None)
    build_index.cache_clear()


def test_a_restart_loads_the_index_it_built(cache: Path) -> None:
    built = build_index(DOCS)
    files = list(cache.glob("kb-*.pkl"))
    assert len(files) == 1
    build_index.cache_clear()  # a new process: only the file is left
    loaded = build_index(DOCS)
    assert loaded is not built
    for question in ("где оплатить", "не работает вайфай роутер", "звонки в роуминге"):
        assert loaded.search(question) == built.search(question)
    build_index.cache_clear()
    build_index((*DOCS[:2], Doc("roam", "Роуминг", ("как звонить за границей",))))
    assert len(list(cache.glob("kb-*.pkl"))) == 2  # other articles, another file


def test_an_unreadable_cache_file_is_rebuilt(cache: Path) -> None:
    build_index(DOCS)
    (path,) = cache.glob("kb-*.pkl")
    path.write_bytes(b"not a pickle")
    build_index.cache_clear()
    index = build_index(DOCS)
    assert index.search("где оплатить")[0].id == "pay"
    assert path.read_bytes() != b"not a pickle"  # written again


def test_row_gathering_scores_as_the_sparse_product() -> None:
    index = knowledge.KnowledgeIndex(DOCS)
    for view in (index._words, index._chars, index._body):
        for text in ("где оплатить связь картой", "роутер", "звонить за границей", "ъъъ"):
            rows, weights = view.vector(text)
            expected = (
                np.asarray(weights @ view.by_feature()[rows]).ravel()
                if len(rows)
                else np.zeros(view.units)
            )
            assert np.allclose(view.similarity(text), expected, atol=1e-12)
